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
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

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
        prepare (Callable, optional): Gives an input; its work is not
            profiled. All ``num_calls`` inputs are made before the profile
            starts and held together (mind the memory of GPU batches).
            Defaults to None.
        device (torch.device, optional): A CUDA device adds the device
            activity (kernels) and a synchronisation after every call.
            Defaults to None (CPU only).

    Returns:
        dict: Operator or kernel name -> ``calls`` (per call of ``fn``),
        ``self_cpu_ms`` and ``self_device_ms`` (per call of ``fn``) and
        ``on_device`` (1.0 for a device kernel, 0.0 for a host event). Host
        events are operators and the ranges that torch marks with
        ``record_function`` (the optimizer's step, autograd's nodes), whose
        self time is host work of their own. The device's copies of those
        ranges are left out: they span kernels listed on their own. A
        kernel named like a host event is listed as ``'<name> [device]'``.
    """
    from torch.profiler import ProfilerActivity, profile
    if type(num_calls) is not int or num_calls < 1:
        raise ValueError(f'num_calls must be an int >= 1, got {num_calls!r}')
    cuda = device is not None and torch.device(device).type == 'cuda'
    activities = [ProfilerActivity.CPU]
    if cuda:
        activities.append(ProfilerActivity.CUDA)
    inputs = [prepare() if prepare else None for _ in range(num_calls)]
    if cuda:  # the inputs' own kernels finish outside the profile
        torch.cuda.synchronize(device)
    with profile(activities=activities) as prof:
        for value in inputs:
            fn(value) if prepare else fn()
            if cuda:
                torch.cuda.synchronize(device)
    events = [(event, event.device_type != torch.autograd.DeviceType.CPU)
              for event in prof.key_averages()]
    host_names = {event.key for event, on_device in events if not on_device}
    stats: OpStats = {}
    for event, on_device in events:
        if on_device and getattr(event, 'is_user_annotation', False):
            continue
        name = event.key
        if on_device and name in host_names:
            name += ' [device]'
        entry = stats.setdefault(
            name, dict(calls=0.0, self_cpu_ms=0.0, self_device_ms=0.0,
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
        top (int): Rows returned (>= 1). Defaults to 15.
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
    if type(top) is not int or top < 1:
        raise ValueError(f'top must be an int >= 1, got {top!r}')
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


# Operators that make the host wait for a CUDA device: a scalar read
# (``.item()``, ``bool(t)``), those whose output size depends on values
# (``bincount`` reads the largest value), and those that return a Python
# bool. ``repeat_interleave`` with tensor repeats and no ``output_size``
# reads their sum; it is renamed ``_repeat_interleave_read`` then.
HOST_READ_OPERATORS = frozenset({
    '_local_scalar_dense', 'nonzero', 'masked_select', '_unique2',
    'unique_consecutive', 'unique_dim', 'bincount', 'equal', 'allclose'
})
# Python-level calls that copy Python data to the device; with a pageable
# source such a copy waits for the device's queue as well.
_FROM_PYTHON_DATA = ('tensor', 'as_tensor', 'new_tensor')


def _on_host(device) -> bool:
    return device is None or torch.device(device).type == 'cpu'


class _OperatorLog(TorchDispatchMode):
    """Names of the operators dispatched, in order. Syncs that hide inside
    other operators are renamed: a copy from another device to the host
    (``_to_host``), a blocking copy from the host to another device
    (``_from_host``) and indexing by a boolean mask (``_mask_index``),
    which finds the mask's true entries on the host."""

    def __init__(self) -> None:
        super().__init__()
        self.names: List[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in ('_to_copy', 'copy_') and len(args) > 0 and isinstance(
                args[0], torch.Tensor):
            if name == 'copy_':
                source, target = args[1], args[0].device
                blocking = not (args[2] if len(args) > 2 else
                                kwargs.get('non_blocking', False))
            else:
                source = args[0]
                target = kwargs.get('device', source.device)
                blocking = not kwargs.get('non_blocking', False)
            # A scalar (0-dim) copy waits as long as any other.
            if isinstance(source, torch.Tensor):
                if _on_host(target) and not _on_host(source.device):
                    name = '_to_host'
                elif blocking and _on_host(source.device) \
                        and not _on_host(target):
                    name = '_from_host'
        elif name in ('index', 'index_put', 'index_put_') and len(args) > 1 \
                and any(isinstance(index, torch.Tensor)
                        and index.dtype == torch.bool
                        for index in args[1] if index is not None):
            name = '_mask_index'  # a boolean mask: nonzero inside
        elif name == 'repeat_interleave' and func._overloadname.startswith(
                'Tensor') and kwargs.get('output_size') is None:
            # x.repeat_interleave(repeats) reaches the dispatcher as this
            # overload of the repeats alone, which reads their sum
            name = '_repeat_interleave_read'
        self.names.append(name)
        return func(*args, **kwargs)


class _PythonDataLog(TorchFunctionMode):
    """Adds ``_from_host`` to ``log`` for a tensor made from Python data on
    another device (``torch.tensor(..., device=...)``, ``new_tensor``),
    which the dispatcher does not see as a copy."""

    def __init__(self, log: _OperatorLog) -> None:
        super().__init__()
        self.log = log

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, '__name__', None)
        if name in _FROM_PYTHON_DATA:
            device = kwargs.get('device')
            data = args[1] if name == 'new_tensor' else args[0]
            if name == 'new_tensor' and device is None:
                device = args[0].device
            elif device is None:  # torch.device(...) as a context, say
                device = torch.get_default_device()
            # A tensor passed in is copied by the dispatcher, if at all.
            if not isinstance(data, torch.Tensor) and not _on_host(device):
                self.log.names.append('_from_host')
        return func(*args, **kwargs)


SYNC_NAMES = HOST_READ_OPERATORS | {'_to_host', '_from_host', '_mask_index',
                                    '_repeat_interleave_read'}


def dispatched_operators(fn: Callable[[], Any]) -> List[str]:
    """The names of the operators one call of ``fn`` dispatches, in order,
    with the syncs renamed (:class:`_OperatorLog`, :class:`_PythonDataLog`).
    """
    log = _OperatorLog()
    with log, _PythonDataLog(log):
        fn()
    return log.names


def count_operators(fn: Callable[[], Any]) -> Dict[str, int]:
    """How many times ``fn`` dispatches each operator (by ATen name, with
    the syncs renamed as in :func:`host_syncs`).

    Every operator costs the host its dispatch, however small its kernel:
    at the batch sizes where a step is host-bound, what a loss weighting
    adds to it is mostly its operator count. Unlike a time, the count is
    exact and repeatable, so it can be compared, and checked, on a CPU.
    It is the same on every device for a forward and backward pass; an
    optimizer step is not: torch's optimizers loop per tensor on a CPU and
    use their ``foreach`` kernels on CUDA by default, so a step that
    includes one dispatches fewer operators there.

    Args:
        fn (Callable): One call, e.g. a training step on a prepared batch.

    Returns:
        dict[str, int]: Operator name -> calls, most frequent first.
    """
    counts: Dict[str, int] = {}
    for name in dispatched_operators(fn):
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def host_syncs(fn: Callable[[], Any]) -> Dict[str, Any]:
    """Where ``fn`` makes the host wait for the device, by operator order.

    On CUDA the host issues kernels ahead of the device until it has to
    wait: for a value it reads, or for a blocking copy from host memory to
    finish behind the queued work. The device then runs dry, and every
    operator the host issues after the sync, until enough work is queued
    again, runs on an idle device. A loss whose last sync comes early thus
    exposes the host time of all the operators that follow it. The count
    is exact on any device (it does not time anything), so it can be
    checked on a CPU; copies between devices are only seen where ``fn``
    uses a device other than the CPU (``'meta'`` will do).

    Args:
        fn (Callable): One call, e.g. a model's loss on a prepared batch.

    Returns:
        dict: ``operators`` (dispatched), ``syncs`` (their indexes and
        names, in order) and ``operators_after_last_sync`` (all of them
        when there is none).
    """
    names = dispatched_operators(fn)
    syncs = [(index, name) for index, name in enumerate(names)
             if name in SYNC_NAMES]
    after = len(names) - 1 - syncs[-1][0] if syncs else len(names)
    return dict(
        operators=len(names),
        syncs=[dict(index=index, operator=name) for index, name in syncs],
        operators_after_last_sync=after)
