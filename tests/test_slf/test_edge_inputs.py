# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Inputs at the edge of what a weighting can take: integer terms, negative
terms, half-precision decisions, a term whose running average is 0, and a
decision network that reads two terms."""
import math

import pytest
import torch
from torch import nn

import mmdet_slf  # noqa: F401
from mmdet_slf.slf import (DWAWeighting, FAMOWeighting, FixedWeighting,
                           RandomWeighting, SLFDecisionNetwork, SLFWeighting,
                           UncertaintyWeighting)

TERMS = ['coord', 'pred', 'obj', 'noobj']
LAMBDAS = [5.0, 1.0, 1.0, 0.5]


def raw_terms(values):
    return {f'loss_{t}': v if not isinstance(v, float) else torch.tensor(v)
            for t, v in zip(TERMS, values)}


def test_integer_tensors_are_refused_and_python_numbers_are_floats():
    weighting = FixedWeighting(TERMS, weights=LAMBDAS)
    with pytest.raises(TypeError, match=r'loss_coord must be a floating-'
                       r'point tensor, got torch.int64'):
        weighting({f'loss_{t}': torch.tensor(1) for t in TERMS})
    # Python ints: 0.5 * 1, not the 0 of an int64 weight
    out = weighting({f'loss_{t}': 1 for t in TERMS})
    assert out['loss_noobj'].item() == 0.5
    assert out['loss_coord'].dtype == torch.get_default_dtype()


FLOORED = [
    (SLFWeighting, dict(prior=LAMBDAS)),  # 'scale_free'
    (SLFWeighting, dict(prior=LAMBDAS, decision_objective='teacher')),
    (SLFWeighting, dict(prior=LAMBDAS, decision_objective='progress')),
    (FAMOWeighting, dict()),
    (DWAWeighting, dict()),
    (UncertaintyWeighting, dict()),
]


@pytest.mark.parametrize('cls, kwargs', FLOORED,
                         ids=lambda x: getattr(x, '__name__', str(x)))
def test_a_negative_term_is_refused_where_sizes_are_weighted(cls, kwargs):
    weighting = cls(TERMS, **kwargs).train()
    before = {k: v.clone() for k, v in weighting.state_dict().items()}
    raw = torch.tensor([[0.5, 0.2, 1.0, 0.0], [0.4, -0.3, 1.0, 0.1]])
    # FAMO and DWA read only the batch-level terms: their check names the
    # sum over the images, 0.2 - 0.3; the others each image's entry.
    low = '-0\\.1' if cls.floor_on_batch_terms else '-0\\.3'
    with pytest.raises(ValueError, match=f'loss_pred = {low} < 0\\. Use a'):
        weighting({f'loss_{t}': raw[:, i] for i, t in enumerate(TERMS)})
    # the refused call left no trace in the running statistics
    for key, value in weighting.state_dict().items():
        assert torch.equal(value, before[key]), key
    # 0 is allowed (a term with nothing to do on an image)
    raw[1, 1] = 0.0
    weighting({f'loss_{t}': raw[:, i] for i, t in enumerate(TERMS)})


def test_famo_refuses_a_term_below_its_bound():
    famo = FAMOWeighting(TERMS, min_losses=[0.0, 0.5, 0.0, 0.0])
    with pytest.raises(ValueError, match=r'loss_pred = 0\.3 < 0\.5'):
        famo(raw_terms([1.0, 0.3, 1.0, 1.0]))
    famo(raw_terms([1.0, 0.6, 1.0, 1.0]))


def test_famo_bounds_the_batch_level_terms_not_each_image():
    """min_losses is on the scale of the batch-level terms: per-image
    entries 0.3 + 0.4 of a term bounded by 0.5 are a batch term of 0.7, as
    valid as the scalar 0.7, and weighted the same."""
    bounds = [0.0, 0.5, 0.0, 0.0]
    per_image = torch.tensor([[0.6, 0.3, 0.5, 0.2], [0.4, 0.4, 0.5, 0.3]])
    famo = FAMOWeighting(TERMS, init_weights=LAMBDAS, min_losses=bounds)
    scalar = FAMOWeighting(TERMS, init_weights=LAMBDAS, min_losses=bounds)
    for step in range(3):
        rows = per_image * (1 - 0.1 * step)
        out = famo({f'loss_{t}': rows[:, i] for i, t in enumerate(TERMS)})
        ref = scalar(raw_terms(rows.sum(0).tolist()))
        for t in TERMS:
            assert out[f'slf_w_{t}'].item() == pytest.approx(
                ref[f'slf_w_{t}'].item(), rel=1e-6), (step, t)
    # a batch term below the bound is still refused, by its sum
    with pytest.raises(ValueError, match=r'loss_pred = 0\.45 < 0\.5'):
        famo({f'loss_{t}': torch.tensor([0.2, 0.25]) for t in TERMS})


@pytest.mark.parametrize('weighting', [
    FixedWeighting(TERMS, weights=LAMBDAS),
    RandomWeighting(TERMS),
    SLFWeighting(TERMS, prior=LAMBDAS, decision_objective='joint'),
], ids=['fixed', 'rlw', 'joint'])
def test_strategies_that_weight_any_sign_take_negative_terms(weighting):
    out = weighting(raw_terms([1.0, -2.0, 1.0, 1.0]))
    assert out['loss_pred'].item() == pytest.approx(
        -2.0 * out['slf_w_pred'].item())


def test_the_kl_guard_pulls_towards_the_prior_for_negative_terms_too():
    """The guard is kl_weight * |scale * sum_i prior_i l_i| * KL(p || prior).
    Hand-worked for two terms, a uniform prior (scale n = 2) and p = (3/4,
    1/4): |2 * (-1/2 - 1/2)| = 2, KL = 3/4 ln(3/2) + 1/4 ln(1/2), so the
    guard is 5 * 2 * KL = 1.3081 for terms of -1 as for terms of +1. Without
    the absolute value it was -1.3081, and descending it drove p away from
    the prior."""
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    for sign in (-1.0, 1.0):
        weighting = SLFWeighting(['a', 'b'], decision_objective='joint',
                                 kl_weight=5.0)
        with torch.no_grad():
            weighting.decision_net.fc_out.bias.copy_(
                torch.tensor([0.75, 0.25]).log())
        optimizer = torch.optim.SGD(weighting.parameters(), lr=0.1)
        out = weighting({'loss_a': torch.tensor(sign),
                         'loss_b': torch.tensor(sign)})
        assert out['loss_slf_kl'].item() == pytest.approx(5 * 2 * kl,
                                                          rel=1e-5)
        for _ in range(20):
            optimizer.zero_grad()
            weighting({'loss_a': torch.tensor(sign),
                       'loss_b': torch.tensor(sign)})['loss_slf_kl'].backward()
            optimizer.step()
        p_a = weighting({'loss_a': torch.tensor(sign),
                         'loss_b': torch.tensor(sign)})['slf_p_a'].item()
        assert 0.5 <= p_a < 0.6, sign  # back towards 1/2, from 3/4


def test_nan_with_a_negative_term_names_the_negative_one():
    weighting = SLFWeighting(TERMS, prior=LAMBDAS)
    with pytest.raises(ValueError, match=r'loss_obj = -1 < 0'):
        weighting(raw_terms([math.nan, 1.0, -1.0, 1.0]))
    with pytest.raises(FloatingPointError, match=r"\['coord'\]"):
        weighting(raw_terms([math.nan, 1.0, 1.0, 1.0]))


@pytest.mark.parametrize('estimator', ['expected', 'gumbel', 'stratified'])
def test_non_finite_features_are_named_not_weighted(estimator):
    """Finite terms, Inf features: the decision network's p is NaN. The
    stratified draw used to put all of that row's weight on the last term
    (weights 0 / 0 / 6, J = NaN) with no message; every estimator now
    raises, naming the features, or skips the call with the state kept."""
    terms = ['a', 'b', 'c']
    raw = {f'loss_{t}': torch.tensor([1.0, 2.0]) for t in terms}
    features = torch.full((2, 4), math.inf)
    weighting = SLFWeighting(terms, in_channels=4, estimator=estimator)
    with pytest.raises(FloatingPointError,
                       match=r'non-finite decision features \(the input of '
                       r'the decision network\), with finite raw loss '
                       r'terms, in SLFWeighting'):
        weighting(raw, features=features)
    weighting = SLFWeighting(terms, in_channels=4, estimator=estimator,
                             nonfinite='skip')
    before = {k: v.clone() for k, v in weighting.state_dict().items()}
    out = weighting(raw, features=features)
    assert out['slf_skipped'].item() == 1
    assert all(out[f'loss_{t}'].item() == 0 for t in terms)
    for key, value in weighting.state_dict().items():
        assert torch.equal(value, before[key]), key
    # Finite features again: the call trains as usual.
    out = weighting(raw, features=torch.ones(2, 4))
    assert out['slf_skipped'].item() == 0
    assert sum(out[f'slf_w_{t}'].item() for t in terms) == pytest.approx(3.0)


def test_a_non_finite_decision_network_is_named():
    """Finite terms and features, a NaN parameter: the message says which."""
    weighting = SLFWeighting(TERMS, prior=LAMBDAS, estimator='stratified')
    with torch.no_grad():
        weighting.decision_net.fc_out.bias[1] = math.nan
    with pytest.raises(FloatingPointError,
                       match=r'non-finite weights or decision outputs '
                       r'\(decision_net.fc_out.bias hold NaN or Inf\)'):
        weighting(raw_terms([1.0, 1.0, 1.0, 1.0]))


@pytest.mark.parametrize('objective', ['joint', 'scale_free'])
@pytest.mark.parametrize('half', ['module', 'autocast'])
def test_half_precision_decision_with_a_vanishing_term_is_finite(
        objective, half):
    """p_pred = exp(-21) / Z is below float16's smallest number: its log
    must not become log 0, nor 0 * log 0 NaN."""
    weighting = SLFWeighting(TERMS, prior=LAMBDAS,
                             decision_objective=objective)
    with torch.no_grad():
        weighting.decision_net.fc_out.bias.copy_(
            torch.tensor([0.0, -21.0, 0.0, 0.0]))
    raw = torch.tensor([[0.4, 2.0, 0.7, 0.3], [0.2, 3.0, 0.5, 0.9]])
    reference = weighting(
        {f'loss_{t}': raw[:, i] for i, t in enumerate(TERMS)})
    weighting = SLFWeighting(TERMS, prior=LAMBDAS,
                             decision_objective=objective)
    with torch.no_grad():
        weighting.decision_net.fc_out.bias.copy_(
            torch.tensor([0.0, -21.0, 0.0, 0.0]))
    if half == 'module':
        weighting.half()
        out = weighting({f'loss_{t}': raw[:, i].half()
                         for i, t in enumerate(TERMS)})
    else:
        with torch.autocast('cpu', dtype=torch.float16):
            out = weighting(
                {f'loss_{t}': raw[:, i] for i, t in enumerate(TERMS)})
    # The three live terms share p: 1/3 each, entropy log 3.
    assert out['slf_entropy'].item() == pytest.approx(math.log(3), abs=1e-3)
    for key in ('loss_slf_kl', 'loss_slf_decision'):
        if key in reference:
            assert math.isfinite(out[key].item()), key
            assert out[key].item() == pytest.approx(
                reference[key].item(), rel=2e-3), key


def test_dwa_term_with_a_zero_average_has_ratio_one():
    dwa = DWAWeighting(['a', 'b'], window=1, temperature=2.0)
    for a in (0.0, 1.0):
        dwa({'loss_a': torch.tensor(a), 'loss_b': torch.tensor(2.0)})
    third = dwa({'loss_a': torch.tensor(1.0), 'loss_b': torch.tensor(2.0)})
    # r = [1 (no rate from a mean of 0), 2 / 2]: uniform weights, not
    # the one-hot of 1 / 1e-12
    assert third['slf_w_a'].item() == pytest.approx(1.0)
    assert third['slf_w_b'].item() == pytest.approx(1.0)


@pytest.mark.parametrize('in_channels, normed', [(1, False), (2, False),
                                                 (3, True), (8, True)])
def test_layer_norm_only_where_it_keeps_the_input(in_channels, normed):
    net = SLFDecisionNetwork(in_channels, 2, prior_init=False)
    assert isinstance(net.norm, nn.LayerNorm) == normed


def test_two_terms_are_read_by_size_not_only_by_order():
    """LayerNorm maps any two unequal values to (-1, 1): (0.1, 5) and
    (0.01, 300) would give the same p."""
    torch.manual_seed(0)
    weighting = SLFWeighting(['a', 'b'], prior_init=False)
    logits = weighting.decision_logits(
        torch.tensor([[0.1, 5.0], [0.01, 300.0]]), None)
    assert (logits[0] - logits[1]).abs().max().item() > 1e-3


def test_half_keeps_the_running_averages_in_float32():
    """After ``.half()`` the buffers stay float32 and the parameters become
    float16. In float16 ``0.99 m + 0.01 x`` rounds back to ``m``: the
    scale-free signal of constant terms settled at 1.02-1.07, not 1."""
    weighting = SLFWeighting(TERMS, prior=LAMBDAS).half()
    floating = [b for b in weighting.buffers() if b.is_floating_point()]
    assert floating and all(b.dtype == torch.float32 for b in floating)
    assert all(p.dtype == torch.float16 for p in weighting.parameters())
    raw = torch.tensor([0.37, 1.3, 0.05, 2.2]).half()
    for step in range(3000):
        # the first 300 calls at other sizes, then constant terms
        scale = 1.0 + 0.5 * math.sin(step) if step < 300 else 1.0
        out = weighting({f'loss_{t}': torch.stack([raw[i] * scale] * 2)
                         for i, t in enumerate(TERMS)})
    signal = torch.stack([out[f'slf_signal_{t}'] for t in TERMS]).float()
    torch.testing.assert_close(signal, torch.ones(4), atol=2e-3, rtol=0)
    for dtype in (torch.float16, torch.bfloat16):
        for cls in (FAMOWeighting, DWAWeighting):
            converted = cls(TERMS).to(dtype)
            assert all(b.dtype == torch.float32 for b in converted.buffers()
                       if b.is_floating_point()), (cls, dtype)


def test_half_keeps_the_values_of_the_buffers():
    """The buffers keep their values across ``.half()``, not values rounded
    to float16 on the way: 2e5 would be inf and 2e-8 zero, and the next
    call's weights NaN. The SLF prior stays exact too."""
    dwa = DWAWeighting(['a', 'b'], window=1)
    for a, b in ((1e5, 1e-8), (2e5, 2e-8)):
        dwa({'loss_a': torch.tensor(a), 'loss_b': torch.tensor(b)})
    state = {k: v.clone() for k, v in dwa.state_dict().items()}
    dwa.half()
    for key, value in dwa.state_dict().items():
        assert torch.equal(value, state[key]), key
    out = dwa({'loss_a': torch.tensor(2e4).half(),
               'loss_b': torch.tensor(1.0).half()})
    assert math.isfinite(out['slf_w_a'].item())
    slf = SLFWeighting(TERMS, prior=LAMBDAS)
    prior = slf.prior.clone()
    assert torch.equal(slf.half().float().prior, prior)
