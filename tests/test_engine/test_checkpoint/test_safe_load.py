# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Safe checkpoint loading: mmengine's own objects load, crafted ones don't."""
import io
import os
import pickle
import random

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.optim.scheduler.param_scheduler import OneCycleParamScheduler
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from mmdet_slf.engine.checkpoint import (CheckpointError, enable_safe_loading,
                                         safe_torch_load)
from mmdet_slf.engine.checkpoint.safe_load import (_refused_global,
                                                   history_buffer_getattr)

enable_safe_loading()  # what the project's configs switch on


class _RunsCode:
    """Unpickling this object calls ``os.system`` (the attack)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command, )


class _GetattrEscape:
    """Reaches for ``getattr(HistoryBuffer, '__init__')`` (not a statistic)."""

    def __reduce__(self):
        return getattr, (HistoryBuffer, '__init__')


def test_mmengine_objects_round_trip(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(1.5)
    buffer.update(2.5)
    checkpoint = dict(
        state_dict=dict(weight=torch.ones(2)),
        message_hub=dict(log_scalars={'train/lr': buffer},
                         runtime_info=dict(eta=np.float64(3.0),
                                           iters=np.arange(3))))
    path = str(tmp_path / 'ok.pth')
    torch.save(checkpoint, path)
    loaded = safe_torch_load(path)
    restored = loaded['message_hub']['log_scalars']['train/lr']
    assert restored.mean() == pytest.approx(2.0)
    assert restored.max() == pytest.approx(2.5)
    assert loaded['message_hub']['runtime_info']['eta'] == 3.0
    np.testing.assert_array_equal(
        loaded['message_hub']['runtime_info']['iters'], np.arange(3))
    # The same path mmengine's Runner uses for resume and load_from.
    assert _load_checkpoint(path)['state_dict']['weight'].sum() == 2


class _OneCycleEscape:
    """Reaches for an attribute of OneCycleParamScheduler other than its
    annealing functions."""

    def __reduce__(self):
        from mmengine.optim.scheduler.param_scheduler import \
            OneCycleParamScheduler
        return getattr, (OneCycleParamScheduler, '__init__')


def test_one_cycle_scheduler_state_round_trips(tmp_path):
    """mmengine's OneCycleLR keeps its annealing function in its state."""
    from mmengine.optim.scheduler import OneCycleLR
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)
    scheduler = OneCycleLR(optimizer, eta_max=0.1, total_steps=10,
                           anneal_strategy='linear')
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    path = str(tmp_path / 'iter_3.pth')
    torch.save(dict(param_schedulers=[scheduler.state_dict()]), path)
    state = safe_torch_load(path)['param_schedulers'][0]
    assert state['anneal_func'] is scheduler.anneal_func
    resumed = OneCycleLR(torch.optim.SGD(
        [torch.nn.Parameter(torch.ones(1))], lr=0.1), eta_max=0.1,
        total_steps=10)
    resumed.load_state_dict(state)
    assert resumed.last_step == scheduler.last_step == 3


@pytest.mark.parametrize('payload, named', [
    (_RunsCode, 'GLOBAL posix.system'),
    (_GetattrEscape, "getattr(<class 'mmengine.logging.history_buffer."),
    (_OneCycleEscape, "'__init__'"),
])
def test_code_executing_pickle_is_refused(tmp_path, payload, named):
    marker = tmp_path / 'pwned'
    obj = payload(f'touch {marker}') if payload is _RunsCode else payload()
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={}, meta=obj), path)
    with pytest.raises(CheckpointError, match='refusing to load checkpoint'):
        safe_torch_load(path)
    # the message names what was refused, as its advice assumes
    with pytest.raises(CheckpointError) as error:
        safe_torch_load(path)
    assert named in str(error.value)
    with pytest.raises(CheckpointError, match='refusing to load checkpoint'):
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert not marker.exists()
    # Sanity check that the payload is real: an unsafe load runs it.
    if payload is _RunsCode:
        torch.load(path, weights_only=False)
        assert marker.exists()


def test_plain_pickle_file_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = str(tmp_path / 'evil.pkl')
    with open(path, 'wb') as f:
        pickle.dump(_RunsCode(f'touch {marker}'), f)
    with pytest.raises(CheckpointError):
        safe_torch_load(path)
    assert not marker.exists()


def test_truncated_and_missing_checkpoints(tmp_path):
    path = str(tmp_path / 'model.pth')
    torch.save(dict(state_dict=dict(weight=torch.randn(100, 100))), path)
    data = open(path, 'rb').read()
    truncated = str(tmp_path / 'truncated.pth')
    with open(truncated, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated or not a PyTorch'):
        safe_torch_load(truncated)
    garbage = str(tmp_path / 'garbage.pth')
    with open(garbage, 'wb') as f:
        f.write(b'not a checkpoint at all')
    with pytest.raises(CheckpointError, match=r'garbage\.pth'):
        safe_torch_load(garbage)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        safe_torch_load(str(tmp_path / 'missing.pth'))


def test_any_damaged_legacy_pickle_is_a_checkpoint_error(tmp_path):
    """Bytes flipped in, or cut from, a checkpoint in torch's legacy
    (non-zip) format, or bytes that are no pickle: whatever the unpickler
    raises (KeyError, IndexError, struct.error as well as the errors of a
    truncated file), the caller gets a CheckpointError naming the file,
    which auto-resume reads as "skip this checkpoint"."""
    buffer = io.BytesIO()
    torch.save(dict(weight=torch.arange(50.)), buffer,
               _use_new_zipfile_serialization=False)
    sources = [buffer.getvalue(), b'\x80', b'hello world']
    rng = random.Random(0)
    path = str(tmp_path / 'damaged.pth')
    raised = set()
    for trial in range(300):
        data = bytearray(sources[trial % len(sources)])
        if trial >= len(sources):  # the first few as they are
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.5:
                data = data[:rng.randrange(1, len(data) + 1)]
        with open(path, 'wb') as f:
            f.write(bytes(data))
        try:
            safe_torch_load(path)
        except CheckpointError as error:
            assert 'damaged.pth' in str(error)
            raised.add(error.__cause__.__class__.__name__)
    # The unpickler's own errors were among them.
    assert {'KeyError', 'IndexError'} <= raised, raised


def test_a_fresh_process_loads_every_default_statistic(tmp_path,
                                                       monkeypatch):
    """A pickled HistoryBuffer names its statistics methods min, max, mean
    and current. ``HistoryBuffer._statistics_methods`` is filled only when
    a buffer is built, so a process that loads a checkpoint before it has
    built any (an evaluation run) must allow all four by name."""
    buffer = HistoryBuffer()
    buffer.update(4.0)
    path = str(tmp_path / 'hub.pth')
    torch.save(dict(message_hub=dict(log_scalars={'loss': buffer})), path)
    monkeypatch.setattr(HistoryBuffer, '_statistics_methods', {})
    restored = safe_torch_load(path)['message_hub']['log_scalars']['loss']
    assert restored.current() == 4.0


@pytest.mark.parametrize('obj', [np.ndarray, OneCycleParamScheduler])
def test_statistics_names_are_answered_only_for_history_buffer(obj):
    """``getattr(<allowed global>, 'max')``: the statistics names are
    allowed on HistoryBuffer alone, not on every global a checkpoint may
    name."""
    with pytest.raises(pickle.UnpicklingError,
                       match=r"checkpoint asks for getattr\(.*'max'\); "
                       'only HistoryBuffer statistics methods'):
        history_buffer_getattr(obj, 'max')
    assert history_buffer_getattr(HistoryBuffer, 'max') is HistoryBuffer.max


def test_the_reason_names_the_problem_without_file_or_fix(tmp_path):
    """``CheckpointError.reason`` is the problem alone (auto-resume puts
    it after the file name it skips); the message adds the file and the
    fix around it."""
    path = str(tmp_path / 'garbage.pth')
    with open(path, 'wb') as f:
        f.write(b'not a checkpoint at all')
    with pytest.raises(CheckpointError) as error:
        safe_torch_load(path)
    reason = error.value.reason
    assert reason.startswith('the file is truncated or not a PyTorch '
                             'checkpoint (')
    assert 'garbage.pth' not in reason and 'Re-download' not in reason
    assert str(error.value) == (f'cannot read checkpoint {path}: {reason}. '
                                'Re-download it or point to another '
                                'checkpoint.')


def test_mmengines_map_location_reaches_torch_load(tmp_path):
    """``CheckpointLoader.load_checkpoint(path, map_location=...)`` goes
    through the safe loader with the caller's ``map_location``."""
    path = str(tmp_path / 'model.pth')
    torch.save(dict(weight=torch.ones(2)), path)
    seen = []

    def where(storage, location):
        seen.append(location)
        return storage

    loaded = CheckpointLoader.load_checkpoint(path, map_location=where)
    assert seen == ['cpu'] and loaded['weight'].sum() == 2


def test_without_a_named_global_the_first_line_of_the_error_is_kept():
    """When torch's message names no ``GLOBAL`` and no ``getattr``, the
    refusal quotes its first non-empty line."""
    error = pickle.UnpicklingError('\nWeights only load failed.\n'
                                   'Check the file.\n')
    assert _refused_global(error) == 'Weights only load failed.'
    assert _refused_global(pickle.UnpicklingError('')) == 'UnpicklingError'
