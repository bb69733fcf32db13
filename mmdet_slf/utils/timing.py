# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Interleaved timing of several models in one process.

Machines are noisy: a model timed alone at 10:00 and another at 10:05 can
differ by more than the effect measured. Here every model runs a short slice
in turn, round after round, with the order rotated by one each round, so load
changes hit all models alike and the *ratios* are what to report. The warm-up
calls are interleaved the same way and never timed.

Every timer takes a ``clock`` (``time.perf_counter`` by default), so the
arithmetic can be checked with a fake clock instead of a wall-clock bound.
"""
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

Clock = Callable[[], float]


@dataclass
class Timing:
    """The timed slices of one callable.

    Args:
        seconds (list[float]): Duration of every timed slice.
        items (list[int]): Items (images, steps) processed in each slice.
    """
    seconds: List[float] = field(default_factory=list)
    items: List[int] = field(default_factory=list)

    def add(self, seconds: float, items: int) -> None:
        self.seconds.append(seconds)
        self.items.append(items)

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds))

    @property
    def num_items(self) -> int:
        return int(sum(self.items))

    @property
    def seconds_per_item(self) -> float:
        """Total time over total items (the mean time of an item)."""
        return self.total_seconds / max(self.num_items, 1)

    @property
    def items_per_second(self) -> float:
        """Items per second, e.g. FPS when an item is an image."""
        return self.num_items / self.total_seconds

    def per_item(self) -> List[float]:
        """Seconds per item of every slice: the samples of the noise."""
        return [s / max(n, 1) for s, n in zip(self.seconds, self.items)]

    def summary(self) -> Dict[str, float]:
        """``fps``, ``mean_ms``, ``median_ms`` and ``std_ms`` (sample std)
        of the per-item time of the slices."""
        samples = self.per_item()
        return dict(
            fps=self.items_per_second,
            mean_ms=1e3 * self.seconds_per_item,
            median_ms=1e3 * statistics.median(samples),
            std_ms=1e3 * (statistics.stdev(samples)
                          if len(samples) > 1 else 0.0))


def rotated(names: Sequence[str], index: int) -> List[str]:
    """``names`` rotated left by ``index``: the order of round ``index``."""
    shift = index % len(names)
    return list(names[shift:]) + list(names[:shift])


def device_synchronizer(
        device: Optional[torch.device]) -> Optional[Callable[[], None]]:
    """``torch.cuda.synchronize`` for a CUDA device, else None (CPU work is
    finished when the call returns)."""
    if device is None or torch.device(device).type != 'cuda':
        return None
    return lambda: torch.cuda.synchronize(device)


def interleaved_timing(fns: Dict[str, Callable[..., int]],
                       rounds: int = 5,
                       calls_per_round: int = 10,
                       warmup: int = 3,
                       prepare: Optional[Dict[str, Callable[[], Any]]] = None,
                       synchronize: Optional[Callable[[], None]] = None,
                       clock: Clock = time.perf_counter) -> Dict[str, Timing]:
    """Time several callables interleaved, round-robin.

    Round ``r`` runs every callable ``calls_per_round`` times, one callable
    after the other, in the order of ``fns`` rotated left by ``r``. Before
    the timed rounds, ``warmup`` untimed calls per callable run in the same
    rotated way.

    Args:
        fns (dict[str, Callable]): Name -> callable doing one unit of work
            and returning the number of items it processed (images). With
            ``prepare`` it takes the prepared input as its argument.
        rounds (int): Timed rounds. Defaults to 5.
        calls_per_round (int): Calls per callable and round: one timed
            slice. Defaults to 10.
        warmup (int): Untimed calls per callable first. Defaults to 3.
        prepare (dict[str, Callable], optional): Name -> callable giving the
            next input (a data batch), run before the slice's clock starts,
            so making or loading inputs is not timed. Defaults to None.
        synchronize (Callable, optional): Called before each clock reading
            (``device_synchronizer(device)`` for CUDA). Defaults to None.
        clock (Callable[[], float]): Seconds. Defaults to
            ``time.perf_counter``.

    Returns:
        dict[str, Timing]: Per name, the seconds and items of its
        ``rounds`` slices.
    """
    if rounds < 1 or calls_per_round < 1 or warmup < 0:
        raise ValueError('rounds and calls_per_round must be >= 1 and warmup'
                         f' >= 0, got {rounds}, {calls_per_round} and '
                         f'{warmup}')
    if prepare is not None and set(prepare) != set(fns):
        raise ValueError(f'prepare must have the keys of fns {list(fns)}, '
                         f'got {list(prepare)}')
    names = list(fns)
    sync = synchronize or (lambda: None)

    def inputs(name: str, num_calls: int) -> List[tuple]:
        if prepare is None:
            return [()] * num_calls
        return [(prepare[name](), ) for _ in range(num_calls)]

    for index in range(warmup):
        for name in rotated(names, index):
            for args in inputs(name, 1):
                fns[name](*args)
    timings = {name: Timing() for name in names}
    for index in range(rounds):
        for name in rotated(names, index):
            slice_inputs = inputs(name, calls_per_round)
            sync()
            start = clock()
            num_items = 0
            for args in slice_inputs:
                num_items += fns[name](*args)
            sync()
            timings[name].add(clock() - start, num_items)
    return timings


def rate_ratio(first: Timing, second: Timing) -> Tuple[float, float]:
    """Speed of ``second`` over ``first`` (items per second), with two
    standard errors of the ratio from the spread of the slices.

    The ratio of the mean per-item times ``m1 / m2`` has the relative
    standard error ``sqrt(cv1^2 / n1 + cv2^2 / n2)``, ``cv`` being a
    timing's coefficient of variation over its ``n`` slices: how far apart
    two identical models may land by noise alone.

    Args:
        first (Timing): Denominator (e.g. the baseline).
        second (Timing): Numerator.

    Returns:
        tuple[float, float]: ``(ratio, 2 * standard error)``.
    """
    ratio = first.seconds_per_item / second.seconds_per_item
    relative_variance = 0.0
    for timing in (first, second):
        samples = timing.per_item()
        if len(samples) > 1:
            cv = statistics.stdev(samples) / statistics.fmean(samples)
            relative_variance += cv**2 / len(samples)
    return ratio, 2 * ratio * math.sqrt(relative_variance)


def geometric_mean_interval(ratios: Sequence[float],
                            confidence: float = 0.95) -> Dict[str, float]:
    """Geometric mean of positive ratios, with the t-interval of the mean
    log ratio mapped back: ``exp(mean +- t * std / sqrt(n))``.

    Args:
        ratios (Sequence[float]): Ratios > 0 (per round, per process).
        confidence (float): Coverage of the interval. Defaults to 0.95.

    Returns:
        dict: ``n``, ``ratio``, ``ci_low`` and ``ci_high`` (nan for one
        ratio).
    """
    from mmdet_slf.benchmarking.stats import summarize
    if len(ratios) == 0:
        raise ValueError('geometric_mean_interval needs at least one ratio')
    if any(not value > 0 for value in ratios):
        raise ValueError(f'ratios must be > 0, got {list(ratios)}')
    stats = summarize([math.log(value) for value in ratios], confidence)
    return dict(n=stats['n'], ratio=math.exp(stats['mean']),
                ci_low=math.exp(stats['ci_low']),
                ci_high=math.exp(stats['ci_high']))


def paired_time_ratio(first: Timing,
                      second: Timing,
                      confidence: float = 0.95) -> Dict[str, float]:
    """Time per item of ``second`` over ``first``, paired slice by slice.

    :func:`interleaved_timing` runs slice ``r`` of every callable in the
    same round, on the same inputs when their ``prepare`` streams are alike
    (the same batches, so the same boxes to assign). What makes a round slow
    for one (a batch with many boxes, a clock dip) mostly makes it slow for
    the other, and the per-round ratio cancels it, while
    :func:`rate_ratio` counts it as noise on both sides. The estimate is
    :func:`geometric_mean_interval` of the per-round ratios.

    Args:
        first (Timing): Denominator (e.g. the baseline).
        second (Timing): Numerator, with as many slices as ``first``.
        confidence (float): Coverage of the interval. Defaults to 0.95.

    Returns:
        dict: ``n`` (rounds), ``ratio``, ``ci_low`` and ``ci_high`` (nan for
        one round).
    """
    if len(first.seconds) != len(second.seconds):
        raise ValueError(
            'paired slices need the same number of rounds on both sides, '
            f'got {len(first.seconds)} and {len(second.seconds)}')
    if not first.seconds:
        raise ValueError('paired_time_ratio needs at least one round')
    return geometric_mean_interval(
        [b / a for a, b in zip(first.per_item(), second.per_item())],
        confidence)


def _model_device(model: nn.Module) -> torch.device:
    preprocessor = getattr(model, 'data_preprocessor', None)
    if preprocessor is not None and hasattr(preprocessor, 'device'):
        return preprocessor.device
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device('cpu')


def cycle(batches: Sequence[Any]) -> Callable[[], Any]:
    """A callable returning the items of ``batches`` in turn, endlessly."""
    if not batches:
        raise ValueError('batches must not be empty')
    position = [0]

    def next_batch() -> Any:
        batch = batches[position[0] % len(batches)]
        position[0] += 1
        return batch

    return next_batch


def _time_on_batches(fns: Dict[str, Callable[[dict], int]],
                     model: nn.Module, batches: Sequence[dict], rounds: int,
                     calls_per_round: int, warmup: int,
                     clock: Clock) -> Dict[str, Timing]:
    """:func:`interleaved_timing` of callables that each take the same
    batches in the same order, synchronised on ``model``'s device."""
    return interleaved_timing(
        fns,
        rounds,
        calls_per_round,
        warmup,
        prepare={name: cycle(batches)
                 for name in fns},
        synchronize=device_synchronizer(_model_device(model)),
        clock=clock)


def inference_timings(models: Dict[str, nn.Module],
                      batches: Sequence[dict],
                      rounds: int = 5,
                      calls_per_round: int = 20,
                      warmup: int = 5,
                      clock: Clock = time.perf_counter) -> Dict[str, Timing]:
    """Interleaved timing of ``model.test_step``; every model gets the
    same batches in the same order.

    The data preprocessor is part of the timed call, as in mmdet's
    benchmark; data loading is not.

    Args:
        models (dict[str, nn.Module]): Detectors, put in eval mode here.
        batches (Sequence[dict]): Data batches (``inputs``,
            ``data_samples``), cycled through.
        rounds, calls_per_round, warmup, clock: See
            :func:`interleaved_timing`.

    Returns:
        dict[str, Timing]: Per model, seconds and images of every slice.
    """

    def make_fn(model: nn.Module) -> Callable[[dict], int]:

        def run(batch: dict) -> int:
            with torch.no_grad():
                model.test_step(batch)
            return len(batch['inputs'])

        return run

    for model in models.values():
        model.eval()
    return _time_on_batches(
        {name: make_fn(model)
         for name, model in models.items()},
        next(iter(models.values())), batches, rounds, calls_per_round,
        warmup, clock)


def inference_fps(models: Dict[str, nn.Module],
                  batches: Sequence[dict],
                  rounds: int = 5,
                  calls_per_round: int = 20,
                  warmup: int = 5,
                  clock: Clock = time.perf_counter) -> Dict[str, float]:
    """Frames per second of ``model.test_step``, interleaved; see
    :func:`inference_timings` for the arguments.

    Returns:
        dict[str, float]: FPS per model.
    """
    timings = inference_timings(models, batches, rounds, calls_per_round,
                                warmup, clock)
    return {name: t.items_per_second for name, t in timings.items()}


def train_step_seconds(runs: Dict[str, tuple],
                       batches: List[dict],
                       rounds: int = 5,
                       calls_per_round: int = 5,
                       warmup: int = 2,
                       clock: Clock = time.perf_counter) -> Dict[str, float]:
    """Seconds per ``model.train_step`` (forward, backward, update).

    Args:
        runs (dict[str, tuple]): Name -> ``(model, optim_wrapper)``.
        batches (list[dict]): Training data batches, cycled through; every
            model sees the same batches in the same order.
        rounds, calls_per_round, warmup, clock: See
            :func:`interleaved_timing`.

    Returns:
        dict[str, float]: Seconds per step.
    """

    def make_fn(model: nn.Module, optim_wrapper) -> Callable[[dict], int]:

        def run(batch: dict) -> int:
            model.train_step(batch, optim_wrapper)
            return 1

        return run

    for model, _ in runs.values():
        model.train()
    timings = _time_on_batches(
        {name: make_fn(*run)
         for name, run in runs.items()},
        next(iter(runs.values()))[0], batches, rounds, calls_per_round,
        warmup, clock)
    return {name: t.seconds_per_item for name, t in timings.items()}
