# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""SLFLoggerHook takes the diagnostics out of the loss dicts and logs them
from one read per device: every iteration, under the same keys, with the
values the weightings computed."""
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import mmdet_slf  # noqa: F401
from mmdet_slf.engine.hooks import claim_diagnostics, collect_diagnostics
from mmdet_slf.slf import FixedWeighting, SLFWeighting
from mmdet_slf.utils.profiling import count_operators


class ToyModel(BaseModel):
    """Two per-image terms weighted by SLF, and a weighting nested in a loss
    module, as in a detector."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.weighting = SLFWeighting(terms=['coord', 'obj'],
                                      prior=[5.0, 1.0])
        self.loss_cls = nn.Module()
        self.loss_cls.weighting = FixedWeighting(terms=['x'], weights=[2.0])

    def forward(self, inputs, data_samples=None, mode='tensor'):
        raw = self.linear(inputs).pow(2)  # [N, 2]
        losses = self.weighting({'loss_coord': raw[:, 0],
                                 'loss_obj': raw[:, 1]})
        nested = self.loss_cls.weighting({'loss_x': raw.mean()})
        losses['loss_x'] = nested['loss_x']
        return losses


def test_claimed_diagnostics_leave_the_loss_dict_and_are_read_at_once():
    torch.manual_seed(0)
    model = ToyModel()
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
    model = ToyModel()
    outputs = OutputKeys()
    runner = Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=[dict(inputs=torch.randn(3)) for _ in range(12)],
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=4,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=3),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        custom_hooks=[dict(type='SLFLoggerHook'), outputs],
        default_scope='mmdet')
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
