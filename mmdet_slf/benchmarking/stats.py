# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Statistics for comparing training strategies over paired seeds.

Every strategy is trained once per seed, and seed ``s`` gives every strategy
the same initial detector weights and the same data order, so the runs of
two strategies pair up by seed. The comparison of a strategy against a
reference uses the per-seed differences: the paired t-test (two-sided) and a
t-interval of the mean difference. With ``n`` seeds both have ``n - 1``
degrees of freedom.
"""
import math
from typing import Dict, Sequence

import numpy as np

# Float rounding in a difference of two values, relative to their size (a
# few units in the last place): a std of differences, or a mean, at most
# this times the largest value counts as zero.
ROUNDING = 64 * float(np.finfo(np.float64).eps)


def _t_quantile(prob: float, dof: int) -> float:
    from scipy.stats import t
    return float(t.ppf(prob, dof))


def _t_two_sided_p(statistic: float, dof: int) -> float:
    from scipy.stats import t
    return float(2 * t.sf(abs(statistic), dof))


def summarize(values: Sequence[float], confidence: float = 0.95) -> Dict:
    """Mean, sample std and the t-interval of the mean.

    Args:
        values (Sequence[float]): One value per seed.
        confidence (float): Coverage of the interval. Defaults to 0.95.

    Returns:
        dict: ``n``, ``mean``, ``std`` (ddof 1), ``ci_low``, ``ci_high``;
        with one value the std is 0 and the interval is ``(nan, nan)``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f'values must be a non-empty 1-D sequence, got '
                         f'shape {values.shape}')
    if not np.isfinite(values).all():
        raise ValueError(f'values must be finite, got {values.tolist()}')
    if not 0 < confidence < 1:
        raise ValueError(f'confidence must be in (0, 1), got {confidence!r}')
    n = len(values)
    mean = float(values.mean())
    if n == 1:
        return dict(n=1, mean=mean, std=0.0, ci_low=math.nan,
                    ci_high=math.nan)
    std = float(values.std(ddof=1))
    half = _t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return dict(n=n, mean=mean, std=std, ci_low=mean - half,
                ci_high=mean + half)


def paired_comparison(values: Sequence[float],
                      reference: Sequence[float],
                      confidence: float = 0.95) -> Dict:
    """Paired comparison of a strategy with a reference over seeds.

    Args:
        values (Sequence[float]): The strategy's value per seed.
        reference (Sequence[float]): The reference's value for the same
            seeds, in the same order.
        confidence (float): Coverage of the interval. Defaults to 0.95.

    Returns:
        dict: ``n``, ``mean_diff`` (values - reference), ``std_diff``,
        ``ci_low``, ``ci_high`` (t-interval of the mean difference),
        ``t`` and ``p`` (two-sided paired t-test; ``p = 1`` when every
        difference is 0, ``nan`` for one seed), ``test`` naming it, and
        ``tolerance``, the rounding below which the differences' std (and
        their mean) count as 0.
    """
    values = np.asarray(values, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if values.shape != reference.shape:
        raise ValueError(
            f'paired values need one entry per seed on both sides, got '
            f'{len(values)} and {len(reference)}')
    for name, side in (('values', values), ('reference', reference)):
        if not np.isfinite(side).all():
            raise ValueError(f'{name} must be finite, got {side.tolist()}')
    diffs = values - reference
    summary = summarize(diffs, confidence)
    n, mean, std = summary['n'], summary['mean'], summary['std']
    # Differences equal up to rounding (0.81 - 0.80 and 0.82 - 0.81) are
    # constant: their std of 1e-17 is not evidence of anything.
    tolerance = ROUNDING * max(float(np.abs(values).max()),
                               float(np.abs(reference).max()))
    if n == 1:
        statistic, p_value = math.nan, math.nan
    elif std <= tolerance:
        zero = abs(mean) <= tolerance
        statistic = 0.0 if zero else math.copysign(math.inf, mean)
        p_value = 1.0 if zero else 0.0
    else:
        statistic = mean / (std / math.sqrt(n))
        p_value = _t_two_sided_p(statistic, n - 1)
    return dict(n=n, mean_diff=mean, std_diff=std,
                ci_low=summary['ci_low'], ci_high=summary['ci_high'],
                t=statistic, p=p_value, test='paired t-test (two-sided)',
                tolerance=tolerance)


def p_gain_below(comparison: Dict, margin: float) -> float:
    """One-sided p-value of the paired t-test of ``H0: mean difference <=
    margin`` for a :func:`paired_comparison`: small when the data show a
    gain of more than ``margin``, where the two-sided ``p`` only tests a
    difference from 0. ``nan`` for one seed."""
    n, mean, std = comparison['n'], comparison['mean_diff'], \
        comparison['std_diff']
    if n < 2:
        return math.nan
    tolerance = comparison.get('tolerance', 0.0)
    if std <= tolerance:
        return 0.0 if mean - margin > tolerance else 1.0
    from scipy.stats import t
    return float(t.sf((mean - margin) / (std / math.sqrt(n)), n - 1))
