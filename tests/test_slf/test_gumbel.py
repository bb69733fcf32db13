# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Multiple Gumbel-softmax, Eq. (9)-(10), against binomial bounds."""
import math

import pytest
import torch

from mmdet_slf.slf import multiple_gumbel_softmax, sample_gumbel

PROBS = torch.tensor([0.5, 0.25, 0.15, 0.1])
LOGITS = PROBS.log()


def test_k1_frequencies_match_softmax():
    # 20000 independent one-hot draws in one batch; each count is binomial.
    draws = 20000
    generator = torch.Generator().manual_seed(0)
    p_hat = multiple_gumbel_softmax(
        LOGITS.expand(draws, 4), num_samples=1, generator=generator)
    assert set(p_hat.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(p_hat.sum(-1), torch.ones(draws))
    frequency = p_hat.mean(0)
    # 5-sigma binomial bound: fails by chance with probability < 1e-6.
    bound = 5 * torch.sqrt(PROBS * (1 - PROBS) / draws)
    assert ((frequency - PROBS).abs() < bound).all(), (frequency, bound)


@pytest.mark.parametrize('num_samples', [2, 4, 7])
def test_p_hat_is_average_of_k_draws(num_samples):
    draws = 20000
    generator = torch.Generator().manual_seed(1)
    p_hat = multiple_gumbel_softmax(
        LOGITS.expand(draws, 4), num_samples=num_samples, generator=generator)
    # Values on the 1/K grid, rows sum to one.
    grid = p_hat * num_samples
    torch.testing.assert_close(grid, grid.round(), atol=1e-5, rtol=0)
    torch.testing.assert_close(p_hat.sum(-1), torch.ones(draws))
    # Mean equals the probabilities; an average of K draws has variance
    # p(1-p)/K per row, so the mean over rows has p(1-p)/(K*draws).
    bound = 5 * torch.sqrt(PROBS * (1 - PROBS) / (num_samples * draws))
    assert ((p_hat.mean(0) - PROBS).abs() < bound).all()
    # And the spread of one row matches the multinomial variance p(1-p)/K.
    variance = p_hat.var(0)
    expected = PROBS * (1 - PROBS) / num_samples
    assert ((variance / expected) - 1).abs().max() < 0.1


def test_p_hat_approaches_probabilities_as_k_grows():
    generator = torch.Generator().manual_seed(2)
    errors = []
    for num_samples in (1, 16, 256, 4096):
        p_hat = multiple_gumbel_softmax(
            LOGITS.expand(200, 4), num_samples=num_samples,
            generator=generator)
        errors.append((p_hat - PROBS).abs().sum(-1).mean().item())
    assert errors == sorted(errors, reverse=True)
    # E|p_hat - p|_1 shrinks like 1/sqrt(K): at K=4096 it is about 0.02.
    assert errors[-1] < 0.03


def test_gradients_reach_logits_straight_through():
    logits = LOGITS.clone().requires_grad_(True)
    loss_terms = torch.tensor([1.0, 2.0, 3.0, 4.0])
    p_hat = multiple_gumbel_softmax(
        logits, num_samples=8, generator=torch.Generator().manual_seed(3))
    (p_hat * loss_terms).sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0
    # Softmax gradients sum to zero over the terms.
    assert abs(logits.grad.sum().item()) < 1e-5


def test_soft_samples_and_vectorised_shape():
    logits = torch.randn(3, 5, 4)
    p_hat = multiple_gumbel_softmax(logits, num_samples=3, hard=False)
    assert p_hat.shape == (3, 5, 4)
    torch.testing.assert_close(p_hat.sum(-1), torch.ones(3, 5))
    assert (p_hat > 0).all()


@pytest.mark.parametrize('num_samples', [0, -1, 1.5])
def test_bad_num_samples(num_samples):
    with pytest.raises(ValueError, match='num_samples'):
        multiple_gumbel_softmax(LOGITS, num_samples=num_samples)


@pytest.mark.parametrize('tau', [0.0, -1.0, math.nan])
def test_bad_tau(tau):
    with pytest.raises(ValueError, match='tau'):
        multiple_gumbel_softmax(LOGITS, num_samples=2, tau=tau)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_logits_draw_rare_terms_at_their_rate(dtype):
    """Noise drawn in half precision has its tails cut off (at 6.9 for
    float16, 4.8 for bfloat16), so a term of probability 5e-4 was drawn
    at a fraction of its rate, or never; the draws are made in float32."""
    draws = 400000
    logits = torch.tensor([0.6, 0.3994, 0.0005, 0.0001]).log().to(dtype)
    # The probabilities of the logits as rounded to the half type.
    probs = torch.softmax(logits.float(), -1)
    p_hat = multiple_gumbel_softmax(
        logits.expand(draws, 4), num_samples=1,
        generator=torch.Generator().manual_seed(4))
    assert p_hat.dtype == torch.float32
    frequency = p_hat.mean(0)
    bound = 5 * torch.sqrt(probs * (1 - probs) / draws)
    assert ((frequency - probs).abs() < bound).all(), (frequency, probs)


@pytest.mark.parametrize('tau', [0.5, 2.0])
def test_straight_through_gradient_is_the_soft_samples(tau):
    """Backward of ``c . p_hat``: the mean over samples of the soft
    sample's gradient, ``s * (c - s . c) / tau`` per sample with ``s =
    softmax((log p + g) / tau)`` (the log-softmax Jacobian drops out because
    that vector sums to 0), for the noise ``g`` the call drew."""
    from mmdet_slf.slf.gumbel import sample_gumbel
    num_samples = 3
    logits = LOGITS.clone().requires_grad_(True)
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0])
    p_hat = multiple_gumbel_softmax(
        logits, num_samples, tau=tau,
        generator=torch.Generator().manual_seed(7))
    (weights * p_hat).sum().backward()
    noise = sample_gumbel(torch.Size((num_samples, 4)), logits.device,
                          logits.dtype,
                          generator=torch.Generator().manual_seed(7))
    soft = torch.softmax((PROBS.log() + noise) / tau, dim=-1)  # [K, n]
    grads = soft * (weights - (soft * weights).sum(-1, keepdim=True)) / tau
    torch.testing.assert_close(logits.grad, grads.mean(0))
    # the forward value is one-hot: the argmax of each soft sample
    counts = torch.zeros(4).index_add_(0, soft.argmax(-1),
                                       torch.ones(num_samples))
    torch.testing.assert_close(p_hat.detach(), counts / num_samples)


@pytest.mark.parametrize('hard', [False, True])
def test_samples_are_the_mean_of_k_draws_of_the_same_noise(hard):
    """``p_hat`` against the K draws made by hand from the same noise: the
    mean of ``softmax((log p + g_k) / tau)`` (soft) or of the one-hot of
    ``argmax(log p + g_k)`` (hard), through ``estimate_p_hat``."""
    from mmdet_slf.slf import estimate_p_hat
    from mmdet_slf.slf.gumbel import sample_gumbel
    num_samples, tau, rows = 5, 0.7, 3
    logits = torch.randn(rows, 4, generator=torch.Generator().manual_seed(8))
    p_hat = estimate_p_hat(logits, 'gumbel', num_samples, tau=tau, hard=hard,
                           generator=torch.Generator().manual_seed(9))
    noise = sample_gumbel(torch.Size((num_samples, rows, 4)), logits.device,
                          logits.dtype,
                          generator=torch.Generator().manual_seed(9))
    perturbed = torch.log_softmax(logits, -1) + noise  # [K, rows, n]
    if hard:
        draws = torch.nn.functional.one_hot(perturbed.argmax(-1), 4).float()
    else:
        draws = torch.softmax(perturbed / tau, -1)
    torch.testing.assert_close(p_hat, draws.mean(0))
    # soft draws are off the 1/K grid that one-hot draws lie on
    on_grid = torch.equal(p_hat * num_samples, (p_hat * num_samples).round())
    assert on_grid == hard


def test_the_one_hot_draw_does_not_depend_on_tau():
    """The hard sample is the categorical draw ``argmax(log p + g)`` at any
    temperature. Taken from the tempered softmax, as before, it tied at
    tau = 1e9 (every entry 0.25 in float32) and the first term won the
    tie: its share was 1, not 0.5."""
    draws = 20000
    shares = []
    for tau in (1.0, 1e9):
        p_hat = multiple_gumbel_softmax(
            LOGITS.expand(draws, 4), num_samples=1, tau=tau,
            generator=torch.Generator().manual_seed(10))
        shares.append(p_hat.mean(0))
    torch.testing.assert_close(shares[0], shares[1])
    bound = 5 * torch.sqrt(PROBS * (1 - PROBS) / draws)
    assert ((shares[1] - PROBS).abs() < bound).all(), shares[1]


@pytest.mark.parametrize('hard', [False, True])
def test_a_tiny_tau_gives_the_one_hot_draw_not_nan(hard):
    """(log p + g) / tau overflowed float32 below tau = 1e-38 and the
    softmax of inf - inf was NaN, in the soft sample and so in the
    straight-through one. The row is shifted by its largest entry first:
    the soft sample is then the one-hot draw itself, with gradient 0 (an
    annealed tau ends at a hard, unbiased draw), and tau = 1 is bitwise the
    unshifted softmax."""
    draws = 2000
    logits = LOGITS.expand(draws, 4).clone().requires_grad_(True)
    weights = torch.tensor([1.0, -2.0, 0.5, 3.0])
    p_hats = {}
    for tau in (1.0, 1e-39, 1e-45):
        p_hat = multiple_gumbel_softmax(
            logits, num_samples=2, tau=tau, hard=hard,
            generator=torch.Generator().manual_seed(12))
        (grad, ) = torch.autograd.grad((weights * p_hat).sum(), logits)
        p_hats[tau] = p_hat.detach()
        assert torch.isfinite(p_hat).all() and torch.isfinite(grad).all()
        if tau < 1:
            assert torch.equal(grad, torch.zeros_like(grad))
    from mmdet_slf.slf.gumbel import sample_gumbel
    noise = sample_gumbel(torch.Size((2, draws, 4)), logits.device,
                          logits.dtype,
                          generator=torch.Generator().manual_seed(12))
    perturbed = PROBS.log() + noise
    one_hot = torch.nn.functional.one_hot(perturbed.argmax(-1), 4).float()
    assert torch.equal(p_hats[1e-39], one_hot.mean(0))
    assert torch.equal(p_hats[1e-45], one_hot.mean(0))
    if not hard:
        assert torch.equal(p_hats[1.0],
                           torch.softmax(torch.log_softmax(
                               LOGITS, -1) + noise, -1).mean(0))


def test_a_uniform_of_zero_gives_finite_noise(monkeypatch):
    """U = 0 (probability 2^-24 per float32 draw) is clamped up to the
    smallest normal float32, tiny = 2^-126: the noise is -log(-log(tiny))
    = -log(126 ln 2) = -4.4698, not -log(-log(0)) = -inf."""
    from mmdet_slf.slf import gumbel
    real_rand = torch.rand

    def rand_zero(*args, **kwargs):
        return real_rand(*args, **kwargs).zero_()

    monkeypatch.setattr(gumbel.torch, 'rand', rand_zero)
    noise = sample_gumbel(torch.Size([3]), 'cpu', torch.float32)
    expected = -math.log(126 * math.log(2))  # -4.46977
    assert torch.isfinite(noise).all()
    torch.testing.assert_close(noise, torch.full((3, ), expected))
