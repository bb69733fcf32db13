# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The rules that turn a page's runs into its verdict: the checks that the
runs can be compared, one row of statistics per strategy, the 25%-of-prior
rule that picks the SLF default, and targets 1 and 2."""
import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..slf.checks import is_finite_number
from .runs import paired_seeds
from .stats import p_gain_below, paired_comparison, summarize
from .tables import fmt_floor, fmt_p
from .terms import weight_shares

MIN_PRIOR_SHARE = 0.25  # a term below 25% of its prior weight is starved
TARGET_GAIN = 0.01  # the SLF default's target: Fixed + 1.0 mAP point ...
TARGET_P = 0.05  # ... with p below this
MIN_SEEDS = 5  # a variant is a candidate for the default with this many


def weight_share(result: dict, reference_terms: Sequence[str],
                 reference_prior: Optional[Sequence[float]]) -> float:
    """Smallest ratio, over terms, of a term's mean logged weight to its
    reference lambda, after scaling both to the same total (nan when no
    weights were logged). Terms are matched by name, so a strategy may
    list them in another order than the reference."""
    weights = result.get('mean_weights') or {}
    if not weights or not reference_prior:
        return math.nan
    return min(weight_shares(weights, reference_terms,
                             reference_prior).values())


def check_runs(results: Dict[str, Dict[int, dict]], reference: str) -> None:
    """Refuse runs that a page cannot compare, naming them: a strategy whose
    seeds disagree on its name, terms, lambdas or budget; strategies of
    different budgets; terms other than the reference's; lambdas that do
    not match the terms in number; an mAP that is not a finite number."""
    budgets = {}
    for key, runs in sorted(results.items()):
        seeds = sorted(runs)
        bad = [s for s in seeds if not is_finite_number(runs[s].get('mAP'))]
        if bad:
            raise ValueError(
                f'{key} has no finite mAP for seeds {bad} (a run that logged '
                'no validation): train them again, or leave them out with '
                '--seeds')
        for field in ('name', 'terms', 'prior', 'max_iters'):
            values = {s: runs[s].get(field) for s in seeds}
            if any(value != values[seeds[0]] for value in values.values()):
                raise ValueError(
                    f'the seeds of {key} disagree on {field}: {values}; '
                    'runs of another config are not one strategy')
        first = runs[seeds[0]]
        prior = first.get('prior')
        if prior is not None and len(prior) != len(first['terms']):
            raise ValueError(
                f'{key} has {len(prior)} lambdas {prior} for its '
                f'{len(first["terms"])} terms {first["terms"]}')
        budgets[key] = first['max_iters']
    if len(set(budgets.values())) > 1:
        raise ValueError(
            f'the runs have different budgets {budgets} (max_iters); a page '
            'compares one budget: limit it with --strategies or --seeds, or '
            'keep each budget in its own work dir')
    if reference in results:
        terms = next(iter(results[reference].values()))['terms']
        for key, runs in results.items():
            other = next(iter(runs.values()))['terms']
            if sorted(other) != sorted(terms):
                raise ValueError(
                    f'{key} has the terms {other}, the reference {reference} '
                    f'{terms}: their weights cannot be compared')


def strategy_rows(results: Dict[str, Dict[int, dict]],
                  reference: str) -> List[dict]:
    """One row of statistics per strategy (the reference first), after
    :func:`check_runs`. ``min_share`` is the smallest weight share over
    the terms and the seeds; nan unless every seed logged its weights."""
    check_runs(results, reference)
    ref_terms, ref_prior = None, None
    if reference in results:
        first = next(iter(results[reference].values()))
        ref_terms, ref_prior = first['terms'], first.get('prior')
    keys = sorted(results, key=lambda k: (k != reference, k))
    rows = []
    for key in keys:
        runs = results[key]
        seeds = sorted(runs)
        maps = [runs[s]['mAP'] for s in seeds]
        minutes = [runs[s]['train_minutes'] for s in seeds
                   if runs[s].get('train_minutes') is not None]
        row = dict(key=key, name=next(iter(runs.values()))['name'],
                   reference=key == reference,
                   seeds=seeds, maps=maps, **summarize(maps),
                   minutes=float(np.median(minutes)) if minutes else math.nan)
        common = paired_seeds(results, key, reference)
        if key != reference and len(common) >= 2:
            row['paired'] = paired_comparison(
                [runs[s]['mAP'] for s in common],
                [results[reference][s]['mAP'] for s in common])
        shares = [weight_share(runs[s], ref_terms, ref_prior) for s in seeds]
        # a seed without weights leaves the minimum unknown
        row['min_share'] = min(shares) if all(
            math.isfinite(share) for share in shares) else math.nan
        rows.append(row)
    return rows


def reference_label(results: Dict[str, Dict[int, dict]],
                    reference: str) -> str:
    """How a page names its reference: 'Fixed' for the benchmark's own,
    the strategy's name for another (e.g. a learning-rate control)."""
    if reference == 'fixed' or reference not in results:
        return 'Fixed'
    return next(iter(results[reference].values()))['name']


def choose_slf_default(rows: List[dict],
                       prefix: str = 'slf') -> Optional[dict]:
    """The SLF variant with the best mean mAP among those that
    :func:`why_not_default` finds nothing against (None when there is
    none)."""
    candidates = [row for row in rows if row['key'].startswith(prefix)
                  and why_not_default(row) is None]
    return max(candidates, key=lambda row: row['mean']) if candidates \
        else None


def why_not_default(row: dict) -> Optional[str]:
    """Why a row cannot be the default (None when it can): fewer than
    ``MIN_SEEDS`` seeds, weights not logged on every seed, or a term whose
    weight share, averaged over the logged iterations, fell below
    ``MIN_PRIOR_SHARE`` of its share under the reference lambdas on some
    seed."""
    if row['n'] < MIN_SEEDS:
        return f'{row["n"]} seeds'
    if not math.isfinite(row['min_share']):
        return 'no weights logged on every seed'
    if row['min_share'] < MIN_PRIOR_SHARE:
        return f'min weight / prior {fmt_floor(row["min_share"], 3)}'
    return None


def verdict(results: Dict[str, Dict[int, dict]],
            rows: List[dict],
            reference: str,
            tuned: str = 'fixed-tuned',
            search_runs: Optional[int] = None,
            search_iters: Optional[int] = None) -> List[str]:
    """Lines stating the chosen SLF variant against Fixed (and the tuned
    lambdas when they were run), with intervals and p-values, and whether
    it meets the target: Fixed + ``TARGET_GAIN`` with p < ``TARGET_P``, and
    within the noise of (or above) the tuned lambdas, whose search cost
    ``search_runs`` training runs of ``search_iters`` iterations each
    besides their own (see :func:`search_cost`)."""
    chosen = choose_slf_default(rows)
    if not any(row['key'].startswith('slf') for row in rows):
        return ['No SLF variant has finished runs yet.']
    if chosen is None:
        reasons = '; '.join(f'{row["key"]}: {why_not_default(row)}'
                            for row in rows if row['key'].startswith('slf'))
        return [f'No SLF variant with {MIN_SEEDS} seeds kept every term at '
                f'>= {MIN_PRIOR_SHARE:.0%} of its prior weight, so none '
                f'qualifies as the default ({reasons}).']
    lines = [f'Chosen SLF variant (best mean mAP among those with >= '
             f'{MIN_SEEDS} seeds keeping every term at >= '
             f'{MIN_PRIOR_SHARE:.0%} of its prior weight): '
             f'**{chosen["name"]}** (`{chosen["key"]}`), mAP '
             f'{chosen["mean"]:.3f} over {chosen["n"]} seeds.']
    comparisons = {}
    reference_name = reference_label(results, reference)
    for other in (reference, tuned) if tuned != reference else (reference,):
        seeds = paired_seeds(results, chosen['key'], other)
        if len(seeds) < 2:
            if other == tuned and tuned not in results:
                # not run, or left off this page by --strategies
                lines.append(f'The tuned lambdas (`{tuned}`) are not on this '
                             'page, so target 2 is not assessed here.')
            elif other == tuned:
                lines.append(
                    f'Target 2: n/a ({len(seeds)} seeds of {chosen["name"]} '
                    f'paired with the tuned lambdas, which ran seeds '
                    f'{sorted(results[tuned])}; a paired test needs 2).')
            else:
                lines.append(
                    f'Target 1: n/a ({len(seeds)} seeds of '
                    f'{chosen["name"]} paired with {reference_name}; a '
                    'paired test needs 2).')
            continue
        cmp = paired_comparison(
            [results[chosen['key']][s]['mAP'] for s in seeds],
            [results[other][s]['mAP'] for s in seeds])
        comparisons[other] = cmp
        name = next(iter(results[other].values()))['name']
        lines.append(
            f'{chosen["name"]} minus {name}: {cmp["mean_diff"]:+.4f} mAP '
            f'(95% CI [{cmp["ci_low"]:+.4f}, {cmp["ci_high"]:+.4f}], '
            f'paired t-test p = {fmt_p(cmp["p"])}, {cmp["n"]} seeds).')
    if reference in comparisons:
        cmp = comparisons[reference]
        # a gain of 0.01 up to float rounding is a gain of 0.01
        rounding = cmp.get('tolerance', 0.0)
        met = cmp['mean_diff'] >= TARGET_GAIN - rounding and \
            cmp['p'] < TARGET_P
        lines.append(
            f'Target 1, SLF >= {reference_name} + {TARGET_GAIN:.3f} mAP with '
            f'p < {TARGET_P:g}: **{"met" if met else "missed"}** '
            f'({cmp["mean_diff"]:+.4f}, p = {fmt_p(cmp["p"])}). The rule '
            'reads the mean gain and the test against 0; the test of the '
            f'gain itself, H0: gain <= {TARGET_GAIN:.3f}, gives one-sided '
            f'p = {fmt_p(p_gain_below(cmp, TARGET_GAIN))}.')
    if tuned in comparisons:
        cmp = comparisons[tuned]
        # Within the noise: the interval of the difference reaches 0 or
        # lies above it (up to float rounding).
        met = cmp['ci_high'] >= -cmp.get('tolerance', 0.0)
        seed = paired_seeds(results, chosen['key'], tuned)[0]
        cost = search_cost(search_runs, search_iters,
                           results[tuned][seed]['max_iters'],
                           results[chosen['key']][seed]['max_iters'])
        lines.append(
            f'Target 2, SLF within the noise of the tuned lambdas: '
            f'**{"met" if met else "missed"}** (95% CI of the difference '
            f'[{cmp["ci_low"]:+.4f}, {cmp["ci_high"]:+.4f}]{cost}).')
    return lines


def search_cost(search_runs: Optional[int], search_iters: Optional[int],
                tuned_iters: int, slf_iters: int) -> str:
    """The clause that sets one SLF run against the cost of the tuned
    lambdas: ``search_runs`` runs of ``search_iters`` iterations, then
    their own run of ``tuned_iters``. Searched at 600 iterations and run
    at 600 that is 1/9; run at 1,200 it is 1,200 of 6,000, 1/5. Without
    the search's length only the runs are counted."""
    if search_runs is None:
        return ''
    if search_iters is None:
        return (f'; the tuned lambdas cost {search_runs} search runs '
                'besides their own, of a length their config does not '
                'record')
    total = search_runs * search_iters + tuned_iters
    return (f'; the tuned lambdas cost {search_runs} search runs of '
            f'{search_iters} iterations besides their own {tuned_iters}, so '
            f'one SLF run of {slf_iters} is 1/{total / slf_iters:.3g} of '
            'their training')
