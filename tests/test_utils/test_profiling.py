# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Per-operator profiles of a step: the operator counts per call are exact
(they do not depend on timing), and the differences of two steps name the
operators one of them adds."""
import pytest
import torch

from mmdet_slf.utils.profiling import (count_operators, host_syncs,
                                       op_differences, profile_calls,
                                       profile_totals)


def step_a(x):
    # two matrix products and one addition per call
    y = torch.mm(x, x)
    return torch.mm(y, x) + 1


def step_b(x):
    # four matrix products, no addition
    for _ in range(4):
        x = torch.mm(x, x)
    return x


def inputs():
    return torch.eye(8)


def test_counts_are_per_call():
    stats = profile_calls(step_a, 3, prepare=inputs)
    assert stats['aten::mm']['calls'] == pytest.approx(2)
    assert stats['aten::add']['calls'] == pytest.approx(1)
    assert stats['aten::mm']['self_cpu_ms'] > 0
    # on the CPU there is no device activity
    assert stats['aten::mm']['self_device_ms'] == 0
    totals = profile_totals(stats)
    assert totals['device_kernels'] == 0
    assert totals['host_op_calls'] == pytest.approx(
        sum(s['calls'] for s in stats.values()))
    assert totals['self_cpu_ms'] == pytest.approx(
        sum(s['self_cpu_ms'] for s in stats.values()))
    # without prepare the callable takes no argument
    stats = profile_calls(lambda: step_b(torch.eye(4)), 2)
    assert stats['aten::mm']['calls'] == pytest.approx(4)
    with pytest.raises(ValueError, match='num_calls'):
        profile_calls(step_a, 0, prepare=inputs)


def test_differences_name_the_added_operators():
    first = profile_calls(step_a, 2, prepare=inputs)
    second = profile_calls(step_b, 2, prepare=inputs)
    rows = {row['name']: row
            for row in op_differences(first, second, top=100, by='calls')}
    assert rows['aten::mm']['diff_calls'] == pytest.approx(2)
    # an operator only the first runs: second side 0
    assert rows['aten::add']['second_calls'] == 0
    assert rows['aten::add']['diff_calls'] == pytest.approx(-1)
    assert rows['aten::mm']['diff_self_cpu_ms'] == pytest.approx(
        rows['aten::mm']['second_self_cpu_ms'] -
        rows['aten::mm']['first_self_cpu_ms'])
    # sorted by the absolute difference
    top = op_differences(first, second, top=1, by='calls')
    assert len(top) == 1
    assert abs(top[0]['diff_calls']) == max(
        abs(row['diff_calls']) for row in rows.values())
    with pytest.raises(ValueError, match='by must be one of'):
        op_differences(first, second, by='time')


def test_count_operators_by_hand():
    """step_a issues mm, mm, add; step_b four mm; a read is renamed."""
    x = inputs()
    assert count_operators(lambda: step_a(x)) == {'mm': 2, 'add': 1}
    assert count_operators(lambda: step_b(x)) == {'mm': 4}
    # most frequent first, a scalar read under its sync name
    assert list(count_operators(lambda: (step_a(x).sum().item(),
                                         step_b(x)))) == [
        'mm', '_local_scalar_dense', 'add', 'sum']


def test_host_syncs_finds_each_sync_in_operator_order():
    """Hand-worked: mul, sum, gt, [item], gt, [mask index], lt, lift_fresh
    (the 0 made a tensor), [mask assignment], [nonzero], add."""
    x = torch.tensor([1.0, -2.0, 3.0])

    def step():
        y = x * 2
        if bool(y.sum() > 0):
            y[y > 0]
        y[y < 0] = 0
        y.nonzero()
        return y + 1

    trace = host_syncs(step)
    assert trace['operators'] == 11
    assert trace['syncs'] == [
        dict(index=3, operator='_local_scalar_dense'),
        dict(index=5, operator='_mask_index'),
        dict(index=8, operator='_mask_index'),
        dict(index=9, operator='nonzero')
    ]
    assert trace['operators_after_last_sync'] == 1
    # Without a sync every operator counts as after it.
    assert host_syncs(lambda: x * 2 + 1) == dict(
        operators=2, syncs=[], operators_after_last_sync=2)


def test_host_syncs_finds_blocking_copies_between_devices():
    """On the ``'meta'`` device, which stands for a GPU here: data made
    from Python on the device, and blocking copies to it, wait for the
    device; a non-blocking copy and tensors filled on the device do not."""
    device = torch.empty(2, device='meta')

    def step():
        device.new_tensor([128.0, 160.0])  # [from host]
        torch.tensor([1.0, 2.0], device='meta')  # [from host]
        torch.ones(2).to(device)  # ones, [from host]
        torch.ones(2).to(device, non_blocking=True)  # ones, _to_copy
        device.new_full((2, ), 128.0)  # new_full
        torch.as_tensor(device, device='meta')  # the same tensor: nothing
        return device * 2  # mul

    trace = host_syncs(step)
    assert trace['operators'] == 8
    assert [sync['index'] for sync in trace['syncs']] == [0, 1, 3]
    assert {sync['operator'] for sync in trace['syncs']} == {'_from_host'}
    assert trace['operators_after_last_sync'] == 4


def test_host_syncs_counts_scalar_copies_between_devices():
    """A copy of a 0-dim tensor waits for the device like any other: a
    blocking ``.to`` or ``copy_`` of a host scalar, a ``new_tensor`` of
    one, and a scalar read back with ``.cpu()``."""
    device = torch.empty(2, device='meta')
    scalar = torch.tensor(2.0)  # made outside: no operator in the trace

    def step():
        scalar.to('meta')  # [from host]
        torch.empty((), device='meta').copy_(scalar)  # empty, [from host]
        device.new_tensor(scalar)  # detach, [from host]
        scalar.to('meta', non_blocking=True)  # _to_copy
        try:
            device.sum().cpu()  # sum, [to host]
        except NotImplementedError:
            pass  # 'meta' holds no data to copy back
        return device * 2  # mul

    trace = host_syncs(step)
    assert trace['operators'] == 9
    assert trace['syncs'] == [
        dict(index=0, operator='_from_host'),
        dict(index=2, operator='_from_host'),
        dict(index=4, operator='_from_host'),
        dict(index=7, operator='_to_host')
    ]
    assert trace['operators_after_last_sync'] == 1


def hand_stats():
    """Two host operators and a kernel, per call: (calls, host ms, device
    ms, on device)."""
    rows = {'aten::mm': (2.0, 0.5, 0.0, 0.0),
            'aten::add': (1.0, 0.25, 0.0, 0.0),
            'gemm_kernel': (2.0, 0.0, 1.5, 1.0)}
    return {name: dict(calls=c, self_cpu_ms=h, self_device_ms=d, on_device=o)
            for name, (c, h, d, o) in rows.items()}


def test_totals_sum_host_operators_and_kernels_apart():
    totals = profile_totals(hand_stats())
    assert totals == dict(host_op_calls=3.0, device_kernels=2.0,
                          self_cpu_ms=0.75, self_device_ms=1.5)


def test_times_are_per_call():
    """Three calls that each sleep 20 ms in one traced range: its self
    time per call is about 20 ms, not 60."""
    import time

    def step():
        with torch.profiler.record_function('sleep_range'):
            time.sleep(0.02)

    stats = profile_calls(step, 3)
    assert stats['sleep_range']['calls'] == pytest.approx(1.0)
    assert 19.0 < stats['sleep_range']['self_cpu_ms'] < 40.0


def test_differences_sort_by_size_whatever_the_sign_then_by_calls():
    first = hand_stats()
    second = hand_stats()
    # binary fractions, so that equal differences are equal
    second['aten::mm']['self_cpu_ms'] = 0.0  # -0.5: the largest change
    second['aten::add']['self_cpu_ms'] = 0.375  # +0.125
    second['aten::add']['calls'] = 3.0
    second['aten::relu'] = dict(calls=1.0, self_cpu_ms=0.375,
                                self_device_ms=0.0, on_device=0.0)
    second['aten::abs'] = dict(calls=2.0, self_cpu_ms=0.125,
                               self_device_ms=0.0, on_device=0.0)
    names = [row['name'] for row in op_differences(first, second, top=10,
                                                   by='self_cpu_ms')]
    # add and abs tie at +0.125: add's two extra calls against abs's two
    # tie too, so the name decides
    assert names[:4] == ['aten::mm', 'aten::relu', 'aten::abs', 'aten::add']
    second['aten::add']['calls'] = 4.0  # now add changed more calls
    names = [row['name'] for row in op_differences(first, second, top=10,
                                                   by='self_cpu_ms')]
    assert names[:4] == ['aten::mm', 'aten::relu', 'aten::add', 'aten::abs']
    for top in (0, -1, 1.5):
        with pytest.raises(ValueError, match='top must be an int >= 1'):
            op_differences(first, second, top=top)


def test_a_bool_is_not_a_number_of_calls():
    with pytest.raises(ValueError, match='num_calls'):
        profile_calls(step_a, True, prepare=inputs)


def test_every_host_read_operator_is_a_sync():
    """Each operator that reads a device value on the host, by name."""
    x = torch.tensor([1.0, 0.0, 2.0])
    counts = torch.tensor([1, 0, 2])
    calls = [
        ('nonzero', lambda: x.nonzero()),
        ('masked_select', lambda: x.masked_select(x > 0)),
        ('_unique2', lambda: torch.unique(x)),
        ('unique_consecutive', lambda: torch.unique_consecutive(x)),
        ('unique_dim', lambda: torch.unique(x[None], dim=0)),
        ('equal', lambda: torch.equal(x, x)),
        ('allclose', lambda: torch.allclose(x, x)),
        ('bincount', lambda: torch.bincount(counts)),
        ('_repeat_interleave_read', lambda: x.repeat_interleave(counts)),
    ]
    for name, call in calls:
        syncs = [sync['operator'] for sync in host_syncs(call)['syncs']]
        assert name in syncs, (name, syncs)
    # with its output size given, repeat_interleave reads nothing
    trace = host_syncs(lambda: x.repeat_interleave(counts, output_size=3))
    assert trace['syncs'] == []


def test_copy_into_the_device_waits_only_when_blocking():
    """``copy_`` from host memory into the device: a non-blocking copy
    queues behind the device's work, a blocking one waits for it."""
    host = torch.empty(2)

    def step():
        target = torch.empty(2, device='meta')  # empty
        target.copy_(host, non_blocking=True)  # copy_
        target.copy_(host, True)  # copy_ (non_blocking given by position)
        target.copy_(host)  # [from host]
        return target

    trace = host_syncs(step)
    assert trace['operators'] == 4
    assert trace['syncs'] == [dict(index=3, operator='_from_host')]


def test_a_default_device_counts_as_the_tensors_device():
    """Python data made while another device is the default (a
    ``torch.device`` context around the trace) is copied to it, as with
    that ``device=`` given."""
    with torch.device('meta'):
        trace = host_syncs(lambda: torch.tensor([1.0, 2.0]))
    assert [sync['operator'] for sync in trace['syncs']] == ['_from_host']

    # inside the trace the context hands the device to torch.tensor itself
    def step():
        with torch.device('meta'):
            return torch.tensor([1.0, 2.0])

    assert [sync['operator'] for sync in host_syncs(step)['syncs']] == [
        '_from_host']
    # on the host nothing is copied
    assert host_syncs(lambda: torch.tensor([1.0]))['syncs'] == []


def test_device_events_are_kept_apart_from_host_events(monkeypatch):
    """What a CUDA profile lists, made by hand (no GPU here): a kernel
    named like a host operator keeps its own entry, and the device's copy
    of a ``record_function`` range, which spans kernels listed on their
    own, is left out."""
    from types import SimpleNamespace

    import torch.profiler as profiler
    cpu, cuda = torch.autograd.DeviceType.CPU, torch.autograd.DeviceType.CUDA

    def event(key, device_type, count, cpu_us, device_us, annotation=False):
        return SimpleNamespace(key=key, device_type=device_type, count=count,
                               self_cpu_time_total=cpu_us,
                               self_device_time_total=device_us,
                               is_user_annotation=annotation)

    events = [event('Optimizer.step#SGD.step', cpu, 2, 400.0, 0.0),
              event('Optimizer.step#SGD.step', cuda, 2, 0.0, 900.0, True),
              event('aten::mm', cpu, 4, 200.0, 0.0),
              event('aten::mm', cuda, 4, 0.0, 600.0),
              event('gemm_kernel', cuda, 4, 0.0, 800.0)]

    class FakeProfile:
        def __init__(self, activities):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def key_averages(self):
            return events

    monkeypatch.setattr(profiler, 'profile', FakeProfile)
    stats = profile_calls(lambda: None, 2)
    assert sorted(stats) == ['Optimizer.step#SGD.step', 'aten::mm',
                             'aten::mm [device]', 'gemm_kernel']
    assert stats['aten::mm'] == dict(calls=2.0, self_cpu_ms=0.1,
                                     self_device_ms=0.0, on_device=0.0)
    assert stats['aten::mm [device]']['self_device_ms'] == 0.3
    totals = profile_totals(stats)
    # the kernels only: 0.3 + 0.4 ms, not the range's 0.45 on top
    assert totals['self_device_ms'] == pytest.approx(0.7)
    assert totals['device_kernels'] == 4.0


def test_a_cuda_profile_adds_the_device_and_waits_after_each_call(
        monkeypatch):
    """With a CUDA device (faked: no GPU here) the profile records the
    device's activity, and the host waits once for the inputs' kernels
    before the profile and once after each call, inside it, so that every
    call's kernels are timed with it: 1 + 3 waits for 3 calls."""
    import torch.profiler as profiler
    order, seen = [], []

    class FakeProfile:
        def __init__(self, activities):
            seen.extend(activities)

        def __enter__(self):
            order.append('start')
            return self

        def __exit__(self, *args):
            order.append('stop')
            return False

        def key_averages(self):
            return []

    monkeypatch.setattr(profiler, 'profile', FakeProfile)
    monkeypatch.setattr(torch.cuda, 'synchronize',
                        lambda device=None: order.append(('sync', device)))
    cuda = torch.device('cuda', 0)
    assert profile_calls(lambda value: order.append(('call', value)), 3,
                         prepare=lambda: order.append('prepare') or 7,
                         device=cuda) == {}
    assert seen == [profiler.ProfilerActivity.CPU,
                    profiler.ProfilerActivity.CUDA]
    assert order == ['prepare'] * 3 + [('sync', cuda), 'start'] + [
        ('call', 7), ('sync', cuda)] * 3 + ['stop']


def test_totals_leave_out_the_kernel_time_host_operators_carry():
    """A host operator's device time is that of the kernels it launched,
    which are listed on their own: with ``aten::mm`` carrying its gemm's
    1.5 ms, the device total is still the kernels' 1.5 ms, not 3.0."""
    stats = hand_stats()
    stats['aten::mm']['self_device_ms'] = 1.5
    assert profile_totals(stats)['self_device_ms'] == 1.5


def test_differences_break_ties_by_the_size_of_the_call_change():
    """Equal time changes (+0.125 ms each) are ordered by how many calls
    changed, whatever the sign: ``mul`` lost 3 calls, ``abs`` gained 2,
    so ``mul`` (|-3|) comes before ``abs`` (|+2|)."""
    first, second = hand_stats(), hand_stats()
    first['aten::mul'] = dict(calls=4.0, self_cpu_ms=0.25,
                              self_device_ms=0.0, on_device=0.0)
    second['aten::mul'] = dict(calls=1.0, self_cpu_ms=0.375,
                               self_device_ms=0.0, on_device=0.0)
    second['aten::abs'] = dict(calls=2.0, self_cpu_ms=0.125,
                               self_device_ms=0.0, on_device=0.0)
    rows = op_differences(first, second, top=2, by='self_cpu_ms')
    assert [(row['name'], row['diff_calls']) for row in rows] == [
        ('aten::mul', -3.0), ('aten::abs', 2.0)]


def test_a_dtype_conversion_is_not_a_copy_between_devices():
    """``.double()`` reaches the dispatcher as ``_to_copy`` with no
    device: the tensor stays where it is, on the host or on the device,
    and the host waits for nothing."""
    device = torch.empty(2, device='meta')
    host = torch.ones(2)
    for step in (lambda: host.double(), lambda: device.double(),
                 lambda: device.to(torch.float16)):
        trace = host_syncs(step)
        assert trace == dict(operators=1, syncs=[],
                             operators_after_last_sync=1)
