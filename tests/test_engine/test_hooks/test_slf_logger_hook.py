# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""SLFLoggerHook takes the diagnostics out of the loss dicts and logs them
from one read per device: every iteration, under the same keys, with the
values the weightings computed."""
import pytest
import torch
from conftest import toy_runner, two_weightings_model
from mmengine.hooks import Hook

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
