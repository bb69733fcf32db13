# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The benchmark's statistics against scipy and hand-worked numbers."""
import math

import numpy as np
import pytest
from scipy import stats

from mmdet_slf.benchmarking import paired_comparison, summarize

STRATEGY = [0.842, 0.851, 0.838, 0.860, 0.847]
REFERENCE = [0.835, 0.849, 0.829, 0.851, 0.846]


def test_summary_mean_std_and_interval_against_scipy():
    result = summarize(STRATEGY)
    values = np.array(STRATEGY)
    assert result['n'] == 5
    assert result['mean'] == pytest.approx(values.mean(), abs=1e-12)
    assert result['std'] == pytest.approx(values.std(ddof=1), abs=1e-12)
    low, high = stats.t.interval(0.95, 4, loc=values.mean(),
                                 scale=stats.sem(values))
    assert result['ci_low'] == pytest.approx(low, abs=1e-12)
    assert result['ci_high'] == pytest.approx(high, abs=1e-12)


def test_summary_hand_worked():
    # values 1, 2, 3: mean 2, std 1, t(0.975, 2) = 4.302653
    result = summarize([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert result['std'] == pytest.approx(1.0)
    assert result['ci_low'] == pytest.approx(2 - half, abs=1e-9)
    assert result['ci_high'] == pytest.approx(2 + half, abs=1e-9)


def test_paired_difference_t_and_p_against_scipy():
    result = paired_comparison(STRATEGY, REFERENCE)
    reference = stats.ttest_rel(STRATEGY, REFERENCE)
    diffs = np.subtract(STRATEGY, REFERENCE)
    assert result['mean_diff'] == pytest.approx(diffs.mean(), abs=1e-12)
    assert result['t'] == pytest.approx(reference.statistic, rel=1e-10)
    assert result['p'] == pytest.approx(reference.pvalue, rel=1e-10)
    low, high = stats.t.interval(0.95, 4, loc=diffs.mean(),
                                 scale=stats.sem(diffs))
    assert (result['ci_low'], result['ci_high']) == pytest.approx(
        (low, high), abs=1e-12)
    assert result['test'].startswith('paired t-test')


def test_pairing_matters():
    # the same numbers unpaired would not be significant; paired they are
    base = [0.80, 0.85, 0.90, 0.70, 0.75]
    better = [b + 0.01 for b in base]
    result = paired_comparison(better, base)
    assert result['mean_diff'] == pytest.approx(0.01)
    assert result['p'] == 0.0 and math.isinf(result['t'])
    assert stats.ttest_ind(better, base).pvalue > 0.5


def test_degenerate_and_bad_input():
    single = summarize([0.5])
    assert single['std'] == 0 and math.isnan(single['ci_low'])
    same = paired_comparison([0.5, 0.6], [0.5, 0.6])
    assert same['p'] == 1.0 and same['t'] == 0.0
    with pytest.raises(ValueError, match='one entry per seed'):
        paired_comparison([0.5, 0.6], [0.5])
    with pytest.raises(ValueError, match='non-empty'):
        summarize([])
    with pytest.raises(ValueError, match='confidence'):
        summarize([1.0, 2.0], confidence=95)


def test_a_constant_difference_up_to_rounding_is_constant():
    """0.81 - 0.80, 0.82 - 0.81 and 0.83 - 0.82 differ in the last bits
    (std about 4e-18 in float64), which is not evidence: the difference is
    the constant 0.01, so the test is decided exactly: t = +inf, p = 0, and
    the one-sided test of a gain above 0.01 has p = 1, as for an exact
    constant 0.01. Below 0 the sign of t follows."""
    from mmdet_slf.benchmarking.stats import p_gain_below
    values, reference = [0.81, 0.82, 0.83], [0.80, 0.81, 0.82]
    diffs = np.subtract(values, reference)
    assert 0 < diffs.std(ddof=1) < 1e-15  # rounding, not noise
    up = paired_comparison(values, reference)
    assert up['t'] == math.inf and up['p'] == 0.0
    assert p_gain_below(up, 0.01) == 1.0
    # a mean above the margin by rounding only is not above it
    assert p_gain_below(up, up['mean_diff'] - 1e-15) == 1.0
    assert p_gain_below(up, 0.005) == 0.0
    down = paired_comparison(reference, values)
    assert down['t'] == -math.inf and down['p'] == 0.0
    assert p_gain_below(down, 0.0) == 1.0
    # an exactly constant difference equal to the margin: not above it
    exact = paired_comparison([0.75, 0.5], [0.5, 0.25])
    assert exact['std_diff'] == 0.0
    assert p_gain_below(exact, 0.25) == 1.0
    assert p_gain_below(exact, 0.125) == 0.0
    # differences that are 0 up to rounding: 0.1 + 0.2 is not 0.3
    zero = paired_comparison([0.1 + 0.2, 0.7 + 0.1, 0.4], [0.3, 0.8, 0.4])
    assert zero['std_diff'] > 0
    assert zero['t'] == 0.0 and zero['p'] == 1.0
    # differences of noise, however small against the values, and values
    # of any size keep scipy's test
    for values, reference in (
            ([0.8, 0.8 + 1e-12, 0.8], [0.8, 0.8, 0.8 + 1e-12]),
            ([1e-13, 2e-13, 3.5e-13, 4e-13], [0.0] * 4),
            ([0.5 + 1e-13, 0.5 + 1.1e-13, 0.5 + 0.9e-13, 0.5 + 1.05e-13],
             [0.5] * 4)):
        noisy = paired_comparison(values, reference)
        assert noisy['p'] == pytest.approx(
            stats.ttest_rel(values, reference).pvalue, rel=1e-6), values


def test_one_seed_has_no_one_sided_p():
    """One seed gives no std of the differences, so no test: the one-sided
    p of a gain above the margin is nan (like the two-sided p), not the
    0 of a constant difference, though 0.85 - 0.80 = 0.05 is above 0.01."""
    from mmdet_slf.benchmarking.stats import p_gain_below
    single = paired_comparison([0.85], [0.80])
    assert single['n'] == 1 and math.isnan(single['p'])
    assert math.isnan(p_gain_below(single, 0.01))


def test_a_non_finite_side_is_refused_by_name():
    """A nan or inf on either side is refused with the side's own name and
    values, before any difference is taken (which would report the
    differences as 'values')."""
    with pytest.raises(ValueError, match=r'^reference must be finite, got '
                       r'\[0\.8, nan\]$'):
        paired_comparison([0.9, 0.8], [0.8, math.nan])
    with pytest.raises(ValueError, match=r'^reference must be finite, got '
                       r'\[inf, 0\.8\]$'):
        paired_comparison([0.9, 0.8], [math.inf, 0.8])
    with pytest.raises(ValueError, match=r'^values must be finite, got '
                       r'\[inf, 0\.8\]$'):
        paired_comparison([math.inf, 0.8], [0.8, 0.8])


def test_the_rounding_scale_reads_the_reference_too():
    """A strategy at 0 mAP on every seed against a reference at 0.3, 0.1 +
    0.2 (0.30000000000000004) and 0.3: the differences are the constant
    -0.3 up to the reference's rounding (std about 3e-17), so t = -inf,
    p = 0 and a gain above -0.3 is not shown (p = 1). The tolerance is
    ROUNDING times the larger side's largest value, here the reference's
    0.30000000000000004; the strategy's zeros alone would give 0 and read
    the rounding as noise."""
    from mmdet_slf.benchmarking.stats import ROUNDING, p_gain_below
    reference = [0.3, 0.1 + 0.2, 0.3]
    result = paired_comparison([0.0, 0.0, 0.0], reference)
    assert 0 < result['std_diff'] < 1e-16
    assert result['tolerance'] == ROUNDING * (0.1 + 0.2)
    assert result['t'] == -math.inf and result['p'] == 0.0
    assert p_gain_below(result, -0.3) == 1.0
    assert p_gain_below(result, -0.35) == 0.0
