# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""SLFLoggerHook takes the diagnostics out of the loss dicts and logs them
from one read per device: every iteration, under the same keys, with the
values the weightings computed."""
import json
import os
import os.path as osp
import socket
from datetime import timedelta
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from conftest import toy_runner, two_weightings_model
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from torch import nn

import mmdet_slf  # noqa: F401
from mmdet_slf.engine.hooks import (SLFLoggerHook, claim_diagnostics,
                                    collect_diagnostics, find_weightings)
from mmdet_slf.utils.profiling import count_operators


def test_claimed_diagnostics_leave_the_loss_dict_and_are_read_at_once():
    torch.manual_seed(0)
    model = two_weightings_model()
    inputs = torch.randn(4, 3)
    before = model(inputs)
    assert {'slf_w_coord', 'slf_p_coord', 'slf_raw_obj'} <= set(before)
    assert claim_diagnostics(model) == 2
    after = model(inputs)
    assert set(after) == {'loss_coord', 'loss_obj', 'loss_x',
                          'loss_slf_decision'}
    diagnostics = collect_diagnostics(model)
    # The nested weighting's keys carry its owner's name without 'loss'.
    expected = dict(model.weighting.last_diagnostics)
    expected.update({f'cls.{key}': value for key, value in
                     model.loss_cls.weighting.last_diagnostics.items()})
    assert diagnostics == expected
    assert diagnostics['cls.slf_w_x'] == 2.0
    raw = model.linear(inputs).pow(2).sum(0)  # batch-level raw terms
    assert diagnostics['slf_raw_coord'] == pytest.approx(raw[0].item())
    # Both weightings' vectors are joined and read together.
    assert count_operators(lambda: collect_diagnostics(model)) == {'cat': 1}
    # Found once, the weightings give the same read without a module walk.
    found = find_weightings(model)
    assert [name for name, _ in found] == ['weighting', 'loss_cls.weighting']
    assert collect_diagnostics(model, found) == diagnostics


class OutputKeys(Hook):
    """Records the keys of what train_step returned, every iteration."""

    priority = 'LOWEST'

    def __init__(self):
        self.keys = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.keys.append(set(outputs))


def test_a_run_logs_every_diagnostic_once_per_iteration(tmp_path):
    torch.manual_seed(0)
    model = two_weightings_model()
    outputs = OutputKeys()
    runner = toy_runner(model, str(tmp_path), 3,
                        [dict(type='SLFLoggerHook'), outputs])
    runner.train()
    # The runner was handed the objective and nothing else...
    assert all('slf_w_coord' not in keys and 'loss_slf_decision' in keys
               for keys in outputs.keys)
    assert len(outputs.keys) == 3
    # ...and the hook logged every diagnostic once per iteration.
    scalars = runner.message_hub.log_scalars
    last = model.weighting.last_diagnostics
    for key in ('slf_w_coord', 'slf_p_obj', 'slf_raw_coord',
                'slf_signal_obj', 'slf_entropy', 'slf_skipped'):
        history = scalars[f'train/{key}'].data[0]
        assert len(history) == 3, key
        assert history[-1] == pytest.approx(last[key]), key
    assert scalars['train/cls.slf_w_x'].data[0].tolist() == [2.0] * 3
    # The hook found the weightings before training, not at every step.
    hook = next(h for h in runner.hooks if isinstance(h, SLFLoggerHook))
    assert [module for _, module in hook._weightings] == [
        model.weighting, model.loss_cls.weighting]


def _log_one_step(rank: int, port: int, out_dir: str) -> None:
    """A rank of a 2-process group: a model whose only weighting sits in
    ``loss_bbox``, which rank 1 never calls in this step (a head calls its
    box loss only with positives). Both ranks log the step."""
    from mmdet_slf.slf import FixedWeighting
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch_dist.init_process_group('gloo', rank=rank, world_size=2,
                                  timeout=timedelta(seconds=60))
    model = nn.Module()
    model.loss_bbox = nn.Module()
    model.loss_bbox.weighting = FixedWeighting(terms=['l1', 'iou'],
                                               weights=[2.0, 0.5])
    hook = SLFLoggerHook()
    runner = SimpleNamespace(model=model,
                             message_hub=MessageHub(f'rank{rank}'))
    hook.before_train(runner)
    if rank == 0:
        model.loss_bbox.weighting({'loss_l1': torch.tensor(3.0),
                                   'loss_iou': torch.tensor(4.0)})
    hook.after_train_iter(runner, 0)
    logged = {key: buffer.current()
              for key, buffer in runner.message_hub.log_scalars.items()}
    with open(osp.join(out_dir, f'rank{rank}.json'), 'w') as file:
        json.dump(logged, file)
    torch_dist.destroy_process_group()


def test_a_rank_whose_weightings_have_not_run_joins_the_reduction(
        tmp_path):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    mp.start_processes(_log_one_step, args=(port, str(tmp_path)), nprocs=2,
                       start_method='spawn')
    logged = [json.loads((tmp_path / f'rank{rank}.json').read_text())
              for rank in range(2)]
    # The values of the one rank that has them, on both ranks.
    expected = {'train/bbox.slf_w_l1': 2.0, 'train/bbox.slf_w_iou': 0.5,
                'train/bbox.slf_raw_l1': 3.0, 'train/bbox.slf_raw_iou': 4.0,
                'train/bbox.slf_skipped': 0.0}
    assert logged == [expected, expected]


def test_a_diagnostic_still_in_the_loss_dict_is_logged_once():
    """Called without before_train, the hook finds the diagnostics in the
    loss dict, which the runner has logged already: it replaces that entry
    instead of adding a second one for the iteration."""
    torch.manual_seed(0)
    model = two_weightings_model()
    outputs = model(torch.randn(4, 3))
    hub = MessageHub.get_instance('test_a_diagnostic_still_in_the_loss_dict')
    for key, value in outputs.items():  # what RuntimeInfoHook logs
        hub.update_scalar(f'train/{key}', float(value) + 100.0)
    runner = SimpleNamespace(model=model, message_hub=hub)
    SLFLoggerHook().after_train_iter(runner, 0, outputs=outputs)
    history = hub.log_scalars['train/slf_w_coord']._log_history
    assert list(history) == [model.weighting.last_diagnostics['slf_w_coord']]
    # A nested weighting's diagnostics reach the loss dict under its prefix.
    nested = hub.log_scalars['train/cls.slf_w_x']._log_history
    assert list(nested) == [2.0]


def _fixed(weight: float):
    """A FixedWeighting of one term ``x`` that has run once on loss 1.0:
    its diagnostics are ``slf_w_x`` = ``weight``, ``slf_raw_x`` = 1.0 and
    ``slf_skipped`` = 0.0."""
    from mmdet_slf.slf import FixedWeighting
    weighting = FixedWeighting(terms=['x'], weights=[weight])
    weighting({'loss_x': torch.tensor(1.0)})
    return weighting


def test_a_single_head_weighting_logs_bare_keys_and_two_are_prefixed():
    """One weighting that is not in a loss module logs ``slf_w_x`` with no
    prefix, even when it sits in a head; with two such weightings each gets
    its owner's module path as prefix, so that they do not share a key."""
    model = nn.Module()
    model.bbox_head = nn.Module()
    model.bbox_head.weighting = _fixed(2.0)
    assert collect_diagnostics(model) == {
        'slf_w_x': 2.0, 'slf_raw_x': 1.0, 'slf_skipped': 0.0}
    model.rpn_head = nn.Module()
    model.rpn_head.weighting = _fixed(3.0)
    assert collect_diagnostics(model) == {
        'bbox_head.slf_w_x': 2.0, 'bbox_head.slf_raw_x': 1.0,
        'bbox_head.slf_skipped': 0.0,
        'rpn_head.slf_w_x': 3.0, 'rpn_head.slf_raw_x': 1.0,
        'rpn_head.slf_skipped': 0.0}


def test_a_deeply_nested_weighting_is_prefixed_by_its_whole_owner_path():
    """An SLFLoss under ``bbox_head.loss_cls``: the prefix is the full
    owner path ``bbox_head.loss_cls`` with ``loss_`` cut out, i.e.
    ``bbox_head.cls.`` (the example of the collect_diagnostics docstring),
    not only the first component."""
    model = nn.Module()
    model.bbox_head = nn.Module()
    model.bbox_head.loss_cls = nn.Module()
    model.bbox_head.loss_cls.weighting = _fixed(2.0)
    assert collect_diagnostics(model) == {
        'bbox_head.cls.slf_w_x': 2.0, 'bbox_head.cls.slf_raw_x': 1.0,
        'bbox_head.cls.slf_skipped': 0.0}


def test_a_weighting_held_under_two_names_is_logged_once():
    """One weighting module registered twice (a shared head): it is found
    once, under its first name, and its three diagnostics are logged once,
    as bare keys since it is the only weighting."""
    weighting = _fixed(2.0)
    model = nn.Module()
    model.bbox_head = nn.Module()
    model.bbox_head.weighting = weighting
    model.alias = weighting
    assert find_weightings(model) == [('bbox_head.weighting', weighting)]
    assert collect_diagnostics(model) == {
        'slf_w_x': 2.0, 'slf_raw_x': 1.0, 'slf_skipped': 0.0}
    hub = MessageHub.get_instance('test_a_weighting_held_under_two_names')
    SLFLoggerHook().after_train_iter(
        SimpleNamespace(model=model, message_hub=hub), 0)
    assert sorted(hub.log_scalars) == [
        'train/slf_raw_x', 'train/slf_skipped', 'train/slf_w_x']
