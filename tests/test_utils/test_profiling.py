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
