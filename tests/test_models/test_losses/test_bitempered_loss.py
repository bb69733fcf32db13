# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Bi-tempered logistic loss against independent computations."""
import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

import mmdet_slf  # noqa: F401
from mmdet_slf.models.losses import (BiTemperedLogisticLoss,
                                     bi_tempered_logistic_loss,
                                     tempered_softmax)
from mmdet_slf.models.losses.tempered import (exp_t, log_t, smooth_labels,
                                              tempered_log_softmax)

# ---------------------------------------------------------------- reference
# Written from the paper's definitions only, one sample at a time, in Python
# floats: the normaliser solves sum_i exp_t2(a_i - lambda) = 1 by a long
# bisection (the module uses a 20-step fixed point for t2 > 1).


def ref_exp_t(u, t):
    if t == 1.0:
        return math.exp(u)
    base = 1.0 + (1.0 - t) * u
    if base <= 0.0:
        return 0.0  # t < 1: outside the support
    return base**(1.0 / (1.0 - t))


def ref_log_t(u, t):
    if t == 1.0:
        return math.log(u)
    return (u**(1.0 - t) - 1.0) / (1.0 - t)


def ref_tempered_softmax(logits, t):
    top = max(logits)
    # sum >= 1 at lambda = max; <= 1 once every class is at most 1 / C.
    lower, upper = top, top - ref_log_t(1.0 / len(logits), t)
    for _ in range(200):
        middle = 0.5 * (lower + upper)
        if sum(ref_exp_t(a - middle, t) for a in logits) > 1.0:
            lower = middle
        else:
            upper = middle
    lam = 0.5 * (lower + upper)
    return [ref_exp_t(a - lam, t) for a in logits]


def ref_loss(logits, target, t1, t2):
    """sum_i y (log_t1 y - log_t1 p) - (y^(2-t1) - p^(2-t1)) / (2 - t1)."""
    probs = ref_tempered_softmax(logits, t2)
    total = 0.0
    for y, p in zip(target, probs):
        if y > 0:
            total += y * (ref_log_t(y, t1) - ref_log_t(p, t1))
        total -= (y**(2.0 - t1) - p**(2.0 - t1)) / (2.0 - t1)
    return total


def ref_target(label, num_classes, smoothing):
    if smoothing == 0:
        return [1.0 if c == label else 0.0 for c in range(num_classes)]
    off = smoothing / (num_classes - 1)
    return [1.0 - smoothing if c == label else off for c in range(num_classes)]


# -------------------------------------------------------------------- tests
def test_t1_t2_one_is_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(40, 21) * 4
    labels = torch.randint(0, 21, (40, ))
    weight = torch.rand(40)
    loss = BiTemperedLogisticLoss(t1=1.0, t2=1.0)
    expected = F.cross_entropy(logits, labels)
    assert abs(loss(logits, labels).item() - expected.item()) < 1e-6
    expected = (F.cross_entropy(logits, labels, reduction='none') *
                weight).sum() / 7.0
    got = loss(logits, labels, weight=weight, avg_factor=7.0)
    assert abs(got.item() - expected.item()) < 1e-6
    # Just off the closed form, the general path agrees to first order.
    near = BiTemperedLogisticLoss(t1=1.0 - 1e-6, t2=1.0 + 1e-6)
    near_value = near(logits.double(), labels).item()
    assert near_value == pytest.approx(
        F.cross_entropy(logits.double(), labels).item(), rel=1e-4)


def test_sigmoid_t1_t2_one_is_binary_cross_entropy():
    torch.manual_seed(1)
    logits = torch.randn(30, 5) * 3
    labels = torch.randint(0, 6, (30, ))  # 5 == background
    one_hot = F.one_hot(labels, 6)[:, :5].float()
    loss = BiTemperedLogisticLoss(t1=1.0, t2=1.0, use_sigmoid=True)
    got = loss(logits, labels, reduction_override='none')
    expected = F.binary_cross_entropy_with_logits(
        logits, one_hot, reduction='none')
    assert (got - expected).abs().max().item() < 1e-6
    mmdet_ce = MODELS.build(dict(type='CrossEntropyLoss', use_sigmoid=True))
    assert abs(loss(logits, labels).item() -
               mmdet_ce(logits, labels).item()) < 1e-6


@pytest.mark.parametrize('t1,t2,smoothing', [(0.8, 1.2, 0.0),
                                             (0.8, 1.2, 0.1),
                                             (0.5, 0.8, 0.0),
                                             (0.2, 4.0, 0.05),
                                             (1.0, 1.5, 0.0),
                                             (1.0, 1.0, 0.1)])
def test_matches_float64_reference(t1, t2, smoothing):
    torch.manual_seed(2)
    logits = torch.randn(12, 6, dtype=torch.float64) * 3
    labels = torch.randint(0, 6, (12, ))
    loss = BiTemperedLogisticLoss(t1=t1, t2=t2, label_smoothing=smoothing)
    got = loss(logits, labels, reduction_override='none')
    expected = [
        ref_loss(row.tolist(), ref_target(int(label), 6, smoothing), t1, t2)
        for row, label in zip(logits, labels)
    ]
    torch.testing.assert_close(
        got, torch.tensor(expected, dtype=torch.float64), rtol=1e-7,
        atol=1e-9)
    # float32 agrees to float32 precision.
    got32 = loss(logits.float(), labels, reduction_override='none')
    torch.testing.assert_close(
        got32, torch.tensor(expected, dtype=torch.float32), rtol=1e-4,
        atol=1e-5)


def test_sigmoid_avg_non_ignore_and_sample_weight_match_mmdet():
    """Sigmoid mode at t1 = t2 = 1 is mmdet's sigmoid CrossEntropyLoss:
    avg_non_ignore divides by the non-ignored samples times C, and a
    sample weight [N] applies to every class of its row."""
    torch.manual_seed(10)
    logits = torch.randn(30, 5) * 3
    labels = torch.randint(0, 6, (30, ))  # 5 == background
    labels[[3, 7, 11, 20]] = -100  # ignored
    weight = torch.rand(30)
    loss = BiTemperedLogisticLoss(
        t1=1.0, t2=1.0, use_sigmoid=True, avg_non_ignore=True)
    mmdet_ce = MODELS.build(
        dict(type='CrossEntropyLoss', use_sigmoid=True, avg_non_ignore=True))
    assert loss(logits, labels).item() == pytest.approx(
        mmdet_ce(logits, labels).item(), rel=1e-6)
    # By hand: BCE of the 26 kept rows, averaged over 26 * 5 elements.
    keep = labels >= 0
    one_hot = F.one_hot(labels[keep], 6)[:, :5].float()
    by_hand = F.binary_cross_entropy_with_logits(
        logits[keep], one_hot, reduction='sum') / (26 * 5)
    assert loss(logits, labels).item() == pytest.approx(
        by_hand.item(), rel=1e-6)
    assert loss(logits, labels, weight=weight).item() == pytest.approx(
        mmdet_ce(logits, labels, weight=weight).item(), rel=1e-6)
    by_hand = (F.binary_cross_entropy_with_logits(
        logits[keep], one_hot, reduction='none') *
               weight[keep, None]).sum() / (26 * 5)
    assert loss(logits, labels, weight=weight).item() == pytest.approx(
        by_hand.item(), rel=1e-6)


def test_half_precision_input_is_computed_in_float32():
    torch.manual_seed(11)
    logits = (torch.randn(64, 21) * 4).half()
    labels = torch.randint(0, 21, (64, ))
    for kwargs in (dict(t1=0.8, t2=1.2), dict(t1=1.0, t2=1.0),
                   dict(t1=0.5, t2=0.8, label_smoothing=0.1)):
        loss = BiTemperedLogisticLoss(**kwargs)
        got = loss(logits, labels, reduction_override='none')
        expected = loss(logits.float(), labels, reduction_override='none')
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    target = F.one_hot(labels, 21).float()
    got = bi_tempered_logistic_loss(logits, target, 0.8, 1.2)
    assert got.dtype == torch.float32
    torch.testing.assert_close(
        got, bi_tempered_logistic_loss(logits.float(), target, 0.8, 1.2),
        rtol=1e-6, atol=1e-6)


def test_sigmoid_matches_reference_per_class():
    torch.manual_seed(3)
    logits = torch.randn(8, 4, dtype=torch.float64) * 2
    labels = torch.tensor([0, 1, 2, 3, 4, 4, 2, 0])  # 4 == background
    loss = BiTemperedLogisticLoss(
        t1=0.8, t2=1.2, use_sigmoid=True, label_smoothing=0.1)
    got = loss(logits, labels, reduction_override='none')
    for i in range(8):
        for c in range(4):
            positive = 1.0 if labels[i] == c else 0.0
            target = [positive * 0.8 + 0.1, (1 - positive) * 0.8 + 0.1]
            expected = ref_loss([logits[i, c].item(), 0.0], target, 0.8, 1.2)
            assert got[i, c].item() == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize('t2', [0.5, 0.8, 1.2, 1.5, 4.0])
def test_tempered_softmax_sums_to_one(t2):
    torch.manual_seed(4)
    logits = torch.randn(500, 21, dtype=torch.float64) * 3
    probs = tempered_softmax(logits, t2)
    assert (probs >= 0).all()
    assert (probs.sum(-1) - 1).abs().max().item() < 1e-6
    # float32 with logits of std 90: rounding, not the iteration, limits it.
    probs32 = tempered_softmax(logits.float() * 30, t2)
    assert (probs32.sum(-1) - 1).abs().max().item() < 5e-5
    # Monotone in the logits: the tempered softmax keeps the argmax.
    assert torch.equal(probs.argmax(-1), logits.argmax(-1))
    # It matches the bisection reference, not just a sum of 1.
    torch.testing.assert_close(
        probs[0], torch.tensor(ref_tempered_softmax(logits[0].tolist(), t2),
                               dtype=torch.float64), rtol=1e-7, atol=1e-10)


def test_fixed_point_iterations_by_hand():
    """num_iters counts the reference's iterations, each followed by the
    final partition. At t = 2, exp_t(x) = 1 / (1 - x) and log_t(x) = 1 -
    1 / x, so lambda = Z - 1 for the last partition Z. Logits (0, -1): Z_0 =
    1 + 1/2 = 3/2; an iteration scales the logits by 1 / Z, giving Z_k = 1 +
    1 / (1 + 1 / Z_(k-1)): 8/5, 21/13, ... (Fibonacci ratios). p = 1 / (1 +
    lambda - a), so 1 iteration gives (5/8, 5/13), 2 give (13/21, 13/34),
    tending to (1/phi, 1/phi^2), which sums to 1. Without the final
    partition, 1 iteration gave 2 - 1 = 1 partition: (2/3, 2/5)."""
    logits = torch.tensor([[0.0, -1.0]], dtype=torch.float64)
    for num_iters, expected in ((1, [5 / 8, 5 / 13]), (2, [13 / 21, 13 / 34]),
                                (3, [34 / 55, 34 / 89])):
        torch.testing.assert_close(
            tempered_softmax(logits, 2.0, num_iters=num_iters),
            torch.tensor([expected], dtype=torch.float64),
            rtol=1e-12, atol=0)
    phi = (1 + math.sqrt(5)) / 2
    torch.testing.assert_close(
        tempered_softmax(logits, 2.0, num_iters=40),
        torch.tensor([[1 / phi, 1 / phi**2]], dtype=torch.float64),
        rtol=1e-12, atol=0)


def test_tempered_log_softmax_refuses_t_below_one():
    """For t < 1, p is exactly 0 outside the support (here -10 behind at t
    = 0.5, beyond 1 / (1 - t) = 2), where log p is -inf: refused by name."""
    logits = torch.tensor([[0.0, -10.0, 1.0]])
    for t in (0.5, 0.999):
        with pytest.raises(ValueError, match=r'tempered_log_softmax needs t '
                           r'>= 1, got ' + str(t)):
            tempered_log_softmax(logits, t)
    # t = 1 is log_softmax; t > 1 is log of tempered_softmax
    torch.testing.assert_close(tempered_log_softmax(logits, 1.0),
                               F.log_softmax(logits, dim=-1))
    torch.testing.assert_close(tempered_log_softmax(logits, 1.5),
                               tempered_softmax(logits, 1.5).log())


@pytest.mark.parametrize('t2', [1 + 1e-5, 1 + 1e-6])
def test_float32_precise_as_t2_tends_to_one(t2):
    """The power forms of exp_t / log_t cancel in float32 near t = 1 (the
    probabilities summed to 1 +- 6e-3 at t2 = 1 + 1e-5)."""
    torch.manual_seed(12)
    logits = torch.randn(200, 21, dtype=torch.float64) * 3
    probs32 = tempered_softmax(logits.float(), t2)
    assert (probs32.sum(-1) - 1).abs().max().item() < 2e-6
    torch.testing.assert_close(
        probs32.double(), tempered_softmax(logits, t2), rtol=0, atol=1e-5)
    for row in range(3):
        expected = ref_tempered_softmax(logits[row].tolist(), t2)
        torch.testing.assert_close(
            probs32[row].double(), torch.tensor(expected, dtype=torch.float64),
            rtol=0, atol=1e-5)
    x = torch.tensor([0.01, 0.5, 2.0, 30.0], dtype=torch.float64)
    torch.testing.assert_close(
        log_t(x.float(), t2).double(),
        torch.tensor([ref_log_t(v, t2) for v in x.tolist()],
                     dtype=torch.float64), rtol=1e-6, atol=0)
    torch.testing.assert_close(
        exp_t(-x.float(), t2).double(),
        torch.tensor([ref_exp_t(-v, t2) for v in x.tolist()],
                     dtype=torch.float64), rtol=1e-6, atol=0)


def test_exp_t_outside_its_support():
    # 1 + (1 - t) x <= 0: 0 for t < 1 (compact support), 0^(negative) =
    # inf for t > 1, with a finite (zero) gradient there.
    x = torch.tensor([-3.0, -2.0, -1.0], requires_grad=True)
    values = exp_t(x, 0.5)
    torch.testing.assert_close(values.detach(), torch.tensor([0.0, 0.0, 0.25]))
    values.sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 0.0, 0.5]))
    assert exp_t(torch.tensor([2.0, 3.0]), 1.5).isinf().all()
    assert exp_t(torch.tensor([1.0]), 1.5).item() == pytest.approx(4.0)
    assert log_t(torch.tensor([0.0]), 0.5).item() == -2.0
    assert log_t(torch.tensor([0.0]), 1.5).item() == -math.inf


@pytest.mark.parametrize('t1,t2', [(0.8, 1.2), (0.2, 4.0), (0.5, 0.6),
                                   (1.0, 0.5), (1.0, 1.0)])
@pytest.mark.parametrize('use_sigmoid', [False, True])
def test_gradients_finite_for_large_logits(t1, t2, use_sigmoid):
    torch.manual_seed(5)
    logits = ((torch.rand(64, 21) * 2 - 1) * 100).requires_grad_()
    logits.data[:4] = torch.tensor([100.0, -100.0] * 10 + [100.0])
    labels = torch.randint(0, 22 if use_sigmoid else 21, (64, ))
    loss = BiTemperedLogisticLoss(
        t1=t1, t2=t2, use_sigmoid=use_sigmoid, label_smoothing=0.1)
    value = loss(logits, labels)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize('t1,t2,gap', [(1.0, 1.000001, 100.0),
                                       (1.0, 1.01, 60.0),
                                       (0.99, 1.0, 100.0),
                                       (0.9, 1.0, 50.0),
                                       (0.8, 1.2, 50.0)])
def test_float32_true_class_far_behind(t1, t2, gap):
    """Two classes, the true one ``gap`` behind, in float32: the loss and
    its gradient are the float64 reference's. In the first four cases its
    ``p`` (about 1e-44 to 1e-22) underflows float32; a clamp of ``p`` held
    the loss at 43.67 with a gradient of 1e-22 or less, where the true one
    is up to -1. The default temperatures (0.8, 1.2; p about 6e-6) are a
    control that the clamp got right too."""
    logits = torch.tensor([[-gap, 0.0]], requires_grad=True)
    value = bi_tempered_logistic_loss(logits, torch.tensor([[1.0, 0.0]]),
                                      t1, t2)
    value.backward()
    step = 1e-4
    expected = ref_loss([-gap, 0.0], [1.0, 0.0], t1, t2)
    slope = (ref_loss([-gap + step, 0.0], [1.0, 0.0], t1, t2) -
             ref_loss([-gap - step, 0.0], [1.0, 0.0], t1, t2)) / (2 * step)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    assert logits.grad[0, 0].item() == pytest.approx(slope, rel=1e-3)
    assert logits.grad.sum().item() == pytest.approx(0.0, abs=1e-5)
    if (t1, t2) == (0.99, 1.0):
        # By hand, with p_true = e^-100 and p_other = 1 to float64 and
        # log_t1(e^-100) = (e^-1 - 1) / 0.01: the loss is -log_t1(p_true)
        # - (1 - p_true^1.01) / 1.01 + p_other^1.01 / 1.01 = 63.2121.
        assert value.item() == pytest.approx((1 - math.exp(-1)) / 0.01,
                                             rel=1e-5)


@pytest.mark.parametrize('t1,t2', [(1.0, 1.2), (1.0, 1.0), (0.8, 1.2),
                                   (0.8, 0.5), (1.0, 0.5)])
def test_a_masked_class_changes_nothing(t1, t2):
    """A logit of -inf (a masked class) has p = 0 and label 0: the loss and
    gradient are those without the class (0 * -inf was NaN for t1 = 1)."""
    masked = torch.tensor([[2.0, 0.5, -math.inf]], requires_grad=True)
    plain = torch.tensor([[2.0, 0.5]], requires_grad=True)
    with_mask = bi_tempered_logistic_loss(
        masked, torch.tensor([[1.0, 0.0, 0.0]]), t1, t2)
    without = bi_tempered_logistic_loss(plain, torch.tensor([[1.0, 0.0]]),
                                        t1, t2)
    (with_mask + without).backward()
    assert with_mask.item() == pytest.approx(without.item(), rel=1e-6)
    torch.testing.assert_close(masked.grad[:, :2], plain.grad)
    assert masked.grad[0, 2].item() == 0.0


@pytest.mark.parametrize('t1', [0.99, 0.95, 0.8])
def test_true_class_outside_the_support(t1):
    """t2 = 0.5, logits (-10, 0): the true class is outside the support of
    exp_t2, p = (0, 1). By hand: -log_t1(0) = 1 / (1 - t1), and the power
    terms cancel (-(1 - 0) + 1^(2 - t1)) / (2 - t1) = 0), so the loss is
    1 / (1 - t1): 100 at t1 = 0.99, where a clamp of p gave 35.4."""
    logits = torch.tensor([[-10.0, 0.0]], requires_grad=True)
    value = bi_tempered_logistic_loss(logits, torch.tensor([[1.0, 0.0]]),
                                      t1, 0.5)
    value.backward()
    assert value.item() == pytest.approx(1 / (1 - t1), rel=1e-5)
    assert value.item() == pytest.approx(
        ref_loss([-10.0, 0.0], [1.0, 0.0], t1, 0.5), rel=1e-5)
    # p is constant there: no gradient, as the reference's slope
    assert logits.grad.abs().max().item() == 0.0


@pytest.mark.parametrize('dtype,exponent', [(torch.float32, 126),
                                            (torch.float64, 1022)])
def test_t1_one_outside_the_support_is_bounded_by_the_floor(dtype, exponent):
    """t1 = 1, t2 = 0.5, logits (10, 0, -10), true class the last: 20
    behind, beyond the support's 1 / (1 - t2) = 2, so p = (1, 0, 0) and
    the true loss -log 0 is infinite. p is floored at sqrt(tiny), which keeps
    p^2 (the largest power p^(2 - t1), at t1 = 0) at or above tiny, a normal
    float. tiny = 2^-126 in float32 and 2^-1022 in float64, so the loss is
    -log sqrt(tiny) = 63 ln 2 = 43.668 and 511 ln 2 = 354.198 (the power
    terms, (0 + 0 + 1) - (1 + 2 sqrt(tiny)), add 1e-19 at most); a floor at
    tiny doubled it (87.34 in float32)."""
    assert torch.finfo(dtype).tiny == 2.0**-exponent
    logits = torch.tensor([[10.0, 0.0, -10.0]], dtype=dtype)
    value = bi_tempered_logistic_loss(
        logits, torch.tensor([[0.0, 0.0, 1.0]], dtype=dtype), 1.0, 0.5)
    assert value.dtype == dtype
    assert value.item() == pytest.approx(exponent / 2 * math.log(2),
                                         rel=1e-6)


def test_gradient_is_the_exact_derivative():
    torch.manual_seed(6)
    labels = torch.randint(0, 4, (3, ))
    for t1, t2 in ((0.8, 1.2), (0.5, 0.8), (0.3, 2.0)):
        logits = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
        loss = BiTemperedLogisticLoss(
            t1=t1, t2=t2, num_iters=60, num_bisect_iters=60,
            label_smoothing=0.1)
        assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits, ))


def test_bounded_loss_for_t1_below_one():
    # t1 < 1 bounds the loss: with p -> 0 on the true class and 1 on the
    # other, the true class gives 1 / (1 - t1) - 1 / (2 - t1) and the other
    # 1 / (2 - t1), so the bound is 1 / (1 - t1); cross-entropy is unbounded.
    logits = torch.tensor([[-50.0, 50.0], [-500.0, 500.0]])
    labels = torch.tensor([0, 0])
    got = BiTemperedLogisticLoss(t1=0.5, t2=1.0)(
        logits, labels, reduction_override='none')
    bound = 1 / (1 - 0.5)
    assert got.max().item() <= bound + 1e-6
    assert got[1].item() == pytest.approx(bound, abs=1e-4)
    ce = F.cross_entropy(logits, labels, reduction='none')
    assert ce[1].item() > 900


def test_reduction_weight_ignore_and_empty():
    torch.manual_seed(7)
    logits = torch.randn(6, 4)
    labels = torch.tensor([0, 1, -100, 3, 2, -100])
    loss = BiTemperedLogisticLoss(t1=0.7, t2=1.3, class_weight=[1, 2, 1, 1])
    per_sample = loss(logits, labels, reduction_override='none')
    assert per_sample[2] == 0 and per_sample[5] == 0
    plain = BiTemperedLogisticLoss(t1=0.7, t2=1.3)(
        logits, labels.clamp(min=0), reduction_override='none')
    assert per_sample[1].item() == pytest.approx(2 * plain[1].item())
    assert loss(logits, labels, reduction_override='sum').item() == \
        pytest.approx(per_sample.sum().item(), rel=1e-6)
    assert loss(logits, labels).item() == pytest.approx(
        per_sample.sum().item() / 6, rel=1e-6)
    non_ignore = BiTemperedLogisticLoss(
        t1=0.7, t2=1.3, class_weight=[1, 2, 1, 1], avg_non_ignore=True)
    assert non_ignore(logits, labels).item() == pytest.approx(
        per_sample.sum().item() / 4, rel=1e-6)
    empty = torch.zeros(0, 4, requires_grad=True)
    value = loss(empty, torch.zeros(0, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0


def test_sigmoid_class_weight_is_mmdets_pos_weight():
    """mmdet's sigmoid CrossEntropyLoss passes class_weight as pos_weight:
    it weights a sample's own class and leaves the negatives of every column
    unweighted. At t1 = t2 = 1 the two agree element for element, background
    rows included; at other temperatures the weight multiplies the same
    elements."""
    torch.manual_seed(2)
    logits = torch.randn(30, 3) * 3
    labels = torch.randint(0, 4, (30, ))  # 3 == background
    labels[:2] = torch.tensor([3, 1])
    class_weight = [1.0, 3.0, 0.5]
    weighted = BiTemperedLogisticLoss(t1=1.0, t2=1.0, use_sigmoid=True,
                                      class_weight=class_weight)
    mmdet_ce = MODELS.build(dict(type='CrossEntropyLoss', use_sigmoid=True,
                                 class_weight=class_weight))
    got = weighted(logits, labels, reduction_override='none')
    expected = mmdet_ce(logits, labels, reduction_override='none')
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    # Row 0 is background: nothing weighted. Row 1 is class 1: only its
    # column, by 3.
    plain = BiTemperedLogisticLoss(t1=0.7, t2=1.3, use_sigmoid=True)(
        logits, labels, reduction_override='none')
    tempered = BiTemperedLogisticLoss(
        t1=0.7, t2=1.3, use_sigmoid=True, class_weight=class_weight)(
            logits, labels, reduction_override='none')
    factors = torch.ones(30, 3)
    for row, label in enumerate(labels.tolist()):
        if label < 3:
            factors[row, label] = class_weight[label]
    assert factors[0].tolist() == [1, 1, 1]
    assert factors[1].tolist() == [1, 3, 1]
    torch.testing.assert_close(tempered, plain * factors)


def test_ignore_index_none_and_class_weight_length():
    """ignore_index=None ignores only negative labels, in the loss and in
    avg_non_ignore's divisor; a class_weight of the wrong length is named
    instead of being read at clamped indices."""
    torch.manual_seed(9)
    logits = torch.randn(6, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, -1, 3, 2, -1])
    loss = BiTemperedLogisticLoss(
        t1=0.7, t2=1.3, ignore_index=None, avg_non_ignore=True,
        class_weight=[1, 2, 1, 3])
    weights = [1, 2, 1, 3]
    expected = sum(
        weights[int(label)] *
        ref_loss(row.tolist(), ref_target(int(label), 4, 0.0), 0.7, 1.3)
        for row, label in zip(logits, labels) if label >= 0) / 4
    assert loss(logits, labels).item() == pytest.approx(expected, rel=1e-7)
    short = BiTemperedLogisticLoss(t1=0.7, t2=1.3, class_weight=[1, 2, 1])
    with pytest.raises(ValueError, match='class_weight has 3 entries but '
                       'cls_score has 4 classes'):
        short(logits, labels.clamp(min=0))
    long = BiTemperedLogisticLoss(t1=0.7, t2=1.3, class_weight=[1, 2, 1, 3, 5])
    with pytest.raises(ValueError, match='class_weight has 5 entries but '
                       'cls_score has 4 classes'):
        long(logits, labels.clamp(min=0))


def test_negative_labels_and_an_ignore_index_beyond_c_get_zero_loss():
    """Every negative label gets zero loss, not only ignore_index (-100 by
    default), and so does an ignore_index of 255, beyond the C = 4 classes
    (as in segmentation masks); the other samples get the reference's."""
    logits = torch.randn(4, 4, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(3))
    for ignore_index, labels in ((-100, [0, -1, 2, -7]),
                                 (255, [1, 255, 3, -1])):
        loss = BiTemperedLogisticLoss(t1=0.7, t2=1.3, reduction='none',
                                      ignore_index=ignore_index)
        got = loss(logits, torch.tensor(labels))
        expected = [
            ref_loss(row.tolist(), ref_target(label, 4, 0.0), 0.7, 1.3)
            if 0 <= label < 4 else 0.0 for row, label in zip(logits, labels)
        ]
        torch.testing.assert_close(
            got, torch.tensor(expected, dtype=torch.float64), rtol=1e-7,
            atol=0)
        assert got[1].item() == 0.0 and got[0].item() > 0


def test_label_out_of_range_and_label_of_wrong_shape_are_named():
    """Softmax labels are in [0, C): C itself (the background of mmdet's
    sigmoid heads) is named with the class count, not left to one_hot; a
    label [N, 1] is refused, not broadcast against [N]. Control: C - 1 is a
    class; with equal logits p = 1/4 each, and at t1 = 0.8, t2 = 1.2 the
    loss is -log_0.8(1/4) - (1 - 4 (1/4)^1.2) / 1.2 = (1 - 4^-0.2)(1 / 0.2
    - 1 / 1.2) = 1.00893."""
    logits = torch.zeros(2, 4)
    loss = BiTemperedLogisticLoss(t1=0.8, t2=1.2)
    with pytest.raises(ValueError, match='labels must be < the 4 classes of '
                       'cls_score, got max 4'):
        loss(logits, torch.tensor([0, 4]))
    assert loss(logits, torch.tensor([0, 3])).item() == pytest.approx(
        (1 - 4**-0.2) * (1 / 0.2 - 1 / 1.2), rel=1e-5)
    with pytest.raises(ValueError, match=r'expects cls_score \[N, C\] and '
                       r'integer label \[N\], got \(3, 4\) and \(3, 1\)'):
        loss(torch.zeros(3, 4), torch.tensor([[0], [1], [2]]))


def test_avg_factor_wins_over_avg_non_ignore_and_loss_weight_scales():
    """avg_non_ignore divides by the non-ignored count (3 of 4) only when the
    caller gives no avg_factor, as mmdet's CrossEntropyLoss; a given one (10)
    is used as is. loss_weight = 2 doubles every reduction."""
    logits = torch.randn(4, 3, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, -100])
    per_sample = [
        ref_loss(row.tolist(), ref_target(int(label), 3, 0.0), 0.7, 1.3)
        for row, label in zip(logits[:3], labels[:3])
    ]
    total = sum(per_sample)
    loss = BiTemperedLogisticLoss(t1=0.7, t2=1.3, avg_non_ignore=True)
    assert loss(logits, labels).item() == pytest.approx(total / 3, rel=1e-7)
    assert loss(logits, labels, avg_factor=10.0).item() == pytest.approx(
        total / 10, rel=1e-7)
    doubled = BiTemperedLogisticLoss(t1=0.7, t2=1.3, avg_non_ignore=True,
                                     loss_weight=2.0)
    assert doubled(logits, labels).item() == pytest.approx(
        2 * total / 3, rel=1e-7)
    assert doubled(logits, labels, avg_factor=10.0).item() == pytest.approx(
        2 * total / 10, rel=1e-7)
    torch.testing.assert_close(
        doubled(logits, labels, reduction_override='none'),
        torch.tensor([2 * value for value in per_sample] + [0.0],
                     dtype=torch.float64), rtol=1e-7, atol=0)


@pytest.mark.parametrize('kwargs,key', [(dict(t1=1.5), 't1'),
                                        (dict(t1=-0.1), 't1'),
                                        (dict(t2=0.0), 't2'),
                                        (dict(num_iters=0), 'num_iters'),
                                        (dict(label_smoothing=1.0),
                                         'label_smoothing'),
                                        (dict(reduction='avg'), 'reduction')])
def test_bad_settings_fail_at_build(kwargs, key):
    with pytest.raises(ValueError, match=key):
        MODELS.build(dict(type='BiTemperedLogisticLoss', **kwargs))


def test_label_smoothing_that_inverts_the_target_is_refused():
    with pytest.raises(ValueError, match=r'label_smoothing must be < 0.5 '
                       r'with use_sigmoid=True'):
        BiTemperedLogisticLoss(use_sigmoid=True, label_smoothing=0.5)
    BiTemperedLogisticLoss(use_sigmoid=True, label_smoothing=0.49)
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 1, 2, 0])
    # C = 3: (C - 1) / C = 2 / 3.
    with pytest.raises(ValueError, match=r'label_smoothing=0.7 must be < '
                       r'\(C - 1\) / C = 0.6667 for C=3 classes'):
        BiTemperedLogisticLoss(label_smoothing=0.7)(logits, labels)
    ok = BiTemperedLogisticLoss(label_smoothing=0.6)(
        logits, labels, reduction_override='none')
    assert torch.isfinite(ok).all()
    with pytest.raises(ValueError, match='needs at least 2 classes'):
        smooth_labels(torch.ones(4, 1), 0.1)
    # At the limit exactly, 1 - C / (C - 1) * (C - 1) / C = 0: every class
    # gets 1 / C, a uniform target; refused too (C = 2: 1/2, C = 4: 3/4).
    for one_hot, limit in ((torch.tensor([[1.0, 0.0]]), 0.5),
                           (torch.tensor([[0.0, 1.0, 0.0, 0.0]]), 0.75)):
        num_classes = one_hot.shape[-1]
        with pytest.raises(ValueError, match=rf'label_smoothing={limit} must '
                           rf'be < \(C - 1\) / C = {limit} for '
                           rf'C={num_classes} classes'):
            smooth_labels(one_hot, limit)
    # Below the limit the true class keeps the most mass: 1 - 0.6 > 0.3.
    torch.testing.assert_close(
        smooth_labels(torch.tensor([[1.0, 0.0, 0.0]]), 0.6),
        torch.tensor([[0.4, 0.3, 0.3]]))


@pytest.mark.parametrize('t1,t2,key', [(2.0, 1.2, 't1'), (-0.1, 1.2, 't1'),
                                       (0.8, -1.0, 't2'), (0.8, 0.0, 't2')])
def test_functional_forms_check_temperatures(t1, t2, key):
    logits = torch.randn(2, 3)
    target = F.one_hot(torch.tensor([0, 2]), 3).float()
    with pytest.raises(ValueError, match=f'{key} must be'):
        bi_tempered_logistic_loss(logits, target, t1, t2)
    if key == 't2':
        with pytest.raises(ValueError, match='t2 must be > 0'):
            tempered_softmax(logits, t2)


def test_functional_form_matches_module():
    torch.manual_seed(8)
    logits = torch.randn(5, 3)
    labels = torch.tensor([0, 2, 1, 1, 0])
    target = F.one_hot(labels, 3).float()
    torch.testing.assert_close(
        bi_tempered_logistic_loss(logits, target, 0.8, 1.2),
        BiTemperedLogisticLoss(0.8, 1.2)(
            logits, labels, reduction_override='none'))


# ------------------------------------------------------- label-noise toy
@pytest.fixture
def single_thread():
    # Hundreds of tiny steps: thread hand-offs would dominate on a busy CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train_linear(loss, inputs, labels, steps=300):
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(steps):
        optimizer.zero_grad()
        loss(model(inputs), labels).backward()
        optimizer.step()
    return model


def _blobs(num, generator):
    # Three unit-variance Gaussian blobs on an equilateral triangle.
    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2 * math.sqrt(3)]])
    labels = torch.randint(0, 3, (num, ), generator=generator)
    inputs = centres[labels] + torch.randn(num, 2, generator=generator)
    return inputs, labels


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_more_robust_than_cross_entropy_to_flipped_labels(
        seed, single_thread):
    """30% of the training labels flipped to the next class (pair-flip
    noise). Cross-entropy's unbounded loss lets the flipped points drag the
    linear boundaries; with (t1, t2) = (0.5, 2.0) they are nearly ignored.
    Over seeds 0-29 the clean test accuracy was 0.91 vs 0.84, with the
    smallest gap 0.067; the test asks for 0.03."""
    generator = torch.Generator().manual_seed(seed)
    inputs, labels = _blobs(1000, generator)
    test_inputs, test_labels = _blobs(4000, generator)
    flip = torch.rand(1000, generator=generator) < 0.3
    noisy = torch.where(flip, (labels + 1) % 3, labels)
    accuracy = {}
    for name, loss in (('ce', BiTemperedLogisticLoss(t1=1.0, t2=1.0)),
                       ('bt', BiTemperedLogisticLoss(t1=0.5, t2=2.0))):
        model = _train_linear(loss, inputs, noisy)
        with torch.no_grad():
            accuracy[name] = (model(test_inputs).argmax(-1) == test_labels
                              ).float().mean().item()
    assert accuracy['ce'] > 0.7  # CE did learn, it is only biased
    assert accuracy['bt'] >= accuracy['ce'] + 0.03, accuracy


def test_bad_reduction_override_is_refused_by_name():
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 1, 0])
    loss = BiTemperedLogisticLoss(t1=0.8, t2=1.4)
    with pytest.raises(ValueError, match=r"reduction_override must be one "
                       r"of \('none', 'mean', 'sum'\), got 'avg'"):
        loss(logits, labels, reduction_override='avg')
    elements = loss(logits, labels, reduction_override='none')
    assert loss(logits, labels, reduction_override='sum').item() == \
        pytest.approx(elements.sum().item(), rel=1e-6)
    assert loss(logits, labels, reduction_override='mean').item() == \
        pytest.approx(elements.mean().item(), rel=1e-6)
