# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Loss-weighting strategies: hand-worked values, bounds and failure modes."""
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmcv.cnn.bricks.drop import DropPath
from mmengine.config import Config
from mmdet.registry import MODELS
from torch import nn

import mmdet_slf  # noqa: F401
from mmdet_slf.slf import (DWAWeighting, FixedWeighting, RandomWeighting,
                           SLFWeighting, UncertaintyWeighting)
from conftest import REPO_ROOT

TERMS = ['coord', 'pred', 'obj', 'noobj']
LAMBDAS = [5.0, 1.0, 1.0, 0.5]
# The paper's mechanism (Algorithm 1): what the tests of its sampling and its
# joint objective build; SLFWeighting's defaults are 'scale_free', 'expected'.
PAPER = dict(decision_objective='joint', estimator='gumbel')


def raw_terms(values):
    return {f'loss_{t}': torch.as_tensor(v) for t, v in zip(TERMS, values)}


def total(outputs):
    return sum(v for k, v in outputs.items() if k.startswith('loss_')
               and k[5:] in TERMS)


def test_fixed_weights_given_by_name_follow_the_terms_not_the_dict_order():
    weighting = FixedWeighting(['coord', 'noobj'],
                               weights={'noobj': 0.5, 'coord': 5.0})
    out = weighting({'loss_coord': torch.tensor(1.0),
                     'loss_noobj': torch.tensor(1.0)})
    assert out['loss_coord'].item() == pytest.approx(5.0)
    assert out['loss_noobj'].item() == pytest.approx(0.5)


def test_fixed_weighting_hand_worked():
    weighting = MODELS.build(
        dict(type='FixedWeighting', terms=TERMS, weights=LAMBDAS))
    out = weighting(raw_terms([1.0, 2.0, 3.0, 4.0]))
    assert out['loss_coord'].item() == pytest.approx(5.0)
    assert out['loss_noobj'].item() == pytest.approx(2.0)
    assert total(out).item() == pytest.approx(5 + 2 + 3 + 2)
    assert out['slf_w_coord'].item() == 5.0
    assert not any('loss' in k for k in out if k.startswith('slf'))


def test_fixed_weighting_per_image_sums_images():
    weighting = FixedWeighting(TERMS, weights=dict(zip(TERMS, LAMBDAS)))
    per_image = raw_terms([[1.0, 1.0], [2.0, 0.0], [0.5, 0.5], [1.0, 3.0]])
    out = weighting(per_image)
    assert out['loss_coord'].item() == pytest.approx(10.0)
    assert out['loss_noobj'].item() == pytest.approx(2.0)


def test_defaults_are_the_project_setting():
    # SLFWeighting's defaults and the base config the project's SLF configs
    # inherit name the same setting (docs/slf.md, "Which setting is the
    # default").
    base = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', '_base_',
                 'slf_weighting.py')).slf_weighting
    weighting = SLFWeighting(TERMS)
    assert (weighting.decision_objective,
            weighting.estimator) == ('scale_free', 'expected')
    for key, value in base.items():
        if key != 'type':
            assert getattr(weighting, key) == value, key


def test_slf_prior_init_and_scale():
    weighting = SLFWeighting(TERMS, prior=LAMBDAS, in_channels=6, **PAPER)
    features = torch.randn(3, 6) * 10
    probs = torch.softmax(weighting.decision_net(features), -1)
    prior = torch.tensor(LAMBDAS) / sum(LAMBDAS)
    torch.testing.assert_close(probs, prior.expand(3, 4))
    assert weighting.scale == pytest.approx(7.5)

    # Equal raw terms: sum(p_hat) == 1, so every draw totals scale * c,
    # which is exactly the fixed-lambda total for equal terms.
    fixed = FixedWeighting(TERMS, weights=LAMBDAS)
    equal = raw_terms([0.8] * 4)
    expected = total(fixed(equal)).item()
    for _ in range(5):
        out = weighting(equal, features=features[:1])
        assert total(out).item() == pytest.approx(expected, rel=1e-6)


def test_slf_step0_expected_weights_equal_prior():
    torch.manual_seed(0)
    weighting = SLFWeighting(TERMS, prior=LAMBDAS, num_samples=4, **PAPER)
    draws = 4000
    per_image = raw_terms(torch.rand(4, draws) + 0.5)
    out = weighting(per_image)
    prior = torch.tensor(LAMBDAS) / sum(LAMBDAS)
    mean_weights = torch.tensor([out[f'slf_w_{t}'].item() for t in TERMS])
    # Mean of scale * p_hat over N images, each an average of K one-hots.
    std = torch.sqrt(prior * (1 - prior) / (4 * draws)) * 7.5
    assert ((mean_weights - 7.5 * prior).abs() < 5 * std).all()
    assert out['slf_temperature'].item() == 1.0
    entropy = -(prior * prior.log()).sum().item()
    assert out['slf_entropy'].item() == pytest.approx(entropy, rel=1e-5)


def test_slf_per_image_weights_use_each_images_own_p_hat():
    weighting = SLFWeighting(['a', 'b'], in_channels=2, scale=1.0,
                             num_samples=1, kl_weight=0.0, **PAPER,
                             decision_net=dict(type='SLFDecisionNetwork',
                                               hidden_channels=0,
                                               norm_input=False))
    with torch.no_grad():
        weighting.decision_net.fc_out.weight.copy_(torch.eye(2))
        weighting.decision_net.fc_out.bias.zero_()
    # Image 0 reads [50, 0] -> always term a; image 1 reads [0, 50] -> b.
    features = torch.tensor([[50.0, 0.0], [0.0, 50.0]])
    raw = {'loss_a': torch.tensor([1.0, 3.0]),
           'loss_b': torch.tensor([2.0, 4.0])}
    out = weighting(raw, features=features)
    assert out['loss_a'].item() == pytest.approx(1.0)
    assert out['loss_b'].item() == pytest.approx(4.0)
    assert out['slf_w_a'].item() == pytest.approx(0.5)

    # Per batch: one p_hat from the mean features [25, 25] for both images.
    weighting.per_image = False
    out = weighting(raw, features=features)
    chosen = [k for k in ('loss_a', 'loss_b') if out[k].item() > 0]
    assert len(chosen) == 1
    assert out[chosen[0]].item() == pytest.approx(
        raw[chosen[0]].sum().item())


def _train_decision(weighting, raw_values, steps=300, lr=0.5):
    optimizer = torch.optim.SGD(weighting.parameters(), lr=lr)
    raw = raw_terms(raw_values)
    for _ in range(steps):
        out = weighting(raw)
        objective = sum(v for k, v in out.items() if 'loss' in k)
        optimizer.zero_grad()
        objective.backward()
        optimizer.step()
    with torch.no_grad():
        inputs = torch.log1p(torch.tensor(raw_values))[None]
        return torch.softmax(weighting.decision_net(inputs), -1)[0]


def test_faithful_collapses_on_smallest_term_and_kl_guard_softens_it():
    # YOLO-like magnitudes: coord is the smallest raw term.
    raw_values = [0.5, 2.0, 1.5, 3.0]
    torch.manual_seed(0)
    faithful = SLFWeighting(TERMS, prior=None, prior_init=False, scale=1.0,
                            kl_weight=0.0, entropy_weight=0.0, **PAPER)
    probs = _train_decision(faithful, raw_values, lr=0.05)
    assert probs.argmax().item() == 0
    assert probs[0].item() > 0.99, probs

    torch.manual_seed(0)
    guarded = SLFWeighting(TERMS, prior=LAMBDAS, kl_weight=5.0, **PAPER)
    probs = _train_decision(guarded, raw_values, lr=0.05)
    # Stationary point of Eq. (11) + kl_weight * (prior . l) * KL(p||prior):
    # p_i ~ prior_i * exp(-l_i / (kl_weight * prior . l)).
    prior = torch.tensor(LAMBDAS) / sum(LAMBDAS)
    raw = torch.tensor(raw_values)
    gibbs = prior * torch.exp(-raw / (5.0 * (prior * raw).sum()))
    gibbs = gibbs / gibbs.sum()
    assert (probs - gibbs).abs().max().item() < 0.03, (probs, gibbs)
    assert probs.max().item() < 0.8


def test_temperature_schedule_and_buffer():
    weighting = SLFWeighting(
        TERMS, temperature=1.0, estimator='gumbel',
        temperature_schedule=dict(type='exp', final=0.25, num_iters=4))
    temps = []
    for _ in range(6):
        out = weighting(raw_terms([1.0] * 4))
        temps.append(out['slf_temperature'].item())
    expected = [0.25**(min(i, 4) / 4) for i in range(6)]
    assert temps == pytest.approx(expected)
    assert int(weighting.num_updates) == 6
    assert 'num_updates' in weighting.state_dict()
    weighting.eval()
    weighting(raw_terms([1.0] * 4))
    assert int(weighting.num_updates) == 6
    for kind, mid in (('linear', 0.625), ('cosine', 0.625)):
        w = SLFWeighting(TERMS, estimator='gumbel', temperature_schedule=dict(
            type=kind, final=0.25, num_iters=4))
        w.num_updates.fill_(2)
        assert w.current_temperature() == pytest.approx(mid)


def test_gradients_flow_to_features_only_when_not_detached():
    for detach in (True, False):
        weighting = SLFWeighting(TERMS, in_channels=3, detach_features=detach,
                                 prior_init=False, **PAPER)
        features = torch.randn(2, 3, requires_grad=True)
        raw = raw_terms(torch.rand(4, 2) + 0.1)
        out = weighting(raw, features=features)
        total(out).backward()
        assert weighting.decision_net.fc_out.weight.grad.abs().sum() > 0
        assert (features.grad is None) == detach


@pytest.mark.parametrize('guard, key', [
    (dict(kl_weight=2.0), 'loss_slf_kl'),
    (dict(kl_weight=0.0, entropy_weight=0.5), 'loss_slf_entropy'),
])
def test_guards_train_the_decision_network_not_the_features(guard, key):
    """With detach_features=False, Eq. (11) reaches the detector through
    the features; the KL and entropy guards (ours) do not, and they give h
    the gradient they give it with detached features."""
    grads = {}
    for detach in (True, False):
        torch.manual_seed(0)
        weighting = SLFWeighting(TERMS, in_channels=3, detach_features=detach,
                                 decision_objective='joint',
                                 estimator='expected', prior_init=False,
                                 **guard)
        features = torch.randn(2, 3, requires_grad=True)
        out = weighting(raw_terms(torch.rand(4, 2) + 0.1), features=features)
        params = list(weighting.decision_net.parameters())
        on_features, *on_h = torch.autograd.grad(
            out[key], [features] + params, allow_unused=True,
            retain_graph=True)
        weighted = torch.autograd.grad(total(out), features,
                                       allow_unused=True)[0]
        grads[detach] = on_features, on_h, weighted
    assert grads[True][0] is None and grads[False][0] is None
    assert grads[True][2] is None and grads[False][2].abs().sum() > 0
    for with_detached, without in zip(grads[True][1], grads[False][1]):
        torch.testing.assert_close(without, with_detached)
    assert sum(g.abs().sum() for g in grads[False][1]) > 0


NOT_REPEATABLE = dict(
    Dropout=lambda n: nn.Dropout(),
    AlphaDropout=lambda n: nn.AlphaDropout(),
    DropPath=lambda n: DropPath(0.1),
    BatchNorm1d=lambda n: nn.BatchNorm1d(n),
    SyncBatchNorm=lambda n: nn.SyncBatchNorm(n),
    InstanceNorm1d=lambda n: nn.InstanceNorm1d(n, track_running_stats=True))
# Two reads on one input agree and change no state.
REPEATABLE = dict(
    BatchNorm1d=lambda n: nn.BatchNorm1d(n, track_running_stats=False),
    InstanceNorm1d=lambda n: nn.InstanceNorm1d(n),
    LayerNorm=lambda n: nn.LayerNorm(n))


def register_decision_net(name, make_layer):
    """A linear decision network followed by ``make_layer(num_terms)`` at
    ``fc.1``, registered as ``name``."""

    class Net(nn.Module):

        def __init__(self, in_channels, num_terms, prior, prior_init):
            super().__init__()
            self.in_channels = in_channels
            self.fc = nn.Sequential(nn.Linear(in_channels, num_terms),
                                    make_layer(num_terms))

        def forward(self, features):
            return self.fc(features)

    MODELS.register_module(name=name, module=Net, force=True)
    return dict(type=name)


@pytest.mark.parametrize('layer', sorted(NOT_REPEATABLE))
def test_a_decision_network_read_twice_must_be_repeatable(layer):
    """The guards re-read the features detached (above), so they read the
    decision network twice per step: a dropout would draw another mask
    (the guard then pulls another p than Eq. (11) uses) and a batch norm
    would update its statistics twice. Such a network is refused where
    the re-read happens (either guard on), named, and taken where it does
    not."""
    name = f'NoisyDecision{layer}'
    noisy = register_decision_net(name, NOT_REPEATABLE[layer])
    try:
        for guard in (dict(), dict(kl_weight=0.0, entropy_weight=0.1)):
            with pytest.raises(ValueError, match=f"decision_net has {layer} "
                               "at 'fc.1': with detach_features=False the "
                               'guards read it again'):
                SLFWeighting(TERMS, in_channels=3, decision_net=noisy,
                             detach_features=False,
                             decision_objective='joint', **guard)
        for taken in (dict(detach_features=True),
                      dict(detach_features=False, kl_weight=0.0),
                      dict(detach_features=False, in_channels=None)):
            options = dict(dict(in_channels=3, decision_objective='joint'),
                           **taken)
            SLFWeighting(TERMS, decision_net=noisy, **options)
    finally:
        MODELS.module_dict.pop(name)


@pytest.mark.parametrize('layer', sorted(REPEATABLE))
def test_norms_without_running_statistics_are_taken(layer):
    """A norm that keeps no running statistics gives the same output for
    the same input and changes nothing: it may be read twice."""
    name = f'QuietDecision{layer}'
    quiet = register_decision_net(name, REPEATABLE[layer])
    try:
        weighting = SLFWeighting(TERMS, in_channels=3, decision_net=quiet,
                                 detach_features=False,
                                 decision_objective='joint')
        net = weighting.decision_net.train()
        features = torch.rand(4, 3)
        state = {k: v.clone() for k, v in net.state_dict().items()}
        torch.testing.assert_close(net(features), net(features),
                                   rtol=0, atol=0)
        for key, value in net.state_dict().items():
            assert torch.equal(value, state[key]), key
    finally:
        MODELS.module_dict.pop(name)


def test_joint_trains_h_through_the_samples_straight_through():
    """Algorithm 1 without the guard: the decision network learns from
    Eq. (11) alone, through the straight-through samples. Stratified
    samples pass the gradient of p: the same as the expected weights p
    themselves. Gumbel samples pass that of the soft samples (tested in
    test_gumbel.py), which is not 0."""
    grads = {}
    for name in ('stratified', 'expected', 'gumbel'):
        torch.manual_seed(0)
        weighting = SLFWeighting(TERMS, in_channels=3, kl_weight=0.0,
                                 decision_objective='joint', estimator=name,
                                 prior_init=False)
        features = torch.randn(2, 3)
        out = weighting(raw_terms(torch.rand(4, 2) + 0.1), features=features)
        grads[name] = torch.autograd.grad(
            total(out), list(weighting.decision_net.parameters()))
    for sampled, expected in zip(grads['stratified'], grads['expected']):
        torch.testing.assert_close(sampled, expected)
    assert sum(g.abs().sum() for g in grads['expected']) > 0
    assert sum(g.abs().sum() for g in grads['gumbel']) > 0


def test_kl_guard_gradient_on_a_collapsed_term_is_the_formula():
    """Where Algorithm 1 collapses (p of a term near 1e-6), the KL guard's
    gradient on the logits is kl_weight * M * p_j (log p_j / prior_j - KL),
    M = scale * prior . l: its push back to the prior is not cut off."""
    weighting = SLFWeighting(TERMS, in_channels=3, decision_objective='joint',
                             estimator='expected', kl_weight=2.0,
                             prior=LAMBDAS)
    logits = torch.tensor([[4.0, 2.0, -12.0, 1.0]], requires_grad=True)
    weighting.decision_logits = lambda raw, features: logits
    raw = [1.0, 2.0, 3.0, 4.0]
    out = weighting(raw_terms(raw), features=torch.zeros(3))
    out['loss_slf_kl'].backward()
    z = logits.detach().double()
    log_p = torch.log_softmax(z, -1)[0]
    prior = torch.tensor(LAMBDAS, dtype=torch.float64) / sum(LAMBDAS)
    kl = (log_p.exp() * (log_p - prior.log())).sum()
    magnitude = weighting.scale * (prior * torch.tensor(raw).double()).sum()
    expected = 2.0 * magnitude * log_p.exp() * (log_p - prior.log() - kl)
    assert log_p[2].exp() < 1e-6
    torch.testing.assert_close(logits.grad[0].double(), expected,
                               rtol=1e-4, atol=0)


def test_kl_guard_log_p_is_floored_at_1e_12():
    """``log p`` in the guard is ``log max(p, 1e-12)``, the floor the
    objectives have always used (``decision_objective``'s own default):
    below 1e-12 a term enters with ``log p = log 1e-12 = -27.63`` and no
    gradient through its log, so the KL gradient on its logit is
    ``kl_weight * M * p_c (log 1e-12 - log prior_c - KL - 1)``, not the
    exact ``p_c (log p_c - log prior_c - KL)`` (a log-softmax's).

    Uniform prior over 3 terms, logits [0, 0, -40]: p_c = e^-40 / (2 +
    e^-40) = 2.1e-18, KL = log 1.5; M = scale * prior . l = 3 * 1 = 3."""
    weighting = SLFWeighting(['a', 'b', 'c'], prior=[1.0, 1.0, 1.0],
                             decision_objective='joint', kl_weight=1.0)
    with torch.no_grad():
        weighting.decision_net.fc_out.bias.copy_(
            torch.tensor([0.0, 0.0, -40.0]))
    out = weighting({f'loss_{t}': torch.tensor(1.0) for t in 'abc'})
    out['loss_slf_kl'].backward()
    grad = weighting.decision_net.fc_out.bias.grad[2].item()
    p_c = math.exp(-40) / (2 + math.exp(-40))
    kl = math.log(1.5)
    assert out['loss_slf_kl'].item() == pytest.approx(3 * kl, rel=1e-6)
    floored = 3 * p_c * (math.log(1e-12) - math.log(1 / 3) - kl - 1)
    exact = 3 * p_c * (math.log(p_c) - math.log(1 / 3) - kl)
    # -1.78e-16: abs=0, or approx's default abs=1e-12 would take anything
    assert grad == pytest.approx(floored, rel=1e-4, abs=0)
    assert floored / exact == pytest.approx(0.698, abs=1e-3)


def test_one_p_hat_per_batch_reads_the_batch_sum_of_the_terms():
    """``per_image=False``: the terms are summed over the batch, and the
    'scale_free' signal ``s = L / m`` reads that sum ``L``, its running
    mean ``m`` too. With momentum 0.5: call 1, two images [1, 2] each: L1
    = [2, 4], m = L1, s = [1, 1]. Call 2, one image [3, 3]: L2 = [3, 3],
    m = (0.5 L1 + L2) / 1.5 = [8/3, 10/3], s = [9/8, 9/10]; p = prior =
    [0.5, 0.5] (the network's start), J = 0.5 * (9/8 + 9/10) = 1.0125.
    The batch mean instead of the sum gives s = [9/7, 9/8] at call 2."""
    weighting = SLFWeighting(['a', 'b'], per_image=False, scale_momentum=0.5)
    expected = [[1.0, 1.0], [9 / 8, 9 / 10]]
    for rows, signal in zip(([[1.0, 2.0], [1.0, 2.0]], [[3.0, 3.0]]),
                            expected):
        rows = torch.tensor(rows)
        out = weighting({'loss_a': rows[:, 0], 'loss_b': rows[:, 1]})
        assert out['slf_signal_a'].item() == pytest.approx(signal[0])
        assert out['slf_signal_b'].item() == pytest.approx(signal[1])
    assert out['loss_slf_decision'].item() == pytest.approx(1.0125)


def test_probability_and_signal_diagnostics_are_batch_means():
    """``slf_p_<term>`` and ``slf_signal_<term>`` are the means over the
    images of per-image values: p from the decision network's softmax on
    log(1 + l) of each image, and the teacher's s = -l / (prior . l) of each
    image, both recomputed here from their formulas."""
    torch.manual_seed(0)
    weighting = SLFWeighting(TERMS, decision_objective='teacher',
                             prior=LAMBDAS, prior_init=False)
    rows = torch.tensor([[0.2, 1.5, 0.3, 0.1], [0.05, 0.4, 0.9, 0.6],
                         [1.0, 0.1, 0.2, 0.3]])  # [images, terms]
    out = weighting(raw_terms(rows.t()))
    with torch.no_grad():
        p = torch.softmax(weighting.decision_net(torch.log1p(rows)), dim=-1)
    prior = torch.tensor(LAMBDAS) / sum(LAMBDAS)
    signal = -rows / (rows * prior).sum(-1, keepdim=True)
    for i, term in enumerate(TERMS):
        assert out[f'slf_p_{term}'].item() == pytest.approx(
            p[:, i].mean().item(), rel=1e-5)
        assert out[f'slf_signal_{term}'].item() == pytest.approx(
            signal[:, i].mean().item(), rel=1e-5)
    # the rows differ, so the first image alone would not pass
    assert not torch.allclose(p[0], p.mean(0), rtol=1e-3)
    assert not torch.allclose(signal[0], signal.mean(0), rtol=1e-3)


def test_uncertainty_weighting_formula():
    weighting = UncertaintyWeighting(TERMS, init_weights=LAMBDAS)
    out = weighting(raw_terms([1.0, 2.0, 3.0, 4.0]))
    assert out['loss_coord'].item() == pytest.approx(5.0, rel=1e-6)
    # Regulariser: sum s_i with s_i = -log(lambda_i).
    expected_reg = -sum(math.log(v) for v in LAMBDAS)
    assert out['loss_uncertainty_reg'].item() == pytest.approx(expected_reg)
    # d/ds_i [exp(-s_i) l_i + s_i] = 1 - lambda_i * l_i.
    objective = sum(v for k, v in out.items() if 'loss' in k)
    objective.backward()
    expected_grad = torch.tensor(
        [1 - lam * l for lam, l in zip(LAMBDAS, [1.0, 2.0, 3.0, 4.0])])
    torch.testing.assert_close(weighting.log_vars.grad, expected_grad)


def _joint_per_image(kl_weight=0.0, entropy_weight=0.0):
    """Algorithm 1 with expected weights whose decision network is one
    linear layer over one-hot image features: its weight matrix holds every
    image's logits (logits[n, i] = weight[i, n])."""
    return SLFWeighting(
        TERMS, prior=LAMBDAS, in_channels=3, decision_objective='joint',
        estimator='expected', kl_weight=kl_weight,
        entropy_weight=entropy_weight,
        decision_net=dict(type='SLFDecisionNetwork', hidden_channels=0,
                          norm_input=False)).double()


def test_kl_guard_fixed_point_per_image():
    """Eq. (11) summed over N images plus ``beta_kl * scale * (prior .
    sum_n l_n) * mean_n KL(p_n || prior)``: zero gradient at p_n ~ prior *
    exp(-l_n / (beta_kl * prior . mean_n l_n)), per image."""
    raw = torch.tensor([[0.5, 2.0, 1.5, 3.0], [0.2, 1.0, 2.5, 1.0],
                        [0.9, 0.4, 0.5, 2.0]], dtype=torch.float64)
    # the prior and its log as the weighting holds them (made in float32)
    held = _joint_per_image()
    prior, log_prior = held.prior, held.log_prior

    def gradient(probs):
        weighting = _joint_per_image(kl_weight=5.0)
        with torch.no_grad():
            weighting.decision_net.fc_out.weight.copy_(probs.log().T)
            weighting.decision_net.fc_out.bias.zero_()
        out = weighting({f'loss_{t}': raw[:, i]
                         for i, t in enumerate(TERMS)},
                        features=torch.eye(3, dtype=torch.float64))
        objective = sum(v for k, v in out.items() if 'loss' in k)
        grad, = torch.autograd.grad(objective,
                                    weighting.decision_net.fc_out.weight)
        return grad.abs().max().item()

    def gibbs(beta):
        return torch.softmax(log_prior - raw / beta, dim=-1)

    beta = 5.0 * (prior * raw.mean(0)).sum()
    assert gradient(gibbs(beta)) < 1e-9
    # the guard scaled by the mean image instead of the batch's sum is N
    # times weaker: its fixed point is not this one
    assert gradient(gibbs(beta / 3)) > 0.1


def test_entropy_bonus_value_and_gradient():
    """``loss_slf_entropy = -w_H * scale * (prior . sum_n l_n) * H(p)``;
    ``dH/dz_j = -p_j (log p_j + H)`` at the prior, where the decision
    network starts."""
    raw = torch.tensor([[0.5, 2.0, 1.5, 3.0], [0.2, 1.0, 2.5, 1.0],
                        [0.9, 0.4, 0.5, 2.0]], dtype=torch.float64)
    weighting = _joint_per_image(entropy_weight=0.1)
    out = weighting({f'loss_{t}': raw[:, i] for i, t in enumerate(TERMS)},
                    features=torch.eye(3, dtype=torch.float64))
    # p = softmax(bias), the prior up to the float32 it was made in
    probs = torch.softmax(weighting.decision_net.fc_out.bias.detach(), 0)
    entropy = -(probs * probs.log()).sum()
    magnitude = 7.5 * (weighting.prior * raw.sum(0)).sum()
    assert out['loss_slf_entropy'].item() == pytest.approx(
        -0.1 * magnitude.item() * entropy.item(), rel=1e-12)
    grad, = torch.autograd.grad(out['loss_slf_entropy'],
                                weighting.decision_net.fc_out.bias)
    # the bias moves every image's logits; the entropy is their mean
    expected = 0.1 * magnitude * probs * (probs.log() + entropy)
    torch.testing.assert_close(grad, expected)


def dwa_call(weighting, a, b=1.0):
    return weighting({'loss_a': torch.tensor(a), 'loss_b': torch.tensor(b)})


def test_dwa_weighting_hand_worked():
    """Windows of 2 calls, worked by hand: the window means, the uniform
    weights until two windows finish, and weights that hold within a
    window."""
    weighting = DWAWeighting(['a', 'b'], window=2, temperature=2.0)
    # Two windows must finish before the weights move: 4 calls, uniform,
    # though the terms differ.
    for a, b in ((1.0, 3.0), (2.0, 3.0), (1.0, 1.0), (1.0, 3.0)):
        out = dwa_call(weighting, a, b)
        assert out['slf_w_a'].item() == pytest.approx(1.0)
        assert out['slf_w_b'].item() == pytest.approx(1.0)
    # Window means: L(1) = [1.5, 3], L(2) = [1, 2]; r = [2/3, 2/3], equal
    # rates, so the fifth call's weights are still (1, 1).
    torch.testing.assert_close(weighting.prev_mean, torch.tensor([1.5, 3.0]))
    torch.testing.assert_close(weighting.last_mean, torch.tensor([1.0, 2.0]))
    fifth = dwa_call(weighting, 4.0, 1.0)
    assert fifth['slf_w_a'].item() == pytest.approx(1.0)
    # The weights hold within a window; window 3 is L(3) = [4, 1]:
    # r = L(3) / L(2) = [4, 0.5], w = 2 * softmax(r / 2).
    sixth = dwa_call(weighting, 4.0, 1.0)
    assert sixth['slf_w_a'].item() == pytest.approx(1.0)
    seventh = dwa_call(weighting, 1.0, 1.0)
    expected = 2 * torch.softmax(torch.tensor([4.0, 0.5]) / 2, 0)
    assert seventh['slf_w_a'].item() == pytest.approx(expected[0].item())
    assert seventh['loss_b'].item() == pytest.approx(expected[1].item())
    assert weighting.num_windows.item() == 3


def test_dwa_follows_the_rate_of_fall_over_windows():
    """The paper's rule on a term that halves every 70 calls beside a
    flat one. The means of two consecutive 70-call windows of a geometric
    sequence are in the ratio 1/2 exactly, so once two windows have
    finished w = 2 * softmax([0.5, 1] / 2) = (0.8756, 1.1244), the weights
    the paper's DWA gives; the per-iteration EMA ratio that this class used
    before kept them within 1% of (1, 1)."""
    weighting = DWAWeighting(['a', 'b'], window=70, temperature=2.0)
    assert DWAWeighting(['a', 'b']).window == 100
    weights = []
    for t in range(350):
        out = dwa_call(weighting, 2.0**(-t / 70))
        weights.append(out['slf_w_a'].item())
    expected = 2 * torch.sigmoid(torch.tensor(0.25 - 0.5)).item()
    assert expected == pytest.approx(0.8756, abs=1e-4)
    assert weights[:140] == pytest.approx([1.0] * 140)
    assert weights[140:] == pytest.approx([expected] * 210, rel=1e-5)


def test_dwa_weights_stay_still_in_eval_mode():
    weighting = DWAWeighting(['a', 'b'], window=1, temperature=2.0)
    for a in (1.0, 0.5):
        dwa_call(weighting, a)
    weighting.eval()
    state = [b.clone() for b in weighting.buffers()]
    for _ in range(3):
        out = dwa_call(weighting, 8.0)
    expected = 2 * torch.softmax(torch.tensor([0.5, 1.0]) / 2, 0)
    assert out['slf_w_a'].item() == pytest.approx(expected[0].item())
    for before, after in zip(state, weighting.buffers()):
        assert torch.equal(before, after)


def test_dwa_resumed_with_a_shorter_window_averages_the_calls_summed():
    """Three calls into a window of 4, resumed with a window of 2: the
    fourth call finishes the window, whose mean is over the 4 calls summed
    (1 for terms of 1), not the sum over the new window (2)."""
    long = DWAWeighting(['a', 'b'], window=4)
    for _ in range(3):
        dwa_call(long, 1.0)
    short = DWAWeighting(['a', 'b'], window=2)
    short.load_state_dict(long.state_dict())
    dwa_call(short, 1.0)
    torch.testing.assert_close(short.last_mean, torch.ones(2))
    assert int(short.num_windows) == 1 and int(short.window_calls) == 0


@pytest.mark.parametrize('window', [0, -3, 2.5, True, '63'])
def test_bad_dwa_window_fails_at_build(window):
    with pytest.raises(ValueError, match='window must be an int >= 1'):
        DWAWeighting(TERMS, window=window)


def test_dwa_refuses_the_state_of_the_earlier_ema_rule():
    """A checkpoint of the per-iteration EMA DWA is refused by name; mmengine
    would otherwise load it with strict=False, drop its averages and start
    the windows anew without a word."""
    weighting = DWAWeighting(['a', 'b'])
    old = dict(ema=torch.ones(2), prev_ema=torch.ones(2),
               num_updates=torch.tensor(5))
    with pytest.raises(ValueError, match='ema: this checkpoint holds the '
                       'state of the earlier per-iteration EMA'):
        weighting.load_state_dict(old, strict=False)
    fresh = DWAWeighting(['a', 'b'], window=1)
    for a in (1.0, 0.5):
        dwa_call(fresh, a)
    weighting.load_state_dict(fresh.state_dict())
    torch.testing.assert_close(weighting.last_mean, torch.tensor([0.5, 1.0]))


@pytest.mark.parametrize('temperature', [0.0, math.inf, '2'])
def test_bad_dwa_temperature_fails_at_build(temperature):
    # T = inf gave uniform weights forever; a string a TypeError.
    with pytest.raises(ValueError, match='temperature must be > 0'):
        DWAWeighting(TERMS, temperature=temperature)


def test_random_weighting_sums_to_scale_and_is_unbiased():
    torch.manual_seed(0)
    weighting = RandomWeighting(TERMS, scale=7.5)
    draws = []
    for _ in range(2000):
        out = weighting(raw_terms([1.0] * 4))
        draws.append(torch.stack([out[f'slf_w_{t}'] for t in TERMS]))
    draws = torch.stack(draws)
    torch.testing.assert_close(draws.sum(1), torch.full((2000, ), 7.5))
    # Symmetric in the terms: each mean is scale / n within 5 sigma.
    std = draws.std(0) / math.sqrt(2000)
    assert ((draws.mean(0) - 7.5 / 4).abs() < 5 * std).all()
    assert len({round(v, 4) for v in draws[:, 0].tolist()}) > 100
    # The distribution: log(w_i / w_j) = z_i - z_j ~ N(0, 2). A sample
    # variance of 2000 draws has standard deviation 2 * sqrt(2 / 1999) =
    # 0.063; a noise of 1.5 z would give 4.5.
    for i, j in ((0, 1), (2, 3)):
        log_ratio = (draws[:, i] / draws[:, j]).log()
        assert abs(log_ratio.var().item() - 2.0) < 5 * 0.063, (i, j)
        assert abs(log_ratio.mean().item()) < 5 * math.sqrt(2 / 2000)
    # In eval mode: the expectation, scale / n each, drawn from nothing.
    weighting.eval()
    out = weighting(raw_terms([1.0] * 4))
    assert [out[f'slf_w_{t}'].item() for t in TERMS] == [7.5 / 4] * 4


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_samples=0), 'num_samples'),
    (dict(num_samples=2.5), 'num_samples'),
    (dict(temperature=0.0), 'temperature'),
    (dict(temperature=-1.0), 'temperature'),
    (dict(prior=[1.0, 2.0]), 'prior'),
    (dict(prior=[1.0, -1.0, 1.0, 1.0]), 'prior'),
    (dict(prior=dict(coord=1, pred=1, obj=1, nobj=1)), 'prior'),
    (dict(kl_weight=-1.0), 'kl_weight'),
    (dict(scale=0.0), 'scale'),
    (dict(temperature_schedule=dict(type='step', final=0.5, num_iters=10)),
     'temperature_schedule.type'),
    (dict(temperature_schedule=dict(type='exp', final=0.0, num_iters=10)),
     'temperature_schedule.final'),
    (dict(temperature_schedule=dict(type='exp', final=0.5, num_iters=10),
          estimator='expected'), "applies to estimator='gumbel' only"),
    # tau = inf made every soft sample uniform: all weight on the first term.
    (dict(temperature=math.inf), 'temperature must be > 0, got inf'),
    # num_iters = nan made tau, and so every weighted term, NaN.
    (dict(temperature_schedule=dict(type='exp', final=0.5,
                                    num_iters=math.nan), estimator='gumbel'),
     'temperature_schedule.num_iters must be >= 1, got nan'),
    (dict(temperature_schedule=dict(type='exp', final=math.inf, num_iters=10),
          estimator='gumbel'), 'temperature_schedule.final must be > 0'),
    (dict(temperature_schedule=[0.5, 10], estimator='gumbel'),
     'temperature_schedule must be None or dict'),
    (dict(signal_min_scale=-1.0), 'signal_min_scale must be >= 0, got -1.0'),
    (dict(signal_min_scale='1e-3', decision_objective='progress'),
     "signal_min_scale must be >= 0, got '1e-3'"),
    (dict(prior_init='no'), "prior_init must be True or False, got 'no'"),
    (dict(scale=[7.5]), r'scale must be a number > 0 or None, got \[7.5\]'),
    # a bool is not a number, though True > 0 in Python
    (dict(scale=True), 'scale must be a number > 0 or None, got True'),
    (dict(signal_min_scale=True), 'signal_min_scale must be >= 0, got True'),
    (dict(temperature_schedule=dict(type='exp', final=True, num_iters=10),
          estimator='gumbel'), 'temperature_schedule.final must be > 0'),
    (dict(prior=5.0), 'prior must be one number per term'),
    # a typo in the paper's recipe names the choices, not the KL guard
    (dict(decision_objective='Joint', kl_weight=0.0),
     r"decision_objective must be one of \('joint', 'scale_free', "
     r"'progress', 'teacher'\), got 'Joint'"),
])
def test_bad_slf_settings_fail_at_build(kwargs, match):
    with pytest.raises((ValueError, KeyError), match=match):
        MODELS.build(dict(type='SLFWeighting', terms=TERMS, **kwargs))


@pytest.mark.parametrize('terms, match', [
    ([], 'at least one'),
    (['coord', 'coord'], 'unique'),
    (['loss_coord'], 'must not contain "loss"'),
    ('coord', 'list of term names'),
])
def test_bad_terms_fail_at_build(terms, match):
    with pytest.raises((ValueError, TypeError), match=match):
        FixedWeighting(terms)


@pytest.mark.parametrize('build, name', [
    (lambda terms: SLFWeighting(terms), 'slf_decision'),
    (lambda terms: SLFWeighting(terms, decision_objective='joint'),
     'slf_kl'),
    (lambda terms: SLFWeighting(terms), 'slf_entropy'),
    (lambda terms: UncertaintyWeighting(terms), 'uncertainty_reg'),
    (lambda terms: UncertaintyWeighting(terms, fixed_total=True),
     'uncertainty_objective'),
    (lambda terms: FixedWeighting(terms), 'slf_nonfinite'),
])
def test_terms_named_like_the_strategys_own_terms_fail_at_build(build, name):
    """loss_<name> is the strategy's own objective term: a term of that
    name would be overwritten by it in the outputs."""
    with pytest.raises(ValueError, match=f"term names \\['{name}'\\] are "
                       'taken by'):
        build(['coord', name])


@pytest.mark.parametrize('value, error, match', [
    ([torch.tensor(1.0, requires_grad=True)] * 2, TypeError,
     'loss_pred must be a tensor .* got list; a list of per-level losses '
     'must be summed first'),
    (True, TypeError, 'loss_pred must be a tensor'),
    (torch.zeros(0), ValueError, 'per-image vectors of 0 images'),
])
def test_raw_terms_that_are_not_tensors_or_empty_are_refused(
        value, error, match):
    """A list of per-level losses became a tensor without gradient (torch
    only warned); an empty batch made the running means NaN for good."""
    raw = raw_terms([1.0] * 4)
    if isinstance(value, torch.Tensor):
        raw = {key: torch.zeros(0) for key in raw}
    raw['loss_pred'] = value
    with pytest.raises(error, match=match):
        SLFWeighting(TERMS)(raw)


@pytest.mark.parametrize('shape', [(), (3, ), (2, 3), (0, 4), (2, 2, 4)])
def test_weigh_refuses_raw_terms_of_the_wrong_shape(shape):
    weighting = SLFWeighting(TERMS)
    with pytest.raises(ValueError, match=r'raw terms must be \[n\] or '
                       r'\[N, n\] with n = 4'):
        weighting.weigh(torch.ones(shape))
    assert int(weighting.signal.mean.count) == 0  # no state changed


def test_wrong_term_names_at_call_name_the_keys():
    weighting = FixedWeighting(TERMS, weights=LAMBDAS)
    raw = raw_terms([1.0] * 4)
    raw['loss_box'] = raw.pop('loss_coord')
    with pytest.raises(KeyError, match=r"missing \['loss_coord'\].*"
                       r"unknown \['loss_box'\]"):
        weighting(raw)


def test_nonfinite_term_raises_or_skips_with_name():
    raw = raw_terms([1.0, float('nan'), 1.0, 1.0])
    with pytest.raises(FloatingPointError, match=r"\['pred'\]"):
        SLFWeighting(TERMS)(raw)
    weighting = SLFWeighting(TERMS, nonfinite='skip')
    out = weighting(raw)
    objective = sum(v for k, v in out.items() if 'loss' in k)
    assert objective.item() == 0.0
    objective.backward()
    for param in weighting.parameters():
        assert param.grad is not None and (param.grad == 0).all()
    assert out['slf_skipped'].item() == 1.0


def test_prior_start_survives_owner_init_cfg():
    from mmengine.model import BaseModule

    class Owner(BaseModule):

        def __init__(self):
            super().__init__(init_cfg=dict(type='Normal', layer='Linear',
                                           std=0.5, bias=1.0))
            self.weighting = SLFWeighting(TERMS, prior=LAMBDAS,
                                          in_channels=3)
            self.loss = MODELS.build(dict(
                type='SLFLoss',
                candidates=[dict(type='L1Loss'), dict(type='MSELoss')],
                weighting=dict(type='SLFWeighting', prior=[3.0, 1.0],
                               scale=1.0)))

    owner = Owner()
    owner.init_weights()
    probs = torch.softmax(owner.weighting.decision_net(torch.randn(5, 3)), -1)
    prior = torch.tensor(LAMBDAS) / sum(LAMBDAS)
    torch.testing.assert_close(probs, prior.expand(5, 4))
    decision = owner.loss.weighting.decision_net
    probs = torch.softmax(decision(torch.randn(5, 2)), -1)
    torch.testing.assert_close(probs, torch.tensor([[0.75, 0.25]] * 5))


def test_uncertainty_fixed_total_keeps_the_rule_and_pins_the_total():
    """Hand-worked: weights 10/2/1/0.5 (total 13.5) rescale to 7.5; ``s``
    gets Kendall's gradient ``1 - w_i * sum_images l_i``, unscaled."""
    raw = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.5, 1.0, 1.0, 2.0]])
    kendall = UncertaintyWeighting(TERMS, init_weights=LAMBDAS)
    pinned = UncertaintyWeighting(TERMS, init_weights=LAMBDAS,
                                  fixed_total=True)
    start = -torch.tensor([10.0, 2.0, 1.0, 0.5]).log()
    grads = []
    for weighting in (kendall, pinned):
        with torch.no_grad():
            weighting.log_vars.copy_(start)
        terms = raw.clone().requires_grad_()
        out = weighting({f'loss_{t}': terms[:, i]
                         for i, t in enumerate(TERMS)})
        sum(v for k, v in out.items() if 'loss' in k).backward()
        grads.append((weighting.log_vars.grad, terms.grad))
    expected_s_grad = torch.tensor(
        [1 - 10 * 1.5, 1 - 2 * 3.0, 1 - 1 * 4.0, 1 - 0.5 * 6.0])
    torch.testing.assert_close(grads[0][0], expected_s_grad)
    torch.testing.assert_close(grads[1][0], expected_s_grad)
    # The detector's gradient per image: the weights, times 7.5 / 13.5 when
    # the total is pinned.
    kendall_w = torch.tensor([10.0, 2.0, 1.0, 0.5])
    torch.testing.assert_close(grads[0][1], kendall_w.expand(2, 4))
    torch.testing.assert_close(grads[1][1],
                               (kendall_w * 7.5 / 13.5).expand(2, 4))
    assert out['slf_w_coord'].item() == pytest.approx(10 * 7.5 / 13.5)
    assert out['loss_coord'].item() == pytest.approx(10 * 7.5 / 13.5 * 1.5)
    assert 'loss_uncertainty_reg' not in out


def test_uncertainty_fixed_total_must_be_a_bool():
    with pytest.raises(ValueError, match='fixed_total must be True or False'):
        UncertaintyWeighting(TERMS, init_weights=LAMBDAS, fixed_total=1)


@pytest.mark.parametrize('objective', ['scale_free', 'joint'])
@pytest.mark.parametrize('in_channels', [None, 3])
@pytest.mark.parametrize('network_dtype, raw_dtype', [
    (torch.float32, torch.float64), (torch.float64, torch.float32)])
def test_slf_reads_its_inputs_in_its_networks_dtype(
        objective, in_channels, network_dtype, raw_dtype):
    """float64 terms beside a float32 network, and a network moved with
    ``.double()`` beside float32 terms. At the prior start ``p = prior``,
    so the weights are the lambdas, the KL terms are 0 and ``J`` is
    ``mean_n sum_i prior_i l_ni / mean_m l_mi``."""
    weighting = SLFWeighting(
        TERMS, prior=LAMBDAS, in_channels=in_channels,
        decision_objective=objective).to(network_dtype)
    raw = torch.tensor([[0.4, 2.0, 0.7, 1.1], [0.2, 3.0, 0.5, 0.9]],
                       dtype=raw_dtype)
    features = torch.randn(2, 3, dtype=raw_dtype)
    out = weighting({f'loss_{t}': raw[:, i] for i, t in enumerate(TERMS)},
                    features=features)
    values = raw.double().numpy()
    for i, t in enumerate(TERMS):
        assert out[f'loss_{t}'].item() == pytest.approx(
            LAMBDAS[i] * values[:, i].sum(), rel=1e-6)
    prior = np.asarray(LAMBDAS) / sum(LAMBDAS)
    if objective == 'joint':
        assert out['loss_slf_kl'].item() == pytest.approx(0.0, abs=1e-4)
    else:
        expected = (prior * values / values.mean(0)).sum(1).mean()
        assert out['loss_slf_decision'].item() == pytest.approx(
            expected, rel=1e-5)
    sum(v for k, v in out.items() if 'loss' in k).backward()
    grad = weighting.decision_net.fc_out.weight.grad
    assert grad is not None and torch.isfinite(grad).all()


@pytest.mark.parametrize('objective', ['scale_free', 'progress', 'teacher'])
def test_float16_terms_that_are_exactly_zero_keep_the_signal_finite(
        objective):
    """A term that is exactly 0 (no positives in the batch) in float16:
    the signals' guards against 0 (1e-12) are 0 in float16, so 0 / 0 and
    log(0) made the objective NaN, then the decision network and every
    weight. The signal is now computed in float32: it is the float32
    terms' signal exactly."""
    batches = [[0.0, 2.0, 3.0, 0.5], [0.5, 2.0, 0.0, 0.25],
               [[0.0, 1.0, 1.0, 0.5], [0.25, 1.0, 2.0, 0.0]]]
    signals, objectives = {}, {}
    for dtype in (torch.float16, torch.float32):
        torch.manual_seed(0)
        weighting = SLFWeighting(TERMS, prior=LAMBDAS,
                                 decision_objective=objective)
        weighting.diagnostics_logged_by_hook = True
        optimizer = torch.optim.SGD(weighting.parameters(), lr=0.1)
        for values in batches:
            raw = torch.tensor(values, dtype=dtype)
            outputs = weighting({f'loss_{t}': raw[..., i]
                                 for i, t in enumerate(TERMS)})
            loss = sum(v.float().sum() for v in outputs.values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            diagnostics = weighting.last_diagnostics
            signals.setdefault(dtype, []).append(
                [diagnostics[f'slf_signal_{t}'] for t in TERMS])
            objectives.setdefault(dtype, []).append(
                float(outputs['loss_slf_decision'].detach()))
        for parameter in weighting.parameters():
            assert torch.isfinite(parameter).all()
    assert signals[torch.float16] == signals[torch.float32]
    # the decision network reads log1p of the float16 terms: close, not equal
    assert objectives[torch.float16] == pytest.approx(
        objectives[torch.float32], rel=1e-3, abs=1e-4)
    assert all(math.isfinite(value) for value in objectives[torch.float16])


def test_the_faithful_algorithm_1_line_of_the_docs_samples():
    """docs/slf.md's one-line Algorithm 1 builds the paper's weighting: the
    joint objective with K = 4 one-hot Gumbel draws (weights on the 1/4
    grid), no prior, no guard."""
    with open(osp.join(REPO_ROOT, 'docs', 'slf.md')) as f:
        text = f.read()
    block = text.split('The **faithful Algorithm 1** is one line:')[1]
    block = block.split('```python\n')[1].split('```')[0]
    namespace = {}
    exec(block.replace('terms=[...]', f'terms={TERMS!r}'), namespace)
    weighting = MODELS.build(namespace['weighting'])
    assert (weighting.decision_objective, weighting.estimator) == \
        ('joint', 'gumbel')
    assert weighting.num_samples == 4 and weighting.kl_weight == 0.0
    assert weighting.scale == 1.0 and not weighting.detach_features
    weights, _ = weighting.weigh(torch.ones(8, 4))
    grid = weights.detach() * 4
    assert torch.equal(grid, grid.round())


def _draw_rlw_weights(rank: int, port: int, out_dir: str) -> None:
    """One rank of a 2-process gloo run, seeded by its rank, as mmengine's
    ``diff_rank_seed=True`` does."""
    import os
    from datetime import timedelta

    import torch.distributed as torch_dist
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch_dist.init_process_group('gloo', rank=rank, world_size=2,
                                  timeout=timedelta(seconds=60))
    torch.manual_seed(rank)
    weighting = RandomWeighting(TERMS, scale=7.5)
    draws = []
    for _ in range(3):
        out = weighting(raw_terms([1.0] * 4))
        draws.append([out[f'slf_w_{t}'].item() for t in TERMS])
    torch.save(torch.tensor(draws), f'{out_dir}/rank{rank}.pt')
    torch_dist.destroy_process_group()


def test_random_weighting_draws_alike_on_every_rank(tmp_path):
    """Two ranks seeded differently weight their losses alike: rank 0's
    draw, a new one each step. Without the broadcast, rank 1 drew its own."""
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    mp.start_processes(_draw_rlw_weights, args=(port, str(tmp_path)),
                       nprocs=2, start_method='spawn')
    draws = [torch.load(tmp_path / f'rank{rank}.pt') for rank in range(2)]
    assert torch.equal(draws[0], draws[1])
    # rank 0's own draws: softmax of its generator's normals, step by step
    torch.manual_seed(0)
    expected = torch.stack(
        [7.5 * torch.softmax(torch.randn(4), 0) for _ in range(3)])
    torch.testing.assert_close(draws[0], expected)
    assert len({tuple(row.tolist()) for row in draws[0]}) == 3
