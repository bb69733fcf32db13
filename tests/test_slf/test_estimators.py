# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Estimators of p: the paper's zero-weight share (1 - p)^K, and the lower
variance estimators' means and variances against their derivations."""
import pytest
import torch

from mmdet_slf.slf import estimate_p_hat, stratified_sample

PROBS = torch.tensor([0.5, 0.3, 0.13, 0.07])
LOGITS = PROBS.log()
DRAWS = 40000  # rows ("images"), each with its own draw


def binomial_bound(p, draws, sigmas=5.0):
    """5-sigma bound on a share estimated from ``draws`` Bernoulli trials:
    a false failure has probability < 1e-6 per entry."""
    return sigmas * torch.sqrt(p * (1 - p) / draws) + 1e-12


@pytest.mark.parametrize('num_samples', [1, 4, 16])
def test_gumbel_zero_weight_share_is_one_minus_p_to_the_k(num_samples):
    generator = torch.Generator().manual_seed(num_samples)
    p_hat = estimate_p_hat(LOGITS.expand(DRAWS, 4), 'gumbel', num_samples,
                           generator=generator)
    zero_share = (p_hat == 0).float().mean(0)
    expected = (1 - PROBS)**num_samples
    bound = binomial_bound(expected, DRAWS)
    assert ((zero_share - expected).abs() < bound).all(), (zero_share,
                                                           expected)
    # K = 4, the paper's setting: a term of probability 0.07 gets no weight
    # on three images out of four.
    if num_samples == 4:
        assert zero_share[3].item() == pytest.approx(0.93**4, abs=0.01)


@pytest.mark.parametrize('num_samples', [1, 3, 4, 7])
def test_stratified_mean_variance_and_zero_share(num_samples):
    generator = torch.Generator().manual_seed(10 + num_samples)
    p_hat = stratified_sample(PROBS.expand(DRAWS, 4).contiguous(),
                              num_samples, generator=generator)
    grid = p_hat * num_samples
    torch.testing.assert_close(grid, grid.round(), atol=1e-5, rtol=0)
    torch.testing.assert_close(p_hat.sum(-1), torch.ones(DRAWS))
    # count = floor(K p) + Bernoulli(f), f = frac(K p): mean p, variance
    # f (1 - f) / K^2 (derivation in docs/slf.md).
    frac = num_samples * PROBS - torch.floor(num_samples * PROBS)
    variance = frac * (1 - frac) / num_samples**2
    mean_bound = 5 * torch.sqrt(variance / DRAWS) + 1e-6
    assert ((p_hat.mean(0) - PROBS).abs() < mean_bound).all()
    # The Bernoulli share f is estimated within a binomial bound, so the
    # variance f (1 - f) / K^2 is checked through it.
    extra = (grid - torch.floor(num_samples * PROBS)).mean(0)
    assert ((extra - frac).abs() < binomial_bound(frac, DRAWS)).all()
    torch.testing.assert_close(
        p_hat.var(0), variance, rtol=0.05, atol=1e-6)
    # Never above the independent draws' variance p (1 - p) / K.
    assert (variance <= PROBS * (1 - PROBS) / num_samples + 1e-9).all()
    # Weight 0 only while K p < 1, with probability 1 - K p.
    zero_expected = (1 - num_samples * PROBS).clamp(min=0)
    zero_share = (p_hat == 0).float().mean(0)
    assert ((zero_share - zero_expected).abs() <
            binomial_bound(zero_expected, DRAWS)).all()


def test_stratified_draws_follow_a_row_that_does_not_sum_to_one():
    """A row is drawn as the distribution it defines, p / sum(p): a term of
    probability 0 never gets weight. Before the cdf was normalised, the
    points above a sum of 0.99 went to the last term, whatever its p: it
    had weight in 4% of the rows at K = 4."""
    probs = torch.tensor([0.5, 0.49, 0.0])
    generator = torch.Generator().manual_seed(0)
    p_hat = stratified_sample(probs.expand(DRAWS, 3).contiguous(), 4,
                              generator=generator)
    assert (p_hat[:, 2] == 0).all()
    assert torch.equal(p_hat.sum(-1), torch.ones(DRAWS))
    target = probs / probs.sum()
    frac = 4 * target - torch.floor(4 * target)
    bound = 5 * torch.sqrt(frac * (1 - frac) / 16 / DRAWS) + 1e-6
    assert ((p_hat.mean(0) - target).abs() < bound).all()


def test_a_point_that_rounds_to_one_stays_off_a_zero_last_term(monkeypatch):
    """With U = 1 - 2^-24 the last point (K - 1 + U) / K rounds to 1.0 in
    float32; it falls in the last term of probability > 0, not in a last
    term of probability 0 (before, 6 rows in 200,000 at K = 1000)."""
    from mmdet_slf.slf import estimators
    real_rand = torch.rand

    def rand_below_one(*args, **kwargs):
        return real_rand(*args, **kwargs).fill_(1 - 2**-24)

    monkeypatch.setattr(estimators.torch, 'rand', rand_below_one)
    assert float((3 + torch.tensor(1 - 2**-24)) / 4) == 1.0
    p_hat = stratified_sample(torch.tensor([[0.5, 0.5, 0.0]]), 4)
    # The points round to 0.25, 0.5, 0.75 and 1.0 (kept just below 1): the
    # cdf [0.5, 1, 1] puts one in the first term and three in the second.
    torch.testing.assert_close(p_hat, torch.tensor([[0.25, 0.75, 0.0]]))


def test_a_nan_row_indexes_inside_the_row(monkeypatch):
    """A row of non-finite terms (left out later by the non-finite policy)
    has a NaN cdf; every comparison with NaN fails, so the search runs
    past the end (index n) and is clamped to the last term: [0, 1]. The
    finite row beside it is drawn as usual: with U = 0.5 the points 1/8,
    3/8, 5/8, 7/8 on the cdf [0.25, 1] give [1/4, 3/4]."""
    from mmdet_slf.slf import estimators
    real_rand = torch.rand

    def rand_half(*args, **kwargs):
        return real_rand(*args, **kwargs).fill_(0.5)

    monkeypatch.setattr(estimators.torch, 'rand', rand_half)
    probs = torch.tensor([[float('nan'), 0.5], [0.25, 0.75]])
    p_hat = stratified_sample(probs, 4)
    torch.testing.assert_close(p_hat, torch.tensor([[0.0, 1.0],
                                                    [0.25, 0.75]]))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_stratified_draws_half_precision_probabilities_in_float32(dtype):
    """A bfloat16 cdf put a rare term's mean at 0.0036 for p = 0.002 and
    rows off the 1/K grid; the draws are made in float32."""
    probs = torch.tensor([0.5, 0.002, 0.498]).to(dtype)
    generator = torch.Generator().manual_seed(3)
    p_hat = stratified_sample(probs.expand(DRAWS, 3).contiguous(), 4,
                              generator=generator)
    assert p_hat.dtype == dtype
    assert torch.equal(p_hat.sum(-1), torch.ones(DRAWS, dtype=dtype))
    assert torch.equal(p_hat * 4, (p_hat * 4).round())  # 1/4 is exact
    # mean p / sum(p) (the rounded row sums to 1 + 5e-5), variance
    # f (1 - f) / K^2 with f = frac(K p)
    target = probs.float() / probs.float().sum()
    frac = 4 * target - torch.floor(4 * target)
    bound = 5 * torch.sqrt(frac * (1 - frac) / 16 / DRAWS) + 1e-6
    assert ((p_hat.float().mean(0) - target).abs() < bound).all()


def test_expected_is_p_with_zero_variance():
    p_hat = estimate_p_hat(LOGITS.expand(5, 4), 'expected', num_samples=4)
    torch.testing.assert_close(p_hat, PROBS.expand(5, 4))


@pytest.mark.parametrize('estimator', ['stratified', 'expected'])
def test_straight_through_gradient_is_that_of_p(estimator):
    terms = torch.tensor([1.0, 2.0, 3.0, 4.0])
    logits = LOGITS.clone().requires_grad_(True)
    (estimate_p_hat(logits, estimator, 4) * terms).sum().backward()
    reference = LOGITS.clone().requires_grad_(True)
    (torch.softmax(reference, -1) * terms).sum().backward()
    torch.testing.assert_close(logits.grad, reference.grad)
    # Without straight-through, stratified counts carry no gradient.
    detached = estimate_p_hat(LOGITS.clone().requires_grad_(True),
                              'stratified', 4, straight_through=False)
    assert not detached.requires_grad


@pytest.mark.parametrize('estimator', ['stratified', 'expected'])
def test_probs_given_by_the_caller_are_not_computed_again(estimator):
    # Not softmax(LOGITS), so a p recomputed from the logits would show. With
    # K p_i integers the K stratified points fall K p_i in each interval.
    probs = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.5, 0.0, 0.0, 0.5],
                          [0.25, 0.25, 0.25, 0.25]])
    given = estimate_p_hat(LOGITS.expand(3, 4), estimator, 4, probs=probs,
                           generator=torch.Generator().manual_seed(0))
    assert torch.equal(given, probs)
    if estimator == 'expected':
        assert given is probs


def test_unknown_estimator_is_named():
    with pytest.raises(ValueError, match="estimator must be one of "
                       r"\('gumbel', 'stratified', 'expected'\), got 'mc'"):
        estimate_p_hat(LOGITS, 'mc', 4)
    with pytest.raises(ValueError, match='num_samples'):
        stratified_sample(PROBS, 0)


@pytest.mark.parametrize('hard', [True, False])
def test_slf_weighting_passes_hard_to_its_samples(hard):
    """``SLFWeighting(hard=...)`` reaches the draws: one-hot samples put
    each image's weights on the grid ``scale * k / K``; soft ones do not."""
    from mmdet_slf.slf import SLFWeighting
    terms = ['coord', 'pred', 'obj', 'noobj']
    weighting = SLFWeighting(terms, prior=[5.0, 1.0, 1.0, 0.5],
                             estimator='gumbel', num_samples=4, hard=hard)
    torch.manual_seed(0)
    raw = torch.rand(16, 4) + 0.5
    weights, _ = weighting.weigh(raw)
    grid = weights * 4 / 7.5
    assert torch.allclose(grid, grid.round(), atol=1e-5) == hard
