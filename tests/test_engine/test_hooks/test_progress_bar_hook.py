# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Progress bars: in a file or pipe one full line per interval (fake clock),
and in a real tiny run a train, a test bar and one line per validation."""
import io

import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

import mmdet_slf  # noqa: F401
from mmdet.registry import METRICS
from mmdet_slf.engine.hooks import ProgressBarHook
from mmdet_slf.engine.hooks.progress_bar_hook import LineProgress


class FakeClock:

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_line_progress_prints_a_line_per_interval():
    clock, stream = FakeClock(), io.StringIO()
    bar = LineProgress(100, 'train', 'it', stream, interval=30.0,
                       clock=clock)
    for _ in range(40):
        clock.now += 1.0  # one second per step
        bar.set_postfix({'loss': '0.500'})
        bar.update()
    bar.close()
    lines = stream.getvalue().splitlines()
    # At 30 s (30 steps) and at the close (40 steps, 40 s).
    assert len(lines) == 2 and '\r' not in stream.getvalue()
    assert lines[0].startswith('train:  30%') and '30/100' in lines[0]
    # 60 steps left at 1 step/s: ETA one minute.
    assert '[00:40<01:00' in lines[1] and 'loss=0.500' in lines[1]


def test_line_progress_counts_from_a_resumed_start():
    clock, stream = FakeClock(), io.StringIO()
    bar = LineProgress(100, 'train', 'it', stream, initial=50,
                       interval=30.0, clock=clock)
    clock.now = 10.0
    bar.update(10)
    bar.close()
    # 10 steps in 10 s since the resume: 40 left take 40 s.
    assert '60/100 [00:10<00:40' in stream.getvalue()


def test_line_progress_writes_the_last_step_once():
    """10 steps of 1 s with a 1 s interval: a line after each of steps
    1-9, none at step 10 (the close writes it): 10 lines, one of them
    10/10."""
    clock, stream = FakeClock(), io.StringIO()
    bar = LineProgress(10, 'val', 'batch', stream, interval=1.0,
                       clock=clock)
    for _ in range(10):
        clock.now += 1.0
        bar.update()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert [line for line in lines if '10/10' in line] == [lines[-1]]


def test_line_progress_closed_at_once():
    """Closed before any time has passed: no rate, no ETA, no error."""
    stream = io.StringIO()
    bar = LineProgress(10, 'test', 'batch', stream, clock=FakeClock())
    bar.close()
    assert stream.getvalue().startswith('test:   0%')
    assert '0/10 [00:00<?, ?batch/s]' in stream.getvalue()


def test_train_postfix_of_the_loss_window_and_the_metric():
    """The shown loss is the mean of the last ``loss_window`` losses (2:
    (1 + 2) / 2 = 1.5, not the mean of all, 13 / 3); a validation adds its
    metric under the last part of the key, and one without that key
    changes nothing."""
    from types import SimpleNamespace
    from mmengine.logging import HistoryBuffer
    stream = io.StringIO()
    hook = ProgressBarHook(loss_window=2, file=stream)
    runner = SimpleNamespace(
        max_iters=10, iter=3, message_hub=SimpleNamespace(log_scalars={
            'train/loss': HistoryBuffer([10.0, 1.0, 2.0], [1, 1, 1])}))
    hook.before_train(runner)
    hook.after_train_iter(runner, 0)
    bar = hook._bars['train']
    assert bar.postfix == 'loss=1.500'
    hook.after_val_epoch(runner, {'coco/bbox_mAP': 0.5})
    assert bar.postfix == 'loss=1.500' and stream.getvalue() == ''
    hook.after_val_epoch(runner, {'pascal_voc/mAP': 0.625})
    assert bar.postfix == 'loss=1.500, mAP=0.625'
    assert stream.getvalue() == 'val at iteration 3: pascal_voc/mAP 0.6250\n'


def test_train_bar_of_a_resumed_run_starts_at_its_iteration():
    from types import SimpleNamespace
    stream = io.StringIO()
    hook = ProgressBarHook(file=stream)
    hook.before_train(SimpleNamespace(max_iters=100, iter=50))
    bar = hook._bars['train']
    assert bar.initial == bar.n == 50 and bar.total == 100


@METRICS.register_module(force=True)
class CountingMetric(BaseMetric):
    """A metric that grows with every validation: 0.25, 0.5, ..."""
    default_prefix = 'toy'

    def __init__(self):
        super().__init__()
        self.calls = 0

    def process(self, data_batch, data_samples):
        self.results.append(1)

    def compute_metrics(self, results):
        self.calls += 1
        return dict(mAP=0.25 * self.calls)


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=out.pow(2).mean())
        return [dict() for _ in inputs]


def test_bars_of_a_tiny_run(tmp_path):
    stream = io.StringIO()
    loader = dict(
        dataset=[dict(inputs=torch.ones(3)) for _ in range(8)],
        sampler=dict(type='DefaultSampler', shuffle=False),
        batch_size=2,
        num_workers=0,
        collate_fn=dict(type='pseudo_collate'))
    runner = Runner(
        model=ToyModel(),
        work_dir=str(tmp_path),
        train_dataloader=loader,
        val_dataloader=loader,
        test_dataloader=loader,
        val_evaluator=dict(type='CountingMetric'),
        test_evaluator=dict(type='CountingMetric'),
        train_cfg=dict(by_epoch=False, max_iters=4, val_interval=2),
        val_cfg=dict(),
        test_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        custom_hooks=[
            dict(type='ProgressBarHook', metric_key='toy/mAP', file=stream)
        ],
        default_scope='mmdet')
    runner.train()
    runner.test()
    lines = stream.getvalue().splitlines()
    assert lines[0] == 'val at iteration 2: toy/mAP 0.2500'
    assert lines[1] == 'val at iteration 4: toy/mAP 0.5000'
    assert lines[2].startswith('train: 100%') and '4/4' in lines[2]
    assert 'loss=' in lines[2] and 'mAP=0.500' in lines[2]
    assert lines[3].startswith('test: 100%') and '4/4' in lines[3]
    assert len(lines) == 4


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match='loss_window must be >= 1'):
        ProgressBarHook(loss_window=0)
    with pytest.raises(ValueError, match='line_interval must be > 0'):
        ProgressBarHook(line_interval=0)
    with pytest.raises(ValueError, match='min_interval and line_interval '
                       r'must be > 0, got 0 and 30\.0'):
        ProgressBarHook(min_interval=0)
