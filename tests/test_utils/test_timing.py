# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Interleaved timers checked with a fake clock: the call order, the
warm-up left out of the totals, and the ratio arithmetic. No wall-clock
bound anywhere."""
import math
import statistics
from types import SimpleNamespace

import pytest
import torch
from mmengine.model import BaseModel

from mmdet_slf.utils.timing import (Timing, device_synchronizer,
                                    geometric_mean_interval,
                                    inference_fps, inference_timings,
                                    paired_time_ratio,
                                    interleaved_timing, rate_ratio, rotated,
                                    train_step_seconds)


class FakeClock:
    """A clock that only moves when the timed work says so."""

    def __init__(self):
        self.now = 1000.0
        self.readings = 0

    def __call__(self) -> float:
        self.readings += 1
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def recording_fns(clock, costs, log, items=1):
    """Callables that log their name and advance the clock by their cost;
    a cost may be a list, used call by call."""
    calls = {name: 0 for name in costs}

    def make(name):

        def run(*args):
            cost = costs[name]
            if isinstance(cost, list):
                cost = cost[calls[name]]
            calls[name] += 1
            log.append((name, ) + args)
            clock.advance(cost)
            return items

        return run

    return {name: make(name) for name in costs}


def test_rotated_order():
    assert rotated(['a', 'b', 'c'], 0) == ['a', 'b', 'c']
    assert rotated(['a', 'b', 'c'], 1) == ['b', 'c', 'a']
    assert rotated(['a', 'b', 'c'], 5) == ['c', 'a', 'b']


def test_interleaving_order():
    clock, log = FakeClock(), []
    fns = recording_fns(clock, dict(a=1.0, b=1.0, c=1.0), log)
    interleaved_timing(fns, rounds=3, calls_per_round=2, warmup=2,
                       clock=clock)
    names = [entry[0] for entry in log]
    warmup = ['a', 'b', 'c', 'b', 'c', 'a']
    timed = ['a', 'a', 'b', 'b', 'c', 'c',
             'b', 'b', 'c', 'c', 'a', 'a',
             'c', 'c', 'a', 'a', 'b', 'b']
    assert names == warmup + timed
    # Two readings per slice (start, end), none during the warm-up.
    assert clock.readings == 2 * 3 * 3


def test_warmup_is_not_timed():
    clock, log = FakeClock(), []
    # The first two calls of each model are slow (compilation, caches).
    costs = dict(slf=[50.0, 50.0] + [0.2] * 6, fixed=[80.0, 80.0] + [0.1] * 6)
    fns = recording_fns(clock, costs, log, items=2)
    timings = interleaved_timing(fns, rounds=3, calls_per_round=2, warmup=2,
                                 clock=clock)
    assert timings['slf'].seconds == pytest.approx([0.4, 0.4, 0.4])
    assert timings['fixed'].seconds == pytest.approx([0.2, 0.2, 0.2])
    assert timings['slf'].items == [4, 4, 4]
    assert timings['slf'].seconds_per_item == pytest.approx(0.1)
    assert timings['fixed'].items_per_second == pytest.approx(20.0)


def test_prepared_inputs_are_passed_and_not_timed():
    clock, log = FakeClock(), []
    fns = recording_fns(clock, dict(a=1.0, b=3.0), log)
    made = []

    def loader(name):
        counter = iter(range(100))

        def next_input():
            made.append(name)
            clock.advance(7.0)  # slow loading must not count
            return f'{name}{next(counter)}'

        return next_input

    timings = interleaved_timing(
        fns, rounds=2, calls_per_round=2, warmup=1,
        prepare=dict(a=loader('a'), b=loader('b')), clock=clock)
    assert log == [('a', 'a0'), ('b', 'b0'), ('a', 'a1'), ('a', 'a2'),
                   ('b', 'b1'), ('b', 'b2'), ('b', 'b3'), ('b', 'b4'),
                   ('a', 'a3'), ('a', 'a4')]
    assert timings['a'].seconds == pytest.approx([2.0, 2.0])
    assert timings['b'].seconds == pytest.approx([6.0, 6.0])


def test_synchronize_brackets_every_slice():
    clock, log = FakeClock(), []
    fns = recording_fns(clock, dict(a=1.0), log)
    syncs = []
    interleaved_timing(fns, rounds=3, calls_per_round=1, warmup=0,
                       synchronize=lambda: syncs.append(clock.readings),
                       clock=clock)
    # Before each start reading and before each end reading.
    assert syncs == [0, 1, 2, 3, 4, 5]


def test_bad_arguments_name_the_keys():
    with pytest.raises(ValueError, match='rounds and calls_per_round'):
        interleaved_timing({'a': lambda: 1}, rounds=0)
    with pytest.raises(ValueError, match='prepare must have the keys'):
        interleaved_timing({'a': lambda x: 1}, prepare={'b': lambda: 0})


def test_ratio_arithmetic():
    first = Timing(seconds=[0.10, 0.12, 0.08, 0.10], items=[1, 1, 1, 1])
    second = Timing(seconds=[0.10, 0.10, 0.10, 0.10], items=[2, 2, 2, 2])
    ratio, two_se = rate_ratio(first, second)
    # 0.1 s vs 0.05 s per image: the second is twice as fast.
    assert ratio == pytest.approx(2.0)
    cv = statistics.stdev([0.10, 0.12, 0.08, 0.10]) / 0.10
    assert two_se == pytest.approx(2 * 2.0 * math.sqrt(cv**2 / 4))
    assert rate_ratio(second, second) == (pytest.approx(1.0), 0.0)
    summary = first.summary()
    assert summary['fps'] == pytest.approx(10.0)
    assert summary['mean_ms'] == pytest.approx(100.0)
    assert summary['median_ms'] == pytest.approx(100.0)
    assert summary['std_ms'] == pytest.approx(1e3 * cv * 0.10)


def test_ratio_from_fake_clock_run():
    clock, log = FakeClock(), []
    costs = dict(fixed=[0.02, 0.03] * 5, slf=[0.025] * 10)
    timings = interleaved_timing(recording_fns(clock, costs, log),
                                 rounds=10, calls_per_round=1, warmup=0,
                                 clock=clock)
    ratio, two_se = rate_ratio(timings['fixed'], timings['slf'])
    assert ratio == pytest.approx(1.0)
    # fixed: cv = std([.02, .03] * 5) / .025; slf: no spread.
    cv = statistics.stdev([0.02, 0.03] * 5) / 0.025
    assert two_se == pytest.approx(2 * math.sqrt(cv**2 / 10))


def test_paired_ratio_cancels_what_both_sides_share():
    # Rounds of very different length, the second always 10% slower: the
    # per-round ratios are all 1.1, so the interval has no width, while the
    # unpaired error counts the spread of the rounds.
    first = Timing(seconds=[1.0, 2.0, 4.0], items=[1, 1, 1])
    second = Timing(seconds=[1.1, 2.2, 4.4], items=[1, 1, 1])
    paired = paired_time_ratio(first, second)
    assert paired['n'] == 3
    assert paired['ratio'] == pytest.approx(1.1)
    assert paired['ci_low'] == pytest.approx(1.1)
    assert paired['ci_high'] == pytest.approx(1.1)
    assert rate_ratio(first, second)[1] > 0.5


def test_paired_ratio_by_hand():
    # Log ratios 0 and log 1.21: mean log 1.1, std |log 1.21| / sqrt(2),
    # half-width t(0.975, 1) * std / sqrt(2) = 12.7062 * log 1.1, so the
    # interval is 1.1 ** (1 -+ 12.7062) and the estimate the geometric mean.
    first = Timing(seconds=[2.0, 1.0], items=[2, 1])
    second = Timing(seconds=[1.0, 1.21], items=[1, 1])
    paired = paired_time_ratio(first, second)
    assert paired['ratio'] == pytest.approx(1.1)
    assert paired['ci_low'] == pytest.approx(1.1**(1 - 12.706205), rel=1e-5)
    assert paired['ci_high'] == pytest.approx(1.1**(1 + 12.706205), rel=1e-5)


def test_geometric_mean_interval_by_hand():
    # Per-process ratios 1.0 and 1.21: the same hand-worked interval.
    stats = geometric_mean_interval([1.0, 1.21])
    assert stats['n'] == 2
    assert stats['ratio'] == pytest.approx(1.1)
    assert stats['ci_low'] == pytest.approx(1.1**(1 - 12.706205), rel=1e-5)
    assert stats['ci_high'] == pytest.approx(1.1**(1 + 12.706205), rel=1e-5)
    # 90% coverage: t(0.95, 1 dof) = 6.313752 in place of 12.706205
    stats = geometric_mean_interval([1.0, 1.21], confidence=0.9)
    assert stats['ci_low'] == pytest.approx(1.1**(1 - 6.313752), rel=1e-5)
    assert stats['ci_high'] == pytest.approx(1.1**(1 + 6.313752), rel=1e-5)
    with pytest.raises(ValueError, match='ratios must be > 0'):
        geometric_mean_interval([1.0, 0.0])


def test_paired_ratio_needs_matching_rounds():
    with pytest.raises(ValueError, match='same number of rounds.*2 and 1'):
        paired_time_ratio(Timing([1.0, 1.0], [1, 1]), Timing([1.0], [1]))
    with pytest.raises(ValueError, match='at least one round'):
        paired_time_ratio(Timing(), Timing())


class ClockedModel(BaseModel):
    """test_step / train_step advance a fake clock by a fixed cost."""

    def __init__(self, clock, cost):
        super().__init__()
        self.clock, self.cost = clock, cost
        self.seen = []
        self.linear = torch.nn.Linear(1, 1)

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def test_step(self, data):
        assert not self.training
        self.seen.append(data['id'])
        self.clock.advance(self.cost)
        return [None] * len(data['inputs'])

    def train_step(self, data, optim_wrapper):
        assert self.training and optim_wrapper == 'optim'
        self.seen.append(data['id'])
        self.clock.advance(self.cost)
        return {}


def test_inference_and_train_step_timers():
    clock = FakeClock()
    models = dict(slf=ClockedModel(clock, 0.02),
                  fixed=ClockedModel(clock, 0.01))
    batches = [dict(id=i, inputs=[0, 0]) for i in range(3)]
    fps = inference_fps(models, batches, rounds=2, calls_per_round=2,
                        warmup=1, clock=clock)
    # Two images per batch.
    assert fps == pytest.approx(dict(slf=100.0, fixed=200.0))
    # Same batches, same order, for both models.
    assert models['slf'].seen == models['fixed'].seen == [0, 1, 2, 0, 1]
    timings = inference_timings(models, batches, rounds=4, calls_per_round=1,
                                warmup=0, clock=clock)
    assert timings['slf'].num_items == 8
    models['slf'].seen.clear()
    seconds = train_step_seconds(
        {name: (model, 'optim') for name, model in models.items()},
        batches, rounds=2, calls_per_round=3, warmup=0, clock=clock)
    assert seconds == pytest.approx(dict(slf=0.02, fixed=0.01))
    assert models['slf'].seen == [0, 1, 2, 0, 1, 2]


def test_device_synchronizer_waits_for_cuda_devices_only(monkeypatch):
    waited = []
    monkeypatch.setattr(torch.cuda, 'synchronize', waited.append)
    sync = device_synchronizer(torch.device('cuda', 1))
    sync()
    assert waited == [torch.device('cuda', 1)]
    assert device_synchronizer(torch.device('cpu')) is None
    assert device_synchronizer(None) is None


class GradRecordingModel(torch.nn.Module):
    """A detector on a (pretended) CUDA device whose test_step records
    whether autograd is on and how many clock readings precede it."""

    def __init__(self, clock, log):
        super().__init__()
        self.data_preprocessor = SimpleNamespace(device=torch.device('cuda'))
        self.clock, self.log = clock, log

    def test_step(self, data):
        self.log.append((self.clock.readings, torch.is_grad_enabled()))
        self.clock.advance(0.01)


def test_inference_timings_sync_each_slice_without_grad(monkeypatch):
    """On a CUDA model the device is synchronised before each clock
    reading, and no call, warm-up included, records an autograd graph."""
    clock, log, waited = FakeClock(), [], []
    monkeypatch.setattr(torch.cuda, 'synchronize',
                        lambda device: waited.append(clock.readings))
    models = dict(a=GradRecordingModel(clock, log),
                  b=GradRecordingModel(clock, log))
    with torch.enable_grad():
        inference_timings(models, [dict(inputs=[0])], rounds=2,
                          calls_per_round=1, warmup=1, clock=clock)
    assert [grad for _, grad in log] == [False] * 6
    # two warm-up calls, then one call per slice between its readings
    assert [readings for readings, _ in log] == [0, 0, 1, 3, 5, 7]
    assert waited == [0, 1, 2, 3, 4, 5, 6, 7]


def test_one_item_is_not_halved():
    """A single slice of one image taking 0.3 s is 0.3 s per image and
    1 / 0.3 images per second; the ratio against a 0.6 s image is 2."""
    single = Timing(seconds=[0.3], items=[1])
    assert single.seconds_per_item == pytest.approx(0.3)
    assert single.items_per_second == pytest.approx(1 / 0.3)
    ratio, two_se = rate_ratio(Timing([0.6], [1]), single)
    assert ratio == pytest.approx(2.0) and two_se == 0.0


def test_summary_median_and_two_slice_spread():
    """Per-image times 0.1, 0.1 and 0.4 s: median 100 ms, mean 200 ms
    (a slow slice moves the mean, not the median). Two slices, 0.1 and
    0.3 s, already have a sample std: |0.3 - 0.1| / sqrt(2) = 141.42 ms."""
    skewed = Timing(seconds=[0.1, 0.2, 0.4], items=[1, 2, 1]).summary()
    assert skewed['median_ms'] == pytest.approx(100.0)
    assert skewed['mean_ms'] == pytest.approx(1e3 * 0.7 / 4)
    pair = Timing(seconds=[0.1, 0.3], items=[1, 1]).summary()
    assert pair['std_ms'] == pytest.approx(1e3 * 0.2 / math.sqrt(2))
    assert pair['median_ms'] == pytest.approx(200.0)


def test_rate_ratio_counts_the_spread_of_two_slices():
    """First 0.1 and 0.3 s per image, second 0.2 and 0.2 s: ratio 1; the
    first's cv is (0.2 / sqrt(2)) / 0.2 = 1 / sqrt(2), so the relative
    variance is cv^2 / 2 = 1 / 4 and two standard errors are 2 * 1 * 0.5
    = 1.0."""
    ratio, two_se = rate_ratio(Timing([0.1, 0.3], [1, 1]),
                               Timing([0.2, 0.2], [1, 1]))
    assert ratio == pytest.approx(1.0)
    assert two_se == pytest.approx(1.0)


def test_empty_slices_and_extra_prepare_keys_are_refused():
    """A slice needs at least one call (else it times nothing), and a
    ``prepare`` with a key that ``fns`` lacks names a model that is not
    timed."""
    with pytest.raises(ValueError, match='got 1, 0 and 0'):
        interleaved_timing({'a': lambda: 1}, rounds=1, calls_per_round=0,
                           warmup=0)
    with pytest.raises(ValueError, match='prepare must have the keys'):
        interleaved_timing({'a': lambda x: 1},
                           prepare={'a': lambda: 0, 'b': lambda: 0})
