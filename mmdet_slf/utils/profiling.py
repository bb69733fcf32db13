# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Where the time of a step goes, per operator: ``torch.profiler`` over a few
calls, averaged per call, and the operators in which two callables differ
most. It answers what a timing ratio cannot: whether the extra time of a
training step is more operators (kernel launches), slower ones, or host
work such as the optimizer's loop over parameter groups.

Times measured under the profiler are inflated by its own overhead; compare
them between the two callables, and take speed from the interleaved timing
(:mod:`mmdet_slf.utils.timing`)."""
from typing import Any, Callable, Dict, List, Optional

import torch

OpStats = Dict[str, Dict[str, float]]


def profile_calls(fn: Callable[..., Any],
                  num_calls: int,
                  prepare: Optional[Callable[[], Any]] = None,
                  device: Optional[torch.device] = None) -> OpStats:
    """Profile ``num_calls`` calls of ``fn`` and average them per call.

    Args:
        fn (Callable): One unit of work, e.g. a training step; with
            ``prepare`` it takes the prepared input.
        num_calls (int): Calls profiled (>= 1).
        prepare (Callable, optional): Gives the next input; its work is
            not profiled. Defaults to None.
        device (torch.device, optional): A CUDA device adds the device
            activity (kernels) and a synchronisation after every call.
            Defaults to None (CPU only).

    Returns:
        dict: Operator or kernel name -> ``calls`` (per call of ``fn``),
        ``self_cpu_ms`` and ``self_device_ms`` (per call of ``fn``) and
        ``on_device`` (1.0 for a device kernel, 0.0 for a host operator).
    """
    from torch.profiler import ProfilerActivity, profile
    if not isinstance(num_calls, int) or num_calls < 1:
        raise ValueError(f'num_calls must be an int >= 1, got {num_calls!r}')
    cuda = device is not None and torch.device(device).type == 'cuda'
    activities = [ProfilerActivity.CPU]
    if cuda:
        activities.append(ProfilerActivity.CUDA)
    inputs = [prepare() if prepare else None for _ in range(num_calls)]
    with profile(activities=activities) as prof:
        for value in inputs:
            fn(value) if prepare else fn()
            if cuda:
                torch.cuda.synchronize(device)
    stats: OpStats = {}
    for event in prof.key_averages():
        on_device = event.device_type != torch.autograd.DeviceType.CPU
        entry = stats.setdefault(
            event.key, dict(calls=0.0, self_cpu_ms=0.0, self_device_ms=0.0,
                            on_device=float(on_device)))
        entry['calls'] += event.count / num_calls
        entry['self_cpu_ms'] += event.self_cpu_time_total / 1e3 / num_calls
        entry['self_device_ms'] += \
            event.self_device_time_total / 1e3 / num_calls
    return stats


def profile_totals(stats: OpStats) -> Dict[str, float]:
    """Per call: host operator calls, device kernels, the host operators'
    self time and the kernels' time. (A host operator's ``self_device_ms``
    is the time of the kernels it launched, which are also listed on their
    own, so only the kernels are summed.)"""
    host = [s for s in stats.values() if not s['on_device']]
    kernels = [s for s in stats.values() if s['on_device']]
    return dict(
        host_op_calls=sum(s['calls'] for s in host),
        device_kernels=sum(s['calls'] for s in kernels),
        self_cpu_ms=sum(s['self_cpu_ms'] for s in host),
        self_device_ms=sum(s['self_device_ms'] for s in kernels))


def op_differences(first: OpStats,
                   second: OpStats,
                   top: int = 15,
                   by: str = 'self_device_ms') -> List[Dict[str, Any]]:
    """The operators whose per-call cost differs most, second minus first.

    Args:
        first (dict), second (dict): :func:`profile_calls` results.
        top (int): Rows returned. Defaults to 15.
        by (str): ``'self_device_ms'``, ``'self_cpu_ms'`` or ``'calls'``;
            the rows are sorted by the absolute difference of this field,
            then of the calls. Defaults to 'self_device_ms'.

    Returns:
        list[dict]: ``name``, and ``first_<field>``, ``second_<field>`` and
        ``diff_<field>`` for ``calls``, ``self_cpu_ms`` and
        ``self_device_ms``.
    """
    fields = ('calls', 'self_cpu_ms', 'self_device_ms')
    if by not in fields:
        raise ValueError(f'by must be one of {fields}, got {by!r}')
    empty = dict.fromkeys(fields, 0.0)
    rows = []
    for name in set(first) | set(second):
        a, b = first.get(name, empty), second.get(name, empty)
        row: Dict[str, Any] = dict(name=name)
        for field in fields:
            row[f'first_{field}'] = a[field]
            row[f'second_{field}'] = b[field]
            row[f'diff_{field}'] = b[field] - a[field]
        rows.append(row)
    rows.sort(key=lambda r: (-abs(r[f'diff_{by}']), -abs(r['diff_calls']),
                             r['name']))
    return rows[:top]
