# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""SLFLoss: build checks, Eq. (11) value with the logged weights, gradients,
and every candidate loss of the package trained one step inside it."""
import math

import pytest
import torch
from mmdet.registry import MODELS

import mmdet_slf  # noqa: F401
from mmdet_slf.models.losses import SLFLoss

from mmdet_slf.models.losses.slf_loss import SELECTION

# The paper's selection (SLFLoss's default weighting) without the KL guard.
NO_GUARD = dict(SELECTION, kl_weight=0.0)


def softmax_batch(seed=0, num=16, classes=5):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(num, classes, generator=generator) * 2
    labels = torch.randint(0, classes, (num, ), generator=generator)
    return scores, labels


def weights_of(slf: SLFLoss):
    return [slf.last_diagnostics[f'slf_w_{name}'] for name in slf.names]


# ------------------------------------------------------------------ build
@pytest.mark.parametrize('candidates', [[], dict(type='L1Loss'), 'L1Loss'])
def test_empty_or_non_list_candidates_fail_at_build(candidates):
    with pytest.raises(ValueError, match='candidates must be a non-empty'):
        MODELS.build(dict(type='SLFLoss', candidates=candidates))


def test_names_must_match_candidates():
    with pytest.raises(ValueError, match='one entry per candidate'):
        SLFLoss([dict(type='L1Loss')], names=['a', 'b'])
    with pytest.raises(ValueError, match='must not contain "loss"'):
        SLFLoss([dict(type='L1Loss')], names=['l1loss'])
    default = SLFLoss([dict(type='L1Loss'), dict(type='L1Loss')])
    assert default.names == ['l10', 'l11']


def test_a_key_the_weighting_does_not_take_names_slf_loss():
    with pytest.raises(TypeError, match=r"^the weighting key of SLFLoss over "
                       r"\['a', 'b'\] \(e\.g\. model\.bbox_head\.loss_cls\."
                       r"weighting\): .*unexpected keyword argument "
                       r"'num_samples'.*_delete_=True"):
        SLFLoss([dict(type='L1Loss'), dict(type='MSELoss')], names=['a', 'b'],
                weighting=dict(type='FixedWeighting', num_samples=4))


def test_use_sigmoid_must_agree_with_candidates():
    sigmoid = [dict(type='FocalLoss', use_sigmoid=True),
               dict(type='BiTemperedLogisticLoss', use_sigmoid=True)]
    with pytest.raises(ValueError, match='set use_sigmoid=True on SLFLoss'):
        SLFLoss(sigmoid)
    assert SLFLoss(sigmoid, use_sigmoid=True).use_sigmoid is True
    with pytest.raises(ValueError, match='mix sigmoid and softmax'):
        SLFLoss([dict(type='CrossEntropyLoss', use_sigmoid=False),
                 dict(type='FocalLoss', use_sigmoid=True)],
                use_sigmoid=True)
    softmax = [dict(type='CrossEntropyLoss'),
               dict(type='BiTemperedLogisticLoss')]
    assert SLFLoss(softmax).use_sigmoid is False
    with pytest.raises(ValueError, match='use_sigmoid=False'):
        SLFLoss(softmax, use_sigmoid=True)
    # Box losses have no use_sigmoid: nothing to agree with.
    assert SLFLoss([dict(type='L1Loss'),
                    dict(type='IoUBalancedSmoothL1Loss')]).use_sigmoid is False


def test_default_weighting_is_the_papers_selection():
    # SLFWeighting's own defaults ('scale_free', expected weights) are for
    # terms with distinct roles; candidates are drawn as in Algorithm 1.
    slf = SLFLoss([dict(type='L1Loss'), dict(type='SmoothL1Loss')],
                  names=['l1', 'smoothl1'])
    weighting = slf.weighting
    chosen = (weighting.decision_objective, weighting.estimator,
              weighting.num_samples, weighting.scale)
    assert chosen == ('joint', 'gumbel', 4, 1.0)
    # A weighting dict replaces the selection whole.
    mixture = SLFLoss([dict(type='L1Loss'), dict(type='SmoothL1Loss')],
                      names=['l1', 'smoothl1'],
                      weighting=dict(type='SLFWeighting', scale=1.0))
    assert (mixture.weighting.decision_objective,
            mixture.weighting.estimator) == ('scale_free', 'expected')


def test_init_weights_restores_the_prior_start():
    """SLFLoss.init_weights re-runs its weighting's: after an owner's
    init_cfg has overwritten every Linear, the decision network is back at
    the prior start (last layer weight 0, bias log(prior)), so with prior
    [3, 1] it gives probabilities [0.75, 0.25] for any input."""
    slf = SLFLoss([dict(type='L1Loss'), dict(type='MSELoss')],
                  names=['l1', 'mse'], weighting=dict(SELECTION,
                                                      prior=[3.0, 1.0]))
    decision = slf.weighting.decision_net
    with torch.no_grad():  # what a Normal(std=0.5, bias=1) init_cfg does
        for param in decision.parameters():
            param.normal_(1.0, 0.5, generator=torch.Generator().manual_seed(0))
    slf.init_weights()
    assert torch.equal(decision.fc_out.weight,
                       torch.zeros_like(decision.fc_out.weight))
    torch.testing.assert_close(decision.fc_out.bias,
                               torch.tensor([0.75, 0.25]).log())
    features = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(torch.softmax(decision(features), -1),
                               torch.tensor([[0.75, 0.25]] * 5))


# ------------------------------------------------------------------ value
def test_value_is_weighted_sum_with_logged_weights():
    scores, labels = softmax_batch()
    slf = SLFLoss([dict(type='CrossEntropyLoss'),
                   dict(type='BiTemperedLogisticLoss', t1=0.7, t2=1.3)],
                  names=['ce', 'bt'], weighting=NO_GUARD)
    values = [candidate(scores, labels) for candidate in slf.candidates]
    seen = set()
    for _ in range(20):
        total = slf(scores, labels)
        weights = weights_of(slf)
        seen.add(tuple(weights))
        # K = 4 one-hot samples averaged: weights are quarters summing to 1.
        assert sum(weights) == pytest.approx(1.0)
        assert all(abs(4 * w - round(4 * w)) < 1e-6 for w in weights)
        expected = sum(w * v.item() for w, v in zip(weights, values))
        assert total.item() == pytest.approx(expected, rel=1e-6)
    assert len(seen) > 1  # the weights are sampled, not fixed


def test_value_includes_the_kl_guard():
    # prior_init=False: p differs from the (uniform) prior, so the guard
    # kl_weight * sum(prior * l) * KL(p || prior) is not zero.
    torch.manual_seed(0)
    scores, labels = softmax_batch(1)
    slf = SLFLoss([dict(type='CrossEntropyLoss'),
                   dict(type='BiTemperedLogisticLoss')],
                  names=['ce', 'bt'],
                  weighting=dict(SELECTION, kl_weight=5.0, prior_init=False))
    values = [candidate(scores, labels).item()
              for candidate in slf.candidates]
    total = slf(scores, labels).item()
    weights = weights_of(slf)
    probs = [slf.last_diagnostics[f'slf_p_{name}'] for name in slf.names]
    kl = sum(p * math.log(p / 0.5) for p in probs)
    guard = 5.0 * sum(0.5 * v for v in values) * kl
    assert kl > 1e-6
    assert total == pytest.approx(
        sum(w * v for w, v in zip(weights, values)) + guard, rel=1e-5)


@pytest.mark.parametrize('objective', ['scale_free', 'progress', 'teacher'])
def test_decision_objective_term_is_added_and_trains_only_the_network(
        objective):
    scores, labels = softmax_batch(6)
    scores.requires_grad_(True)
    slf = SLFLoss([dict(type='CrossEntropyLoss'),
                   dict(type='BiTemperedLogisticLoss')],
                  names=['ce', 'bt'],
                  # Away from the prior, so J has a gradient at step 0.
                  weighting=dict(type='SLFWeighting', scale=1.0,
                                 decision_objective=objective,
                                 estimator='stratified', prior_init=False))
    values = [candidate(scores, labels) for candidate in slf.candidates]
    total = slf(scores, labels)
    weights = weights_of(slf)
    weighted = sum(w * v for w, v in zip(weights, values))
    # The prediction's gradient is that of the weighted sum with the
    # weights held fixed: J (the rest of the total) never reaches it.
    expected = torch.autograd.grad(weighted, scores, retain_graph=True)[0]
    params = list(slf.weighting.decision_net.parameters())
    grads = torch.autograd.grad(total, [scores] + params)
    torch.testing.assert_close(grads[0], expected)
    # The decision network is trained, by J alone: the gradient of
    # sum_i p_i (s_i + beta log(p_i / prior_i)), beta = 5, prior uniform,
    # with the first call's signal: scale-free l / (its running mean, l
    # itself) = 1; teacher -l / (prior . l); progress's first gap is
    # rounding error raised to unit size (ProgressSignal's docstring), so
    # its logged value is taken.
    raw = torch.stack(values).detach()
    logged = torch.tensor([slf.last_diagnostics[f'slf_signal_{name}']
                           for name in slf.names])
    signal = dict(scale_free=torch.ones(2), progress=logged,
                  teacher=-raw / (0.5 * raw).sum())[objective]
    p = torch.softmax(slf.weighting.decision_net(torch.log1p(raw)[None]),
                      dim=-1)[0]
    hand = (p * (signal + 5.0 * (p.log() - math.log(0.5)))).sum()
    for got, want in zip(grads[1:], torch.autograd.grad(hand, params)):
        torch.testing.assert_close(got, want)
    assert sum(g.abs().sum().item() for g in grads[1:]) > 0
    assert all(g is None for g in torch.autograd.grad(
        weighted, params, allow_unused=True))


def test_reduction_none_weights_the_elementwise_losses():
    scores, labels = softmax_batch(2)
    slf = SLFLoss([dict(type='CrossEntropyLoss'),
                   dict(type='BiTemperedLogisticLoss')],
                  names=['ce', 'bt'], weighting=NO_GUARD)
    per_sample = [candidate(scores, labels, reduction_override='none')
                  for candidate in slf.candidates]
    total = slf(scores, labels, reduction_override='none')
    assert total.shape == (16, )
    weights = weights_of(slf)
    torch.testing.assert_close(
        total, weights[0] * per_sample[0] + weights[1] * per_sample[1])


def test_reduction_none_with_objective_terms_is_refused():
    """A scalar objective term (J, the KL guard) added to element-wise
    losses would count once per element in the caller's sum."""
    scores, labels = softmax_batch(2)
    for weighting in (dict(type='SLFWeighting', scale=1.0),
                      dict(SELECTION, kl_weight=5.0)):
        slf = SLFLoss([dict(type='CrossEntropyLoss'),
                       dict(type='BiTemperedLogisticLoss')],
                      names=['ce', 'bt'], weighting=weighting)
        assert slf(scores, labels).dim() == 0  # reduced: allowed
        with pytest.raises(ValueError, match=r'reduction "none" returns '
                           r'element-wise losses, to which its weighting\'s '
                           r"own objective terms \['loss_slf_"):
            slf(scores, labels, reduction_override='none')


def test_candidates_with_different_shapes_are_named():
    scores, labels = softmax_batch(3)
    slf = SLFLoss([dict(type='CrossEntropyLoss', use_sigmoid=True),
                   dict(type='FocalLoss', use_sigmoid=True)],
                  use_sigmoid=True, weighting=NO_GUARD)
    # Sigmoid CE 'none' is [N, C]; FocalLoss 'none' is [N, C] too: fine.
    assert slf(scores, labels, reduction_override='none').shape == (16, 5)
    mixed = SLFLoss([dict(type='L1Loss'), dict(type='GIoULoss')],
                    names=['l1', 'giou'])
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 4.0, 5.0]])
    with pytest.raises(ValueError, match=r"'l1': \(2, 4\), 'giou': \(2,\)"):
        mixed(boxes, boxes + 0.5, reduction_override='none')


def test_gradients_reach_the_decision_network():
    scores, labels = softmax_batch(4)
    scores.requires_grad_(True)
    slf = SLFLoss([dict(type='CrossEntropyLoss'),
                   dict(type='BiTemperedLogisticLoss', t1=0.5, t2=2.0)],
                  weighting=NO_GUARD)
    slf(scores, labels).backward()
    grads = [p.grad for p in slf.weighting.decision_net.parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0
    assert scores.grad.abs().sum() > 0


def test_joint_gradient_on_the_decision_network_is_eq_11():
    """With the expected weights (p_hat = p) and no guard, the decision
    network's gradient is that of Eq. (11), sum_i p_i l_i (scale 1), with
    the candidates' values as constants and p = softmax(h(log(1 + l)))."""
    scores, labels = softmax_batch(4)
    slf = SLFLoss([dict(type='CrossEntropyLoss'),
                   dict(type='BiTemperedLogisticLoss', t1=0.5, t2=2.0)],
                  weighting=dict(NO_GUARD, estimator='expected',
                                 prior_init=False))
    params = list(slf.weighting.decision_net.parameters())
    got = torch.autograd.grad(slf(scores, labels), params)
    raw = torch.stack([candidate(scores, labels)
                       for candidate in slf.candidates]).detach()
    p = torch.softmax(slf.weighting.decision_net(torch.log1p(raw)[None]),
                      dim=-1)[0]
    for got_one, want in zip(got, torch.autograd.grad((p * raw).sum(),
                                                      params)):
        torch.testing.assert_close(got_one, want)


# ------------------------------------------------- one step per candidate
def _cls_problem(sigmoid):
    generator = torch.Generator().manual_seed(5)
    inputs = torch.randn(32, 6, generator=generator)
    labels = torch.randint(0, 5, (32, ), generator=generator)  # 4: bg
    iou = torch.rand(32, generator=generator)
    return inputs, labels, iou, nn_out(4 if sigmoid else 5)


def nn_out(channels):
    torch.manual_seed(0)
    return torch.nn.Linear(6, channels)


CASES = {
    'bitempered': (dict(type='BiTemperedLogisticLoss', t1=0.8, t2=1.2),
                   dict(type='CrossEntropyLoss'), False),
    'bitempered_sigmoid': (dict(type='BiTemperedLogisticLoss',
                                use_sigmoid=True),
                           dict(type='FocalLoss', use_sigmoid=True), True),
    # Every candidate gets iou=...: eta = 0 is plain CE that accepts it.
    'ioubalanced_cls': (dict(type='IoUBalancedClsLoss', eta=1.5),
                        dict(type='IoUBalancedClsLoss', eta=0.0), False),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_classification_candidate_trains_one_step(case):
    candidate, other, sigmoid = CASES[case]
    inputs, labels, iou, model = _cls_problem(sigmoid)
    slf = SLFLoss([other, candidate], names=['other', 'candidate'],
                  use_sigmoid=sigmoid or None, weighting=NO_GUARD)
    extra = dict(iou=iou) if 'IoU' in candidate['type'] else {}
    _one_step(model, slf, lambda: (model(inputs), labels), extra)


def test_box_candidate_trains_one_step():
    generator = torch.Generator().manual_seed(6)
    inputs = torch.randn(20, 6, generator=generator)
    targets = torch.randn(20, 4, generator=generator) * 0.2
    model = nn_out(4)
    coder = dict(type='DeltaXYWHBBoxCoder', target_stds=[0.1, 0.1, 0.2, 0.2])
    slf = SLFLoss([dict(type='L1Loss'),
                   dict(type='IoUBalancedSmoothL1Loss', bbox_coder=coder)],
                  names=['l1', 'ioubalanced'], weighting=NO_GUARD)
    _one_step(model, slf, lambda: (model(inputs), targets), {})


def _one_step(model, slf, forward, extra):
    """One SGD step on model + decision network. The model's gradient must
    be sum_i w_i * grad(l_i) with the logged weights (Eq. 11), and both
    networks must move."""
    params = list(model.parameters()) + list(slf.parameters())
    optimizer = torch.optim.SGD(params, lr=0.1)
    before = [p.detach().clone() for p in params]
    pred, target = forward()
    total = slf(pred, target, **extra)
    assert torch.isfinite(total)
    weights = weights_of(slf)
    expected = [torch.zeros_like(p) for p in model.parameters()]
    for weight, candidate in zip(weights, slf.candidates):
        grads = torch.autograd.grad(
            candidate(pred, target, **extra), list(model.parameters()),
            retain_graph=True)
        for acc, grad in zip(expected, grads):
            acc += weight * grad
    optimizer.zero_grad()
    total.backward()
    for param, grad in zip(model.parameters(), expected):
        torch.testing.assert_close(param.grad, grad, rtol=1e-5, atol=1e-7)
    optimizer.step()
    moved = [not torch.equal(b, p.detach()) for b, p in zip(before, params)]
    assert all(moved[:2])  # the model's weight and bias
    assert any(moved[2:])  # the decision network
    assert all(torch.isfinite(p).all() for p in params)
    # The loss reads the updated model without error, still finite.
    assert torch.isfinite(slf(*forward(), **extra))


# ------------------------------------------- arguments, by hand (Eq. 11)
# L1 and MSE of pred against zeros, with fixed weights 2 and 0.5:
#   |pred|  = [[1, 2], [3, 0.5]]     pred^2 = [[1, 4], [9, 0.25]]
#   weight  = [[1, 0], [2, 1]]
#   weighted sums: L1 1 + 6 + 0.5 = 7.5, MSE 1 + 18 + 0.25 = 19.25
#   unweighted sums: L1 6.5, MSE 14.25 (means 1.625 and 3.5625)
HAND_PRED = [[1.0, -2.0], [3.0, 0.5]]
HAND_WEIGHT = [[1.0, 0.0], [2.0, 1.0]]


def fixed_l1_mse(loss_weight=1.0):
    return SLFLoss([dict(type='L1Loss'), dict(type='MSELoss')],
                   names=['l1', 'mse'], loss_weight=loss_weight,
                   weighting=dict(type='FixedWeighting', weights=[2.0, 0.5]))


def test_weight_and_avg_factor_reach_the_candidates():
    pred, target = torch.tensor(HAND_PRED), torch.zeros(2, 2)
    weight = torch.tensor(HAND_WEIGHT)
    slf = fixed_l1_mse()
    # 2 * 7.5 + 0.5 * 19.25 (without the weight: 2 * 6.5 + 0.5 * 14.25)
    total = slf(pred, target, weight=weight, reduction_override='sum')
    assert total.item() == pytest.approx(24.625)
    # avg_factor 5: 2 * 7.5 / 5 + 0.5 * 19.25 / 5 (not the 4 elements)
    total = slf(pred, target, weight=weight, avg_factor=5.0)
    assert total.item() == pytest.approx(4.925)


def test_loss_weight_multiplies_the_result():
    pred, target = torch.tensor(HAND_PRED), torch.zeros(2, 2)
    weight = torch.tensor(HAND_WEIGHT)
    total = fixed_l1_mse(loss_weight=3.0)(
        pred, target, weight=weight, avg_factor=5.0)
    assert total.item() == pytest.approx(3 * 4.925)


def test_reduction_none_decides_on_the_means():
    """The weighting reads one value per candidate: the mean of its
    element-wise loss, as the 'mean' reduction would give."""
    pred, target = torch.tensor(HAND_PRED), torch.zeros(2, 2)
    slf = fixed_l1_mse()
    total = slf(pred, target, reduction_override='none')
    torch.testing.assert_close(
        total, torch.tensor([[2.0 * 1 + 0.5 * 1, 2.0 * 2 + 0.5 * 4],
                             [2.0 * 3 + 0.5 * 9, 2.0 * 0.5 + 0.5 * 0.25]]))
    diagnostics = slf.last_diagnostics
    assert diagnostics['slf_raw_l1'] == pytest.approx(6.5 / 4)
    assert diagnostics['slf_raw_mse'] == pytest.approx(14.25 / 4)
