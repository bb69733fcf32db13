# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Where two models' steps differ, for ``tools/benchmark_fps.py``: the
operators one step dispatches (exact; see :func:`count_operators` on the
optimizer), the host syncs of a loss forward, and a per-iteration
``torch.profiler`` comparison. Each prints its table and returns it for the
JSON summary; model ``'0'`` is the reference and ``'1'`` the one compared
with it."""
from mmdet_slf.utils.profiling import (count_operators, host_syncs,
                                       op_differences, profile_calls,
                                       profile_totals)


def operator_counts(steps, batches, top=20):
    """Per model, the operators one step on ``batches[key]`` dispatches
    (:func:`count_operators`), and for two models the difference, largest
    first; printed and returned."""
    counts = {key: count_operators(lambda key=key: steps[key](batches[key]))
              for key in steps}
    result = dict(totals={key: sum(c.values()) for key, c in counts.items()},
                  counts=counts)
    print('operators dispatched in one step: ' + ', '.join(
        f'model {key} {total}' for key, total in result['totals'].items()))
    if len(counts) == 2:
        first, second = counts['0'], counts['1']
        diff = {name: second.get(name, 0) - first.get(name, 0)
                for name in set(first) | set(second)}
        rows = sorted(((name, d) for name, d in diff.items() if d),
                      key=lambda item: (-abs(item[1]), item[0]))
        result['difference'] = result['totals']['1'] - result['totals']['0']
        result['differences'] = dict(rows)
        print(f'  second - first: {result["difference"]:+d}; by operator: '
              + ', '.join(f'{name} {d:+d}' for name, d in rows[:top]))
    return result


def loss_host_syncs(models, batches):
    """Per model, where its loss makes the host wait for the device
    (:func:`host_syncs`): the operators its loss issues after the last sync
    run on an idle CUDA device. Printed and returned."""
    result = {}
    print('host syncs in one loss forward (preprocessing excluded):')
    for key, model in models.items():
        data = model.data_preprocessor(batches[key], True)
        result[key] = host_syncs(
            lambda: model._run_forward(data, mode='loss'))
        print(f'  model {key}: {result[key]["operators"]} operators, '
              f'{len(result[key]["syncs"])} host syncs, '
              f'{result[key]["operators_after_last_sync"]} operators after '
              'the last sync')
    return result


def profile_models(steps, prepare, num_iters, device, top=20):
    """Per-iteration operator profile of each model and, for two, the
    operators in which the second differs most from the first (by device
    time on a GPU, else by host time); printed and returned."""
    stats = {
        key: profile_calls(step, num_iters, prepare[key], device)
        for key, step in steps.items()
    }
    by = 'self_device_ms' if device.type == 'cuda' else 'self_cpu_ms'
    result = dict(num_iters=num_iters, sorted_by=by,
                  totals={key: profile_totals(s) for key, s in stats.items()})
    print(f'profile, {num_iters} iterations per model (times inflated by '
          'the profiler), per iteration:')
    for key, totals in result['totals'].items():
        print(f'  model {key}: {totals["host_op_calls"]:.0f} host operator '
              f'calls, {totals["device_kernels"]:.0f} device kernels, '
              f'{totals["self_cpu_ms"]:.2f} ms host, '
              f'{totals["self_device_ms"]:.2f} ms device')
    if len(stats) == 2:
        rows = op_differences(stats['0'], stats['1'], top=top, by=by)
        result['differences'] = rows
        field = by[len('self_'):]
        print(f'  largest differences (second - first), by {field}:')
        print(f'  {"calls":>8} {field:>10}  operator')
        for row in rows:
            print(f'  {row["diff_calls"]:+8.1f} {row[f"diff_{by}"]:+10.3f}  '
                  f'{row["name"][:90]}')
    return result
