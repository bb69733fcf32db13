# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""IoU-balanced losses against hand-written formulas and mmdet's losses."""
import math
import re

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures.bbox import bbox_overlaps

import mmdet_slf  # noqa: F401
from mmdet_slf.models.losses import IoUBalancedClsLoss, IoUBalancedSmoothL1Loss

NUM_CLASSES = 4  # softmax scores have NUM_CLASSES + 1 columns


def cls_batch(seed=0, num=12, sigmoid=False):
    generator = torch.Generator().manual_seed(seed)
    channels = NUM_CLASSES if sigmoid else NUM_CLASSES + 1
    scores = torch.randn(num, channels, generator=generator,
                         dtype=torch.float64) * 2
    labels = torch.randint(0, NUM_CLASSES + 1, (num, ), generator=generator)
    labels[:3] = torch.tensor([0, 2, NUM_CLASSES])  # >= 2 positives, 1 bg
    iou = torch.rand(num, generator=generator, dtype=torch.float64)
    return scores, labels, iou


def expected_factors(loss_pos, iou_pos, exponent, weight_pos=None):
    """Paper's w_i = iou_i^e * sum_j l_j / sum_j iou_j^e l_j, in a loop."""
    weight_pos = weight_pos or [1.0] * len(loss_pos)
    total = sum(w * l for w, l in zip(weight_pos, loss_pos))
    scaled = sum(w * u**exponent * l
                 for w, u, l in zip(weight_pos, iou_pos, loss_pos))
    return [u**exponent * total / scaled for u in iou_pos]


# ---------------------------------------------------------- classification
def test_cls_eta_zero_equals_unweighted_cross_entropy():
    scores, labels, iou = cls_batch()
    weight = torch.rand(12, dtype=torch.float64)
    loss = IoUBalancedClsLoss(eta=0.0)
    expected = (F.cross_entropy(scores, labels, reduction='none') *
                weight).sum() / 5.0
    got = loss(scores, labels, weight=weight, avg_factor=5.0, iou=iou)
    # mmdet adds float32 eps to avg_factor (and casts weights to float32).
    assert got.item() == pytest.approx(expected.item(), rel=1e-7)
    mmdet_ce = MODELS.build(dict(type='CrossEntropyLoss'))
    assert got.item() == pytest.approx(
        mmdet_ce(scores, labels, weight=weight, avg_factor=5.0).item(),
        rel=1e-7)


def test_cls_softmax_matches_paper_formula_and_keeps_positive_sum():
    scores, labels, iou = cls_batch(1)
    raw = F.cross_entropy(scores, labels, reduction='none')
    got = IoUBalancedClsLoss(eta=1.5)(
        scores, labels, iou=iou, reduction_override='none')
    positive = labels < NUM_CLASSES
    factors = expected_factors(raw[positive].tolist(),
                               iou[positive].tolist(), 1.5)
    expected = raw.clone()
    expected[positive] = raw[positive] * torch.tensor(
        factors, dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    # The point of the normaliser: the positives' total is unchanged ...
    assert got[positive].sum().item() == pytest.approx(
        raw[positive].sum().item(), rel=1e-10)
    # ... while it moves towards the high-IoU positives.
    pos_iou = iou[positive]
    ratio = got[positive] / raw[positive]
    assert torch.equal(ratio.argsort(), pos_iou.argsort())
    assert torch.equal(got[~positive], raw[~positive])  # negatives untouched


def test_cls_sigmoid_focal_reweights_only_the_positive_class():
    scores, labels, iou = cls_batch(2, sigmoid=True)
    focal = MODELS.build(dict(type='FocalLoss', use_sigmoid=True))
    raw = focal(scores, labels, reduction_override='none')  # [N, C]
    loss = IoUBalancedClsLoss(
        eta=1.5, use_sigmoid=True, loss_cls=dict(type='FocalLoss'))
    got = loss(scores, (labels, iou), reduction_override='none')
    rows = torch.nonzero(labels < NUM_CLASSES).squeeze(1)
    cols = labels[rows]
    factors = expected_factors(raw[rows, cols].tolist(), iou[rows].tolist(),
                               1.5)
    expected = raw.clone()
    expected[rows, cols] = raw[rows, cols] * torch.tensor(
        factors, dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    assert got.sum().item() == pytest.approx(raw.sum().item(), rel=1e-10)
    # eta = 0 is mmdet's FocalLoss with its own weighting and reduction.
    weight = torch.rand(12, dtype=torch.float64)
    plain = IoUBalancedClsLoss(
        eta=0.0, use_sigmoid=True, loss_cls=dict(type='FocalLoss'))
    assert plain(scores, (labels, iou), weight=weight, avg_factor=3.0).item() \
        == pytest.approx(focal(scores, labels, weight=weight,
                               avg_factor=3.0).item(), rel=1e-10)


def test_cls_sample_weights_enter_the_normaliser():
    scores, labels, iou = cls_batch(3)
    weight = torch.rand(12, dtype=torch.float64)
    weight[0] = 0.0  # a positive that does not count
    raw = F.cross_entropy(scores, labels, reduction='none')
    got = IoUBalancedClsLoss(eta=1.5)(
        scores, labels, weight=weight, iou=iou, reduction_override='none')
    positive = labels < NUM_CLASSES
    assert got[positive].sum().item() == pytest.approx(
        (weight * raw)[positive].sum().item(), rel=1e-10)
    factors = expected_factors(raw[positive].tolist(), iou[positive].tolist(),
                               1.5, weight[positive].tolist())
    expected = (weight * raw)[positive] * torch.tensor(factors,
                                                       dtype=torch.float64)
    torch.testing.assert_close(got[positive], expected)


def test_cls_iou_weights_carry_no_gradient():
    scores, labels, iou = cls_batch(4)
    scores.requires_grad_(True)
    iou.requires_grad_(True)
    loss = IoUBalancedClsLoss(eta=1.5)
    loss(scores, labels, iou=iou, reduction_override='sum').backward()
    assert iou.grad is None
    # d/ds sum_i w_i l_i(s) with w held constant, computed separately.
    with torch.no_grad():
        raw = F.cross_entropy(scores, labels, reduction='none')
        positive = labels < NUM_CLASSES
        factors = torch.ones_like(raw)
        factors[positive] = torch.tensor(
            expected_factors(raw[positive].tolist(), iou[positive].tolist(),
                             1.5),
            dtype=torch.float64)
    probs = F.softmax(scores.detach(), -1)
    expected = factors[:, None] * (probs - F.one_hot(labels, 5))
    torch.testing.assert_close(scores.grad, expected)


def test_cls_degenerate_cases():
    scores, labels, iou = cls_batch(5)
    raw = F.cross_entropy(scores, labels, reduction='none')
    loss = IoUBalancedClsLoss(eta=1.5)
    # All positive IoUs 0: no way to keep the sum, so unweighted.
    got = loss(scores, labels, iou=torch.zeros_like(iou),
               reduction_override='none')
    torch.testing.assert_close(got, raw)
    # No positive at all: unweighted.
    background = torch.full_like(labels, NUM_CLASSES)
    got = loss(scores, background, iou=iou, reduction_override='none')
    torch.testing.assert_close(
        got, F.cross_entropy(scores, background, reduction='none'))
    empty = torch.zeros(0, 5, requires_grad=True)
    value = loss(empty, torch.zeros(0, dtype=torch.long),
                 iou=torch.zeros(0))
    value.backward()
    assert value.item() == 0.0


def test_cls_iou_must_be_given_once():
    scores, labels, iou = cls_batch(6)
    loss = IoUBalancedClsLoss()
    with pytest.raises(ValueError, match='needs the IoU'):
        loss(scores, labels)
    with pytest.raises(ValueError, match='twice'):
        loss(scores, (labels, iou), iou=iou)
    with pytest.raises(ValueError, match='shape'):
        loss(scores, labels, iou=iou[:3])
    assert loss(scores, (labels, iou)).item() == pytest.approx(
        loss(scores, labels, iou=iou).item(), rel=1e-12)


def test_cls_sigmoid_reaches_the_default_cross_entropy():
    """use_sigmoid=True with the default loss_cls makes it sigmoid CE.

    Hand-worked: all scores 0, so every element's binary CE is ln 2. Labels
    [0, 1, 2] with 2 classes (2 = background); the positives are elements
    (0, 0) and (1, 1) with IoU 1 and 0.5. With eta = 1: total 2 ln 2,
    IoU-scaled total 1.5 ln 2, normaliser 4/3, so factors 4/3 and 2/3;
    every other element keeps ln 2.
    """
    loss = IoUBalancedClsLoss(eta=1.0, use_sigmoid=True)
    assert loss.loss_cls.use_sigmoid is True
    got = loss(torch.zeros(3, 2), torch.tensor([0, 1, 2]),
               iou=torch.tensor([1.0, 0.5, 0.0]), reduction_override='none')
    expected = math.log(2) * torch.tensor(
        [[4 / 3, 1.0], [1.0, 2 / 3], [1.0, 1.0]])
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize('cfg,key', [
    (dict(type='IoUBalancedClsLoss', eta=-1.0), 'eta'),
    (dict(type='IoUBalancedClsLoss', use_sigmoid=True,
          loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False)),
     'use_sigmoid'),
    (dict(type='IoUBalancedClsLoss', reduction='avg'), 'reduction'),
    (dict(type='IoUBalancedClsLoss',
          loss_cls=dict(type='CrossEntropyLoss', avg_non_ignore=True)),
     'avg_non_ignore'),
    (dict(type='IoUBalancedSmoothL1Loss', exponent=-0.5), 'exponent'),
    (dict(type='IoUBalancedSmoothL1Loss', beta=0.0), 'beta'),
])
def test_bad_settings_fail_at_build(cfg, key):
    with pytest.raises(ValueError, match=key):
        MODELS.build(cfg)


# ---------------------------------------------------------- localisation
def box_batch(seed=0, num=10):
    generator = torch.Generator().manual_seed(seed)
    xy = torch.rand(num, 2, generator=generator, dtype=torch.float64) * 50
    wh = torch.rand(num, 2, generator=generator, dtype=torch.float64) * 40 + 5
    target = torch.cat([xy, xy + wh], dim=1)
    noise = torch.randn(num, 4, generator=generator, dtype=torch.float64) * 6
    return target + noise, target


def smooth_l1(diff, beta):
    diff = diff.abs()
    return torch.where(diff < beta, 0.5 * diff * diff / beta,
                       diff - 0.5 * beta)


def test_box_exponent_zero_equals_mmdet_smooth_l1():
    pred, target = box_batch()
    weight = torch.ones(10, 4, dtype=torch.float64)
    weight[7:] = 0
    mmdet_loss = MODELS.build(dict(type='SmoothL1Loss', beta=2.0))
    ours = IoUBalancedSmoothL1Loss(beta=2.0, exponent=0.0)
    assert ours(pred, target, weight=weight, avg_factor=7.0).item() == \
        pytest.approx(mmdet_loss(pred, target, weight=weight,
                                 avg_factor=7.0).item(), rel=1e-12)


def test_box_matches_paper_formula_and_keeps_positive_sum():
    pred, target = box_batch(1)
    weight = torch.ones(10, 4, dtype=torch.float64)
    weight[8:] = 0  # two negatives
    loss = IoUBalancedSmoothL1Loss(beta=1.0, exponent=1.5)
    got = loss(pred, target, weight=weight, reduction_override='none')
    raw = smooth_l1(pred - target, 1.0)
    iou = bbox_overlaps(pred, target, is_aligned=True)
    factors = expected_factors(raw[:8].sum(1).tolist(), iou[:8].tolist(), 1.5)
    expected = raw * weight
    expected[:8] *= torch.tensor(factors, dtype=torch.float64)[:, None]
    torch.testing.assert_close(got, expected)
    assert got.sum().item() == pytest.approx((raw * weight).sum().item(),
                                             rel=1e-10)
    assert got[8:].abs().sum() == 0


def test_box_hand_worked_iou():
    # [0, 0, 2, 2] vs [1, 1, 3, 3]: intersection 1, union 7.
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]])
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 2.0, 2.0]])
    loss = IoUBalancedSmoothL1Loss(beta=1.0, exponent=1.0)
    iou = loss.regression_iou(pred, target)
    torch.testing.assert_close(iou, torch.tensor([1 / 7, 1.0]))
    # Only the first row has a loss (4 * 0.5), so it keeps it all.
    assert loss(pred, target, reduction_override='sum').item() == \
        pytest.approx(2.0)


def test_box_iou_from_deltas_matches_real_anchors():
    coder_cfg = dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4,
                     target_stds=[0.1, 0.1, 0.2, 0.2])
    coder = TASK_UTILS.build(coder_cfg)
    pred_boxes, target_boxes = box_batch(2)
    generator = torch.Generator().manual_seed(3)
    centres = torch.rand(10, 2, generator=generator, dtype=torch.float64)
    sizes = torch.rand(10, 2, generator=generator, dtype=torch.float64) * 300
    anchors = torch.cat([centres * 500, centres * 500 + sizes + 8], dim=1)
    # mmdet's encoder works in float32.
    pred = coder.encode(anchors, pred_boxes.clamp(min=0) + 1).double()
    target = coder.encode(anchors, target_boxes).double()
    expected = bbox_overlaps(
        coder.decode(anchors, pred), coder.decode(anchors, target),
        is_aligned=True)
    loss = IoUBalancedSmoothL1Loss(bbox_coder=coder_cfg)
    torch.testing.assert_close(
        loss.regression_iou(pred, target), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize('coder_cfg,name', [
    (dict(type='DeltaXYWHBBoxCoder', add_ctr_clamp=True),
     'DeltaXYWHBBoxCoder with add_ctr_clamp=True'),
    (dict(type='LegacyDeltaXYWHBBoxCoder'), 'LegacyDeltaXYWHBBoxCoder'),
    (dict(type='TBLRBBoxCoder'), 'TBLRBBoxCoder'),
])
def test_box_coders_whose_iou_depends_on_the_anchor_are_refused(
        coder_cfg, name):
    """With add_ctr_clamp (centre shifts capped at 32 pixels) the IoU of a
    far-shifted box around the reference 100 x 100 anchor is not the one
    around a small real anchor; a coder the loss cannot vouch for is
    refused by name, before any wrong weight is given."""
    if coder_cfg.get('add_ctr_clamp'):
        coder = TASK_UTILS.build(coder_cfg)
        reference = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
        small = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
        pred = torch.tensor([[3.0, 0.0, 0.0, 0.0]])  # 3 widths right
        target = torch.zeros(1, 4)
        ious = [bbox_overlaps(coder.decode(anchor, pred),
                              coder.decode(anchor, target),
                              is_aligned=True).item()
                for anchor in (reference, small)]
        assert ious[0] > 0.1 and ious[1] == 0.0
    with pytest.raises(ValueError, match=f'cannot take bbox_coder {name}:'):
        IoUBalancedSmoothL1Loss(bbox_coder=coder_cfg)


def test_box_iou_weights_carry_no_gradient():
    pred, target = box_batch(4)
    pred.requires_grad_(True)
    loss = IoUBalancedSmoothL1Loss(beta=1.0, exponent=1.5)
    loss(pred, target, reduction_override='sum').backward()
    with torch.no_grad():
        raw = smooth_l1(pred - target, 1.0)
        iou = bbox_overlaps(pred, target, is_aligned=True)
        factors = torch.tensor(
            expected_factors(raw.sum(1).tolist(), iou.tolist(), 1.5),
            dtype=torch.float64)
        diff = pred - target
        grad_raw = torch.where(diff.abs() < 1.0, diff, diff.sign())
    torch.testing.assert_close(pred.grad, factors[:, None] * grad_raw)
    # A given IoU tensor is not differentiated either.
    iou_given = torch.rand(10, dtype=torch.float64, requires_grad=True)
    loss(pred, target, iou=iou_given).backward()
    assert iou_given.grad is None


def test_box_one_dim_weight_and_empty():
    pred, target = box_batch(5)
    weight = torch.rand(10, dtype=torch.float64)  # GFLHead's [N] weights
    loss = IoUBalancedSmoothL1Loss(exponent=1.5)
    got = loss(pred, target, weight=weight, reduction_override='none')
    raw = smooth_l1(pred - target, 1.0)
    assert got.sum().item() == pytest.approx(
        (raw * weight[:, None]).sum().item(), rel=1e-10)
    empty = torch.zeros(0, 4, requires_grad=True)
    value = loss(empty, torch.zeros(0, 4))
    value.backward()
    assert value.item() == 0.0
    with pytest.raises(ValueError, match=r'\[N, 4\]'):
        loss(pred[:, :3], target[:, :3])


def test_box_iou_outside_unit_interval_is_clamped():
    """An IoU above 1 (float slop) or below 0 (a GIoU passed as iou=) is
    read as 1 or 0. Hand-worked, exponent 1: every element differs by 1, so
    each has smooth L1 0.5 and each row 2 (total 6). Clamped IoUs [1, 0.5,
    0] give an IoU-scaled total 3, normaliser 2, factors 2, 1, 0: elements
    1.0, 0.5 and 0.0. (Unclamped, [1.3, 0.5, -0.2] would give factors
    2.4375, 0.9375 and a negative -0.375.)"""
    pred = torch.zeros(3, 4, dtype=torch.float64)
    target = torch.ones(3, 4, dtype=torch.float64)
    loss = IoUBalancedSmoothL1Loss(beta=1.0, exponent=1.0)
    got = loss(pred, target, reduction_override='none',
               iou=torch.tensor([1.3, 0.5, -0.2], dtype=torch.float64))
    expected = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)[:, None]
    torch.testing.assert_close(got, expected.expand(3, 4))


@pytest.mark.parametrize('shape', [(1, ), (3, 1), (2, )])
def test_box_iou_of_another_shape_is_refused(shape):
    """iou must be [N]; a [1] would otherwise broadcast over all N rows."""
    pred, target = torch.zeros(3, 4), torch.ones(3, 4)
    message = re.escape(f'iou must have shape [3], got {shape}')
    with pytest.raises(ValueError, match=message):
        IoUBalancedSmoothL1Loss()(pred, target, iou=torch.full(shape, 0.5))


def test_box_row_with_some_zero_weights_is_a_positive():
    """A row is a positive if ANY of its weights is non-zero (mmdet heads
    may weight only some coordinates). Hand-worked, exponent 1: every
    element has smooth L1 0.5; row 0 (weights 1) has weighted loss 2, row 1
    (weights [1, 1, 0, 0]) has 1; IoUs 1 and 0.5. Total 3, IoU-scaled total
    2 + 0.5 = 2.5, normaliser 1.2: factors 1.2 and 0.6, so row 0 gives 0.6
    per element and row 1 gives [0.3, 0.3, 0, 0] (sum kept at 3)."""
    pred = torch.zeros(2, 4, dtype=torch.float64)
    target = torch.ones(2, 4, dtype=torch.float64)
    weight = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]],
                          dtype=torch.float64)
    got = IoUBalancedSmoothL1Loss(beta=1.0, exponent=1.0)(
        pred, target, weight=weight, reduction_override='none',
        iou=torch.tensor([1.0, 0.5], dtype=torch.float64))
    expected = torch.tensor([[0.6, 0.6, 0.6, 0.6], [0.3, 0.3, 0.0, 0.0]],
                            dtype=torch.float64)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize('which', ['cls', 'box'])
def test_bad_reduction_override_is_refused_by_name(which):
    if which == 'cls':
        scores, labels, iou = cls_batch()
        loss = IoUBalancedClsLoss(eta=1.5)
        args, kwargs = (scores, labels), dict(iou=iou)
    else:
        pred, target = box_batch()
        loss = IoUBalancedSmoothL1Loss(exponent=1.5)
        args, kwargs = (pred, target), {}
    with pytest.raises(ValueError, match=re.escape(
            "reduction_override must be one of ('none', 'mean', 'sum'), "
            "got 'avg'")):
        loss(*args, reduction_override='avg', **kwargs)
    # The names it accepts reduce the element-wise loss as they say.
    elements = loss(*args, reduction_override='none', **kwargs)
    assert loss(*args, reduction_override='sum', **kwargs).item() == \
        pytest.approx(elements.sum().item(), rel=1e-12)
    assert loss(*args, reduction_override='mean', **kwargs).item() == \
        pytest.approx(elements.mean().item(), rel=1e-12)
