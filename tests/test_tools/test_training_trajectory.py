# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""``tools/training_trajectory.py``: the same code trains bitwise the same,
and a change of one bit in a record is found and located."""
import os.path as osp
import sys

import pytest
import torch
from conftest import REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import training_trajectory  # noqa: E402

FIXED = osp.join(REPO_ROOT, 'configs/demo/benchmark/fixed.py')
SLF = osp.join(REPO_ROOT, 'configs/demo/benchmark/slf-scale-free-expected.py')


def record(out, steps=2):
    return training_trajectory.main([
        'record', FIXED, SLF, '--steps', str(steps), '--batch-size', '2',
        '--out', str(out)
    ])


def test_the_same_code_records_bitwise_the_same_and_a_change_is_found(
        tmp_path, capsys):
    first, second = tmp_path / 'first.pt', tmp_path / 'second.pt'
    assert record(first) == 0 and record(second) == 0
    assert training_trajectory.main(['compare', str(first),
                                     str(second)]) == 0
    out = capsys.readouterr().out
    assert f'{FIXED}: bitwise equal' in out and f'{SLF}: bitwise equal' in out

    saved = torch.load(first, weights_only=False)
    slf = saved['configs'][SLF]
    assert len(slf['losses']) == 2
    assert {'loss', 'loss_slf_decision'} <= set(slf['losses'][0])
    # The optimizer state is part of the record: Adam's second moments of
    # the decision network's output layer after two steps.
    assert len(training_trajectory.flat_tensors(slf['optimizer'])) > 0

    # One parameter moved by 2^-10, exactly representable: found, and the
    # largest difference is exactly that, at that parameter.
    key = 'bbox_head.weighting.decision_net.fc_out.bias'
    slf['state'][key][1] += 2.0**-10
    changed = tmp_path / 'changed.pt'
    torch.save(saved, changed)
    assert training_trajectory.main(['compare', str(second),
                                     str(changed)]) == 1
    out = capsys.readouterr().out
    assert f'{FIXED}: bitwise equal' in out
    assert f'{SLF}: differs, largest |difference| 0.000977 at ' \
           f'/state/{key}' in out
    assert training_trajectory.difference(
        saved['configs'][SLF], torch.load(second, weights_only=False)
        ['configs'][SLF])['largest'] == 2.0**-10


def test_records_of_different_settings_are_not_compared(tmp_path, capsys):
    two, one = tmp_path / 'two.pt', tmp_path / 'one.pt'
    torch.save(dict(meta=dict(steps=2, batch_size=2, seed=0), configs={}),
               two)
    torch.save(dict(meta=dict(steps=1, batch_size=2, seed=0), configs={}),
               one)
    assert training_trajectory.main(['compare', str(two), str(one)]) == 1
    assert 'the records differ in their settings' in capsys.readouterr().out


def test_difference_names_a_missing_entry_and_a_nan():
    first = dict(state={'a': torch.tensor([1.0, 2.0]), 'b': torch.ones(1)})
    second = dict(state={'a': torch.tensor([1.0, float('nan')])})
    result = training_trajectory.difference(first, second)
    assert not result['equal']
    assert result['only_in_one'] == ['/state/b']
    assert result['largest'] == float('inf') and result['at'] == '/state/a'


def test_difference_is_bitwise():
    """The same NaN in both records is equal; 0.0 and -0.0 are not."""
    nan = float('nan')
    first = dict(losses=[{'loss': torch.tensor(nan)}],
                 state={'a': torch.tensor([1.0, nan]),
                        'b': torch.tensor([0.0, 2.0])})
    second = dict(losses=[{'loss': torch.tensor(nan)}],
                  state={'a': torch.tensor([1.0, nan]),
                         'b': torch.tensor([0.0, 2.0])})
    assert training_trajectory.difference(first, second) == dict(
        equal=True, only_in_one=[], largest=0.0, at=None)
    second['state']['b'] = torch.tensor([-0.0, 2.0])
    result = training_trajectory.difference(first, second)
    assert not result['equal'] and result['at'] == '/state/b'
    assert result['largest'] == 0.0


def test_missing_configs_and_records_are_named(tmp_path, capsys):
    from conftest import refusal
    missing = str(tmp_path / 'nope.py')
    assert f'{missing} does not exist' in refusal(
        training_trajectory.parse_args,
        ['record', missing, '--out', str(tmp_path / 'a.pt')], capsys)
    record = tmp_path / 'a.pt'
    record.write_bytes(b'')
    assert f'{tmp_path}/b.pt does not exist' in refusal(
        training_trajectory.parse_args,
        ['compare', str(record), str(tmp_path / 'b.pt')], capsys)
    # the option checks come first; a shipped config passes by its name
    assert '--steps must be >= 1' in refusal(
        training_trajectory.parse_args,
        ['record', missing, '--steps', '0', '--out', 'a.pt'], capsys)
    name = 'mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py'
    assert training_trajectory.parse_args(
        ['record', name, '--out', 'a.pt']).configs == [name]


def test_a_config_in_one_record_only_fails_the_comparison(tmp_path, capsys):
    """A config recorded in the second file only is named and makes the
    comparison fail (exit 1); the config in both still compares equal."""
    run = dict(losses=[{'loss': torch.tensor(1.5)}],
               state={'w': torch.tensor([1.0, 2.0])})
    meta = dict(steps=1, batch_size=2, seed=0)
    first, second = tmp_path / 'first.pt', tmp_path / 'second.pt'
    torch.save(dict(meta=meta, configs={'a.py': run}), first)
    torch.save(dict(meta=meta, configs={'a.py': run, 'b.py': run}), second)
    assert training_trajectory.main(['compare', str(first),
                                     str(second)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == ['a.py: bitwise equal', 'b.py: in one record only']


def test_record_passes_its_options_and_saves_them(tmp_path, monkeypatch,
                                                  capsys):
    """--steps, --batch-size and --seed reach each config's training as
    given (2, 5 and 7, all different so that a swap shows) and are saved
    as the record's settings, which compare reads first."""
    calls = []

    def fake_record(path, steps, batch_size, seed):
        calls.append((path, steps, batch_size, seed))
        return dict(losses=[{'loss': torch.tensor(0.25)}], state={})

    monkeypatch.setattr(training_trajectory, 'record_config', fake_record)
    out = tmp_path / 'r.pt'
    assert training_trajectory.main([
        'record', FIXED, '--steps', '2', '--batch-size', '5', '--seed', '7',
        '--out', str(out)
    ]) == 0
    assert calls == [(FIXED, 2, 5, 7)]
    assert torch.load(out, weights_only=False)['meta'] == dict(
        steps=2, batch_size=5, seed=7)
    assert f'{FIXED}: 2 steps, last loss 0.250000' in capsys.readouterr().out


def test_a_record_that_cannot_be_saved_is_refused_before_training(
        tmp_path, monkeypatch, capsys):
    """A folder, or a path through a file, as --out is refused before any
    step is trained; a folder that does not exist yet is made."""
    from conftest import refusal
    assert f'--out {tmp_path} is a folder: name the record file (.pt)' in \
        refusal(training_trajectory.parse_args,
                ['record', FIXED, '--out', str(tmp_path)], capsys)
    note = tmp_path / 'notes.txt'
    note.write_text('kept')
    assert f'--out {note}/r.pt: {note} is a file, not a folder' in refusal(
        training_trajectory.parse_args,
        ['record', FIXED, '--out', str(note / 'r.pt')], capsys)
    assert note.read_text() == 'kept'
    monkeypatch.setattr(
        training_trajectory, 'record_config',
        lambda *args: dict(losses=[{'loss': torch.tensor(0.5)}], state={}))
    out = tmp_path / 'new' / 'deeper' / 'r.pt'
    assert training_trajectory.main(['record', FIXED, '--out',
                                     str(out)]) == 0
    assert torch.load(out, weights_only=False)['meta']['steps'] == 30


def test_a_batch_size_below_one_is_refused(tmp_path, capsys):
    from conftest import refusal
    assert '--batch-size must be >= 1, got 0' in refusal(
        training_trajectory.parse_args,
        ['record', FIXED, '--batch-size', '0', '--out', 'a.pt'], capsys)


def test_a_file_that_is_no_record_is_named(tmp_path):
    """An empty file, a saved tensor and a dict without the record's
    ``meta`` and ``configs`` end the comparison with the file named."""
    good = tmp_path / 'good.pt'
    torch.save(dict(meta=dict(steps=1, batch_size=2, seed=0), configs={}),
               good)
    empty, tensor, other = (tmp_path / name
                            for name in ('empty.pt', 'tensor.pt', 'other.pt'))
    empty.write_bytes(b'')
    torch.save(torch.zeros(2), tensor)
    torch.save(dict(meta={}), other)
    for bad, why in ((empty, 'EOFError'), (tensor, 'no meta and configs'),
                     (other, 'no meta and configs')):
        with pytest.raises(SystemExit,
                           match=f'{bad}: not a record of this tool .*{why}'):
            training_trajectory.main(['compare', str(good), str(bad)])
    assert training_trajectory.main(['compare', str(good), str(good)]) == 0
