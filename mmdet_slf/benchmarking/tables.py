# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The tables of the benchmark's results page, as markdown: one row per
strategy, the mAP of every seed, the variants against the strategy each
varies, and the cost ratios."""
import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Dict, List

from .runs import paired_seeds
from .stats import paired_comparison


def fmt_value(value: float, digits: int = 3) -> str:
    return 'n/a' if value is None or not math.isfinite(value) else \
        f'{value:.{digits}f}'


def fmt_floor(value: float, digits: int = 2, slack: float = 1e-6) -> str:
    """``value`` rounded down, so that a threshold it misses is never
    printed as reached (0.2496 is 0.24, not 0.25). It rounds the shortest
    decimal that gives ``value`` back (``repr``), so 0.29, which is
    0.28999... in binary, stays 0.29. A value less than ``slack`` below
    the next step counts as that step: the weights are logged in float32,
    so a run at its reference's own lambdas (13.7, 1.12, ...) gives a
    share of 0.99999999, which is 1.00, not 0.99."""
    if value is None or not math.isfinite(value):
        return 'n/a'
    exact = Decimal(repr(float(value)))
    step = Decimal(1).scaleb(-digits)
    up = exact.quantize(step, ROUND_CEILING)
    if up - exact < Decimal(repr(slack)):
        return str(up)
    return str(exact.quantize(step, ROUND_FLOOR))


def fmt_p(value: float) -> str:
    if value is None or not math.isfinite(value):
        return 'n/a'
    return f'{value:.2g}' if value < 0.01 else f'{value:.3f}'


def table(rows: List[dict], reference_name: str = 'Fixed') -> str:
    lines = [
        '| Strategy | seeds | mAP mean +- std | 95% CI | '
        f'vs {reference_name}: mean diff [95% CI] | p (paired t) | '
        'min weight / prior | min / run |', '|---|---|---|---|---|---|---|---|'
    ]
    for row in rows:
        paired = row.get('paired')
        if paired is not None:
            diff = (f'{paired["mean_diff"]:+.3f} [{paired["ci_low"]:+.3f}, '
                    f'{paired["ci_high"]:+.3f}]')
            if paired['n'] != row['n']:
                # fewer seeds than the row's: those the reference has too
                diff += f' ({paired["n"]} paired seeds)'
        elif row.get('reference'):
            diff = 'reference'
        else:
            diff = f'n/a (< 2 seeds paired with {reference_name})'
        lines.append(
            f'| {row["name"]} | {row["n"]} | {row["mean"]:.3f} +- '
            f'{row["std"]:.3f} | [{fmt_value(row["ci_low"])}, '
            f'{fmt_value(row["ci_high"])}] | {diff} | '
            f'{fmt_p(paired["p"]) if paired else "-"} | '
            f'{fmt_floor(row["min_share"])} | '
            f'{fmt_value(row["minutes"], 2)} |')
    return '\n'.join(lines)


def variant_table(results: Dict[str, Dict[int, dict]],
                  bases: Dict[str, str]) -> str:
    """Each variant against the strategy it varies (``bases[key]``), paired
    by seed: the cost of one change, such as the estimator of ``p_hat``,
    with everything else equal."""
    lines = [
        '| Variant | against | seeds | mean diff [95% CI] | p (paired t) |',
        '|---|---|---|---|---|'
    ]
    for key, base in sorted(bases.items(), key=lambda kv: (kv[1], kv[0])):
        if key not in results or base not in results:
            continue
        seeds = paired_seeds(results, key, base)
        if len(seeds) < 2:
            continue
        cmp = paired_comparison([results[key][s]['mAP'] for s in seeds],
                                [results[base][s]['mAP'] for s in seeds])
        name = next(iter(results[key].values()))['name']
        base_name = next(iter(results[base].values()))['name']
        lines.append(
            f'| {name} | {base_name} | {cmp["n"]} | '
            f'{cmp["mean_diff"]:+.3f} [{cmp["ci_low"]:+.3f}, '
            f'{cmp["ci_high"]:+.3f}] | {fmt_p(cmp["p"])} |')
    return '\n'.join(lines) if len(lines) > 2 else ''


def cost_table(timing: dict, reference: str,
               names: Dict[str, str]) -> str:
    """Training-step time and FPS of every timed strategy relative to the
    reference, measured interleaved in one process."""
    step, fps = timing['step_seconds'], timing['fps']
    label = names.get(reference, reference)
    if reference == 'fixed':
        label = 'Fixed'  # its full name carries the lambdas
    lines = [f'| Strategy | step time / {label} | FPS / {label} |',
             '|---|---|---|']
    for key in sorted(step, key=lambda k: (k != reference, k)):
        lines.append(f'| {names.get(key, key)} | '
                     f'{step[key] / step[reference]:.3f} | '
                     f'{fps[key] / fps[reference]:.3f} |')
    lines.append('')
    lines.append(f'{label}: {step[reference]:.3f} s per training step, '
                 f'{fps[reference]:.1f} FPS at batch 1.')
    return '\n'.join(lines)


def seed_table(results: Dict[str, Dict[int, dict]],
               rows: List[dict]) -> str:
    """The final mAP of every strategy on every seed, to four decimals, in
    the order of ``rows``: what the paired differences are computed from,
    so a reader can check them (a blank cell: a seed the strategy has not
    run)."""
    seeds = sorted({seed for runs in results.values() for seed in runs})
    lines = ['| Strategy | ' + ' | '.join(f'seed {s}' for s in seeds) + ' |',
             '|---|' + '---|' * len(seeds)]
    for row in rows:
        runs = results[row['key']]
        cells = [f"{runs[s]['mAP']:.4f}" if s in runs else ''
                 for s in seeds]
        lines.append(f'| {row["name"]} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
