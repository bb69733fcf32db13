# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""What the strategies did to each term, read back from saved runs.

The benchmark page ranks strategies by mAP; this module asks how they got
there. Per run it reads, from the training log, how far each raw term had
fallen by the end of training and each term's share of the weight, and from
the evaluation curve how much mAP the run lost after its best evaluation.
Rank correlations over runs then say which of these go with a higher or a
lower mAP. They are observations across strategies, not experiments: a
strategy that changes one term's weight changes how the others train too.

A raw term is read as the logged weighted term over the logged weight of
the same log record. mmengine logs the weighted term (a ``loss`` key) as its
mean over the logging window (50 iterations in the benchmark configs), but
``slf_w_<term>`` as its value at the record's last step. So the ratio is
exact for constant weights (Fixed), close for weights that move slowly
against the window (the SLF default stays within 5% of its prior), an
average of the raw term weighted by the per-image weights when the weights
vary by image, and noisy, without a bound, for weights redrawn every step
(RLW) or moved every step (FAMO, DWA).
"""
import math
from typing import Dict, List, Optional, Sequence

import numpy as np

from .runs import load_scalars, run_dir


def raw_terms_at_end(records: List[dict], terms: Sequence[str],
                     window: int) -> Dict[str, float]:
    """Mean raw term over the training records of the last ``window``
    iterations; nan for a term whose weight was 0 in every such record.

    Args:
        records (list[dict]): The run's ``scalars.json`` records.
        terms (Sequence[str]): Term names.
        window (int): Iterations counted back from the last training record.

    Returns:
        dict[str, float]: Term -> mean of ``loss_<term> / slf_w_<term>``.
    """
    train = [r for r in records
             if 'iter' in r and all(f'slf_w_{t}' in r for t in terms)]
    if not train:
        return {term: math.nan for term in terms}
    start = train[-1]['iter'] - window
    last = [r for r in train if r['iter'] > start]
    means = {}
    for term in terms:
        values = [r[f'loss_{term}'] / r[f'slf_w_{term}'] for r in last
                  if r[f'slf_w_{term}'] > 0]
        means[term] = float(np.mean(values)) if values else math.nan
    return means


def weight_shares(mean_weights: Dict[str, float], terms: Sequence[str],
                  prior: Sequence[float]) -> Dict[str, float]:
    """Each term's share of the total mean weight over its share of the
    prior's total (1 = the prior's balance).

    Args:
        mean_weights (dict[str, float]): Term -> mean weight in training.
        terms (Sequence[str]): Term names, in ``prior`` order.
        prior (Sequence[float]): The reference lambdas.

    Returns:
        dict[str, float]: Term -> share ratio; nan without weights.
    """
    if not mean_weights:
        return {term: math.nan for term in terms}
    weights = np.array([mean_weights[term] for term in terms], np.float64)
    prior = np.asarray(prior, dtype=np.float64)
    if weights.sum() <= 0:
        return {term: 0.0 for term in terms}
    ratio = (weights / weights.sum()) / (prior / prior.sum())
    return dict(zip(terms, ratio.tolist()))


def drop_after_peak(curve: Sequence[Sequence[float]]) -> float:
    """Best mAP of the evaluation curve minus the last one (>= 0)."""
    values = [value for _, value in curve]
    return max(values) - values[-1] if values else math.nan


def run_rows(results: Dict[str, Dict[int, dict]], work_dir: str,
             prior: Sequence[float], window: int = 200,
             prior_terms: Optional[Sequence[str]] = None) -> List[dict]:
    """One row per run: strategy, seed, mAP, drop after the peak, and per
    term the raw value at the end and the weight share.

    Args:
        results (dict): ``{strategy: {seed: result}}`` of saved runs.
        work_dir (str): The benchmark's work dir (runs are read from it).
        prior (Sequence[float]): The reference lambdas, in the order of
            ``prior_terms``.
        window (int): Iterations at the end averaged for the raw terms.
            Defaults to 200.
        prior_terms (Sequence[str], optional): The terms ``prior`` is
            ordered by; shares match a run's terms to them by name.
            Defaults to None: the terms of the first run (by strategy and
            seed).

    Returns:
        list[dict]: Rows with ``key``, ``seed``, ``mAP``, ``drop``,
        ``raw`` and ``share`` (dicts by term).
    """
    if prior_terms is None:
        first = results[sorted(results)[0]]
        prior_terms = first[sorted(first)[0]]['terms']
    rows = []
    for key in sorted(results):
        for seed in sorted(results[key]):
            result = results[key][seed]
            terms = result['terms']
            if sorted(terms) != sorted(prior_terms):
                raise ValueError(
                    f'{key} seed {seed} has the terms {terms}, the lambdas '
                    f'{list(prior)} are for {list(prior_terms)}')
            records = load_scalars(run_dir(work_dir, key, seed))
            rows.append(dict(
                key=key, seed=seed, mAP=result['mAP'],
                drop=drop_after_peak(result['curve']),
                raw=raw_terms_at_end(records, terms, window),
                share=weight_shares(result.get('mean_weights'),
                                    prior_terms, prior)))
    return rows


def spearman(x: Sequence[float], y: Sequence[float]) -> Dict[str, float]:
    """Spearman's rank correlation with its two-sided p-value, over the
    pairs where both values are finite."""
    from scipy.stats import spearmanr
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = x[finite], y[finite]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        # no ranking to compare: too few pairs or a constant quantity
        return dict(rho=math.nan, p=math.nan, n=len(x))
    rho, p = spearmanr(x, y)
    return dict(rho=float(rho), p=float(p), n=len(x))


def strategy_means(rows: List[dict], terms: Sequence[str]) -> List[dict]:
    """Rows averaged per strategy, in the order of first appearance: mAP
    and the drop over all runs, the raw terms and shares over the runs in
    which they are finite."""
    means: Dict[str, dict] = {}
    for key in dict.fromkeys(row['key'] for row in rows):
        own = [row for row in rows if row['key'] == key]
        means[key] = dict(
            key=key, seeds=len(own),
            mAP=float(np.mean([row['mAP'] for row in own])),
            drop=float(np.mean([row['drop'] for row in own])),
            raw={t: _nanmean([row['raw'][t] for row in own]) for t in terms},
            share={t: _nanmean([row['share'][t] for row in own])
                   for t in terms})
    return list(means.values())


def _nanmean(values: Sequence[float]) -> float:
    values = [v for v in values if math.isfinite(v)]
    return float(np.mean(values)) if values else math.nan


def correlations(rows: List[dict], terms: Sequence[str],
                 exclude: Optional[Sequence[str]] = None
                 ) -> Dict[str, Dict[str, float]]:
    """Spearman correlations over runs: each term's raw end value and weight
    share against the final mAP and against the drop after the peak.

    Args:
        rows (list[dict]): :func:`run_rows`.
        terms (Sequence[str]): Term names.
        exclude (Sequence[str], optional): Strategies left out, e.g. the
            ones that never learned. Defaults to None.

    Returns:
        dict: ``'<raw|share>_<term> vs <mAP|drop>'`` -> ``rho``, ``p``, ``n``.
    """
    rows = [row for row in rows if row['key'] not in set(exclude or ())]
    out = {}
    for kind in ('raw', 'share'):
        for term in terms:
            x = [row[kind][term] for row in rows]
            for target in ('mAP', 'drop'):
                out[f'{kind}_{term} vs {target}'] = spearman(
                    x, [row[target] for row in rows])
    return out


def format_analysis(rows: List[dict], terms: Sequence[str],
                    exclude: Optional[Sequence[str]] = None) -> List[str]:
    """Markdown: the per-strategy means, best mAP first, and the rank
    correlations over the runs of the strategies not excluded."""
    means = sorted(strategy_means(rows, terms), key=lambda m: -m['mAP'])
    head = ('| Strategy | seeds | mAP | drop after peak | '
            + ' | '.join(f'raw {t}' for t in terms) + ' | '
            + ' | '.join(f'share {t}' for t in terms) + ' |')
    lines = [head, '|' + '---|' * (4 + 2 * len(terms))]
    for m in means:
        lines.append(
            f"| {m['key']} | {m['seeds']} | {m['mAP']:.3f} | "
            f"{m['drop']:.3f} | "
            + ' | '.join(f"{m['raw'][t]:.3f}" for t in terms) + ' | '
            + ' | '.join(f"{m['share'][t]:.2f}" for t in terms) + ' |')
    kept = [row for row in rows if row['key'] not in set(exclude or ())]
    kept_means = [m for m in means if m['key'] not in set(exclude or ())]
    lines += [
        '', 'Spearman rank correlations over the runs and over the strategy '
        f'means ({len(kept)} runs of {len(kept_means)} strategies'
        + (f", without {', '.join(exclude)}" if exclude else '') + '). '
        'Runs of one strategy are not independent, so the p-values over '
        'runs are too small; those over the strategy means are not.', '',
        '| Quantity | runs: vs mAP, rho (p) | runs: vs drop after peak | '
        'strategies: vs mAP | strategies: vs drop after peak |',
        '|---|---|---|---|---|'
    ]
    over_runs = correlations(rows, terms, exclude)
    over_means = correlations(means, terms, exclude)
    for kind in ('raw', 'share'):
        for term in terms:
            cells = [stats[f'{kind}_{term} vs {target}']
                     for stats in (over_runs, over_means)
                     for target in ('mAP', 'drop')]
            lines.append(f'| {kind} {term} | ' + ' | '.join(
                f"{c['rho']:+.2f} ({c['p']:.2g})"
                if math.isfinite(c['rho']) else 'n/a' for c in cells) + ' |')
    return lines
