# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""YOLOv1 head: a hand-worked 2x2-grid, 2-box loss, empty ground truth,
decoding, and build-time checks."""
import math

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import mmdet_slf  # noqa: F401
from mmdet_slf.models.dense_heads import YOLOV1Head

TERMS = ['coord', 'pred', 'obj', 'noobj']


def make_head(**kwargs):
    cfg = dict(
        num_classes=3,
        in_channels=4,
        input_size=128,
        featmap_stride=64,
        num_grids=2,
        num_boxes=2,
        fc_channels=8,
        dropout=0.0,
        output_act='linear',
        weighting=dict(
            type='FixedWeighting', terms=TERMS, weights=[5.0, 1.0, 1.0,
                                                         0.5]))
    cfg.update(kwargs)
    return YOLOV1Head(**cfg)


def gt(boxes, labels):
    return InstanceData(
        bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.long))


META = dict(batch_input_shape=(128, 128), img_shape=(128, 128))


def cell(x, y, sw, sh, conf, x2, y2, sw2, sh2, conf2, *probs):
    """One cell: two boxes (x, y, sqrt w, sqrt h, conf) and 3 class probs."""
    return [x, y, sw, sh, conf, x2, y2, sw2, sh2, conf2, *probs]


def iou_1d(a0, a1, b0, b1):
    return max(0.0, min(a1, b1) - max(a0, b0))


def hand_iou(pred, target):
    """IoU of two (cx, cy, w, h) boxes, computed step by step."""
    (pcx, pcy, pw, ph), (tcx, tcy, tw, th) = pred, target
    inter = iou_1d(pcx - pw / 2, pcx + pw / 2, tcx - tw / 2, tcx + tw / 2) * \
        iou_1d(pcy - ph / 2, pcy + ph / 2, tcy - th / 2, tcy + th / 2)
    return inter / (pw * ph + tw * th - inter)


def test_hand_worked_2x2_grid_two_boxes():
    """Image 0: two objects; image 1: none. S = 2, B = 2, C = 3, 128 px.

    Object A: (16, 80, 48, 112), class 2 -> centre (0.25, 0.75), size 0.25:
    cell (row 1, col 0), offsets (0.5, 0.5), sqrt size 0.5.
    Object B: (72, 8, 120, 56), class 0 -> centre (0.75, 0.25), size 0.375:
    cell (row 0, col 1), offsets (0.5, 0.5), sqrt size sqrt(0.375).
    """
    pred = torch.tensor([
        [  # image 0: [row][col]
            [cell(.3, .3, .3, .3, .1, .3, .3, .3, .3, .2, .5, .5, .5),
             cell(.1, .1, .2, .2, .4, .5, .5, .6, .6, .8, .7, .2, .1)],
            [cell(.6, .4, .6, .4, .7, .2, .9, .5, .5, .3, .1, .2, .6),
             cell(.3, .3, .3, .3, .05, .3, .3, .3, .3, .0, .4, .4, .4)],
        ],
        [  # image 1: no objects, every confidence 0.5
            [cell(.5, .5, .5, .5, .5, .5, .5, .5, .5, .5, .3, .3, .3)] * 2,
            [cell(.5, .5, .5, .5, .5, .5, .5, .5, .5, .5, .3, .3, .3)] * 2,
        ],
    ])  # [N=2, S=2, S=2, 13]
    head = make_head()
    gts = [gt([[16, 80, 48, 112], [72, 8, 120, 56]], [2, 0]), gt([], [])]
    terms = head.loss_terms(pred, gts, [META, META])

    # Object A, cell (1, 0): box 0 -> centre ((0 + .6) / 2, (1 + .4) / 2),
    # size (.6^2, .4^2); box 1 -> centre (.1, .95), size (.25, .25).
    iou_a0 = hand_iou((0.3, 0.7, 0.36, 0.16), (0.25, 0.75, 0.25, 0.25))
    iou_a1 = hand_iou((0.1, 0.95, 0.25, 0.25), (0.25, 0.75, 0.25, 0.25))
    assert iou_a0 == pytest.approx(0.03875 / 0.08135)
    assert iou_a0 > iou_a1  # box 0 is responsible for A
    # Object B, cell (0, 1): box 0 -> centre (.55, .05), size .04;
    # box 1 -> centre (.75, .25), size .36 (inside B).
    iou_b0 = hand_iou((0.55, 0.05, 0.04, 0.04), (0.75, 0.25, 0.375, 0.375))
    iou_b1 = hand_iou((0.75, 0.25, 0.36, 0.36), (0.75, 0.25, 0.375, 0.375))
    assert iou_b1 == pytest.approx(0.1296 / 0.140625)
    assert iou_b1 > iou_b0  # box 1 is responsible for B

    sqrt_b = math.sqrt(0.375)
    coord_0 = ((.6 - .5)**2 + (.4 - .5)**2 + (.6 - .5)**2 + (.4 - .5)**2) + \
        ((.5 - .5)**2 + (.5 - .5)**2 + 2 * (.6 - sqrt_b)**2)
    pred_0 = (.1**2 + .2**2 + (.6 - 1)**2) + ((.7 - 1)**2 + .2**2 + .1**2)
    obj_0 = (.7 - iou_a0)**2 + (.8 - iou_b1)**2
    # every confidence but the two responsible ones, towards 0
    noobj_0 = .1**2 + .2**2 + .4**2 + .3**2 + .05**2 + .0**2
    noobj_1 = 8 * .5**2
    n = 2  # per-image terms are divided by the batch size
    expected = dict(
        loss_coord=[coord_0 / n, 0.0],
        loss_pred=[pred_0 / n, 0.0],
        loss_obj=[obj_0 / n, 0.0],
        loss_noobj=[noobj_0 / n, noobj_1 / n])
    assert set(terms) == set(expected)
    for key, values in expected.items():
        assert terms[key].shape == (2, )
        torch.testing.assert_close(
            terms[key], torch.tensor(values), atol=1e-5, rtol=0)

    # FixedWeighting with the paper's lambdas weights the batch sums.
    losses = head.loss_by_feat(pred, gts, [META, META])
    for key, weight in zip(TERMS, [5.0, 1.0, 1.0, 0.5]):
        assert losses[f'loss_{key}'].item() == pytest.approx(
            weight * sum(expected[f'loss_{key}']), abs=1e-5)
    assert losses['slf_w_coord'].item() == 5.0


def test_rescore_false_targets_one():
    pred = torch.zeros(1, 2, 2, 13)
    pred[0, 0, 0, 4] = 0.25  # box 0 conf in the object's cell
    head = make_head(rescore=False)
    terms = head.loss_terms(pred, [gt([[8, 8, 40, 40]], [1])], [META])
    # all predicted boxes are empty: IoU 0 for both, box 0 wins the tie
    assert terms['loss_obj'].item() == pytest.approx((0.25 - 1)**2)
    assert terms['loss_noobj'].item() == pytest.approx(0.0)


def test_largest_box_keeps_a_shared_cell():
    pred = torch.zeros(1, 2, 2, 13)
    pred[0, 0, 0, 10:] = torch.tensor([1.0, 0.0, 0.0])
    head = make_head()
    # both centres in cell (0, 0); the larger (class 1) must win
    gts = [gt([[10, 10, 20, 20], [0, 0, 60, 60]], [0, 1])]
    terms = head.loss_terms(pred, gts, [META])
    assert terms['loss_pred'].item() == pytest.approx(2.0)


def test_a_shared_cell_goes_to_the_larger_area_not_the_wider_box():
    """Both centres at (32, 32) px, in cell (row 0, col 0) of the 128 px
    input. Box 0, (0, 30, 64, 34), is the wider, 0.5 x 0.03125 of the
    input: area 0.015625. Box 1, (24, 0, 40, 64), is 0.125 x 0.5: area
    0.0625, the larger, so it keeps the cell although it is narrower."""
    from mmdet_slf.models.dense_heads.yolov1_targets import yolov1_targets

    _, cell_mask, box_target, _, cls_target = yolov1_targets(
        torch.zeros(2, 2, 13), gt([[0, 30, 64, 34], [24, 0, 40, 64]],
                                  [0, 1]), META, 2, 3)
    assert cell_mask.tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert cls_target[0, 0].tolist() == [0.0, 1.0, 0.0]
    # box 1: centre (32, 32) px -> offsets (0.5, 0.5), sqrt sizes of
    # 0.125 and 0.5
    torch.testing.assert_close(
        box_target[0, 0],
        torch.tensor([0.5, 0.5, math.sqrt(0.125), math.sqrt(0.5)]))


def test_targets_drop_a_beaten_box_without_reading_the_device():
    """Three boxes on a 2 x 2 grid of a 128 px input: the large one and a
    small one share cell (row 0, col 0), so the small one's targets must
    not appear anywhere; the third owns cell (1, 1). Built without a host
    sync (no boolean-mask selection), so a GPU never waits on them."""
    from mmdet_slf.models.dense_heads.yolov1_targets import yolov1_targets
    from mmdet_slf.utils.profiling import host_syncs

    pred = torch.zeros(2, 2, 13)
    boxes = gt([[0, 0, 64, 48], [20, 20, 30, 30], [70, 80, 120, 120]],
               [1, 0, 2])

    def build():
        return yolov1_targets(pred, boxes, META, 2, 3)

    assert host_syncs(build)['syncs'] == []
    # Nor a copy from the host: on 'meta', which stands for a GPU, the
    # image size enters without one.
    pred_on_meta = pred.to('meta')
    boxes_on_meta = InstanceData(bboxes=boxes.bboxes.to('meta'),
                                 labels=boxes.labels.to('meta'))
    assert host_syncs(lambda: yolov1_targets(
        pred_on_meta, boxes_on_meta, META, 2, 3))['syncs'] == []
    obj_mask, cell_mask, box_target, conf_target, cls_target = build()
    assert cell_mask.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert cls_target[0, 0].tolist() == [0.0, 1.0, 0.0]
    assert cls_target[1, 1].tolist() == [0.0, 0.0, 1.0]
    assert cls_target[0, 1].sum() == cls_target[1, 0].sum() == 0
    # Large box: centre (32, 24) px = (0.25, 0.1875), i.e. offsets
    # (0.5, 0.375) in cell (0, 0); size (0.5, 0.375), square roots kept.
    torch.testing.assert_close(
        box_target[0, 0],
        torch.tensor([0.5, 0.375, math.sqrt(0.5), math.sqrt(0.375)]))
    # Third box: centre (95, 100) px -> offsets (0.484375, 0.5625) in
    # cell (1, 1); size (50, 40) px -> (0.390625, 0.3125).
    torch.testing.assert_close(
        box_target[1, 1],
        torch.tensor([0.484375, 0.5625, math.sqrt(0.390625),
                      math.sqrt(0.3125)]))
    # Every predicted box is empty: IoU 0, predictor 0 wins the tie.
    assert obj_mask.tolist() == [[[1.0, 0.0], [0.0, 0.0]],
                                 [[0.0, 0.0], [1.0, 0.0]]]
    assert conf_target.sum() == 0


def test_batch_targets_keep_images_apart_in_a_constant_operator_count():
    """Image 0 and image 2 each hold a box in cell (0, 0), image 1 none:
    both boxes keep their cell (a cell is shared only within an image), and
    each image's targets are those it gets alone. The operators do not
    grow with the batch beyond one per image with boxes (its image index)."""
    from mmdet_slf.models.dense_heads.yolov1_targets import (
        batch_yolov1_targets, yolov1_targets)
    from mmdet_slf.utils.profiling import host_syncs

    torch.manual_seed(0)
    pred = torch.rand(3, 2, 2, 13)
    gts = [gt([[0, 0, 64, 48]], [1]), gt([], []),
           gt([[10, 10, 20, 20], [70, 80, 120, 120]], [2, 0])]
    batch = batch_yolov1_targets(pred, gts, [META] * 3, 2, 3)
    assert batch[1][:, 0, 0].tolist() == [1.0, 0.0, 1.0]  # cell_mask
    for i in range(3):
        alone = yolov1_targets(pred[i], gts[i], META, 2, 3)
        for batched, single in zip(batch, alone):
            assert torch.equal(batched[i], single)

    def operators(num_images):
        preds = torch.rand(num_images, 2, 2, 13)
        boxes = [gt([[0, 0, 64, 48], [70, 80, 120, 120]], [1, 2])
                 ] * num_images
        trace = host_syncs(lambda: batch_yolov1_targets(
            preds, boxes, [META] * num_images, 2, 3))
        assert trace['syncs'] == []
        return trace['operators']

    assert operators(8) - operators(2) == 6
    with pytest.raises(ValueError, match='share their batch_input_shape'):
        batch_yolov1_targets(pred[:2], gts[:2], [
            META, dict(batch_input_shape=(96, 128))], 2, 3)
    with pytest.raises(ValueError, match='pred has 3 images but got 2'):
        batch_yolov1_targets(pred, gts[:2], [META] * 2, 2, 3)


def test_equal_boxes_sharing_a_cell_go_to_the_later_one():
    """Two 20 x 20 px boxes with centres in cell (0, 0): the tie goes to the
    later box, so its class and centre are the cell's targets; neither box
    may be dropped with the other."""
    from mmdet_slf.models.dense_heads.yolov1_targets import yolov1_targets

    pred = torch.zeros(2, 2, 13)
    _, cell_mask, box_target, _, cls_target = yolov1_targets(
        pred, gt([[0, 0, 20, 20], [30, 10, 50, 30]], [0, 2]), META, 2, 3)
    assert cell_mask.tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert cls_target[0, 0].tolist() == [0.0, 0.0, 1.0]
    # centre (40, 20) px -> offsets (0.625, 0.3125); size 0.15625 each way
    torch.testing.assert_close(
        box_target[0, 0],
        torch.tensor([0.625, 0.3125, math.sqrt(0.15625),
                      math.sqrt(0.15625)]))


def test_boxes_reaching_outside_the_input_are_clipped_to_it():
    """A box overhanging the 128 px input is trained as its part inside:
    [100, -20, 150, 40] -> [100, 0, 128, 40], centre (114, 20) px, i.e.
    offsets (0.78125, 0.3125) in cell (row 0, col 1), size (0.21875,
    0.3125). Unclipped, its centre (125, 10) would give the same cell but
    offsets (0.953125, 0.15625) and a width of 0.390625."""
    from mmdet_slf.models.dense_heads.yolov1_targets import yolov1_targets

    pred = torch.zeros(2, 2, 13)
    _, cell_mask, box_target, _, cls_target = yolov1_targets(
        pred, gt([[100, -20, 150, 40]], [2]), META, 2, 3)
    assert cell_mask.tolist() == [[0.0, 1.0], [0.0, 0.0]]
    assert cls_target[0, 1].tolist() == [0.0, 0.0, 1.0]
    torch.testing.assert_close(
        box_target[0, 1],
        torch.tensor([0.78125, 0.3125, math.sqrt(0.21875),
                      math.sqrt(0.3125)]))


def test_a_box_wholly_outside_the_input_takes_no_cell():
    """Box 1 lies left of the input, box 2 below it; clipped, both would
    become empty boxes on the border of cells (0, 0) and (1, 1). They take
    no cell, and do not displace the thin box 0 inside the input from cell
    (0, 0)."""
    from mmdet_slf.models.dense_heads.yolov1_targets import yolov1_targets

    pred = torch.zeros(2, 2, 13)
    boxes = gt([[0, 30, 2, 40], [-50, 10, -5, 60], [90, 130, 120, 160]],
               [0, 1, 2])
    obj_mask, cell_mask, box_target, conf_target, cls_target = \
        yolov1_targets(pred, boxes, META, 2, 3)
    assert cell_mask.tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert cls_target.sum() == 1 and cls_target[0, 0, 0] == 1
    assert obj_mask.sum() == 1
    # box 0: centre (1, 35) px -> offsets (1/64, 35/64), size (2, 10) / 128
    torch.testing.assert_close(
        box_target[0, 0],
        torch.tensor([1 / 64, 35 / 64, math.sqrt(2 / 128),
                      math.sqrt(10 / 128)]))


@pytest.mark.parametrize('width,takes_cell', [(0.0, False), (0.5, False),
                                              (0.7, True)])
def test_boxes_under_darknets_minimum_size_take_no_cell(width, takes_cell):
    """darknet skips a box under 0.005 of the image in width or height
    (fill_truth_region): at 128 px, 0.5 px (0.0039) is skipped, 0.7 px
    (0.0055) is kept. A skipped box would teach its cell "class c here,
    confidence about 0"."""
    from mmdet_slf.models.dense_heads.yolov1_targets import yolov1_targets

    _, cell_mask, _, _, cls_target = yolov1_targets(
        torch.zeros(2, 2, 13), gt([[10, 10, 10 + width, 40]], [2]), META, 2,
        3)
    assert cell_mask.sum().item() == float(takes_cell)
    assert cls_target.sum().item() == float(takes_cell)


def test_a_box_no_predictor_overlaps_goes_to_the_nearest():
    """Both predictors of cell (0, 0) miss the box (IoU 0). darknet's rule
    ('rmse') makes the one nearest in (x, y, w, h) responsible; 'first'
    takes predictor 0. Box (8, 8, 40, 40) at 128 px: (0.1875, 0.1875, 0.25,
    0.25). Predictor 0 at (0.45, 0.45), size 0.04: distance^2 = 2 * 0.2625^2
    + 2 * 0.21^2 = 0.226; predictor 1 at (0.01, 0.01), size 0.01: 2 *
    0.1775^2 + 2 * 0.24^2 = 0.178, the nearer."""
    from mmdet_slf.models.dense_heads.yolov1_targets import yolov1_targets

    pred = torch.zeros(2, 2, 13)
    pred[0, 0, :10] = torch.tensor([0.9, 0.9, 0.2, 0.2, 0.5,
                                    0.02, 0.02, 0.1, 0.1, 0.5])
    boxes = gt([[8, 8, 40, 40]], [1])
    rmse = yolov1_targets(pred, boxes, META, 2, 3)
    first = yolov1_targets(pred, boxes, META, 2, 3, no_overlap='first')
    assert rmse[0][0, 0].tolist() == [0.0, 1.0]
    assert first[0][0, 0].tolist() == [1.0, 0.0]
    assert rmse[3][0, 0].tolist() == [0.0, 0.0]  # rescore: IoU 0
    # Once a predictor overlaps the box, the IoU decides, as before.
    pred[0, 0, :4] = torch.tensor([0.375, 0.375, 0.5, 0.5])  # the box itself
    assert yolov1_targets(pred, boxes, META, 2, 3)[0][0, 0].tolist() == \
        [1.0, 0.0]
    with pytest.raises(ValueError, match="no_overlap must be one of"):
        make_head(no_overlap='nearest')


def test_an_empty_image_may_carry_float_labels():
    """An image without boxes often gets ``labels=torch.tensor([])``, a
    float tensor; it must not turn the batch's integer labels into floats
    (and be refused as such)."""
    head = make_head()
    empty = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.tensor([]))
    losses = head.loss_terms(torch.zeros(2, 2, 2, 13),
                             [gt([[16, 16, 48, 48]], [1]), empty],
                             [META, META])
    assert losses['loss_pred'][1].item() == 0.0
    assert losses['loss_pred'][0].item() > 0.0


@pytest.mark.parametrize('label', [-1, 3])
def test_labels_outside_the_classes_are_refused(label):
    """As an index, -1 would train the last class and 3 would fail with an
    IndexError naming neither the labels nor num_classes."""
    head = make_head()
    pred = torch.zeros(1, 2, 2, 13)
    with pytest.raises(RuntimeError, match=r'num_classes=3\)'):
        head.loss_terms(pred, [gt([[0, 0, 64, 48]], [label])], [META])


def test_float_labels_are_refused():
    head = make_head()
    boxes = InstanceData(bboxes=torch.tensor([[0.0, 0.0, 64.0, 48.0]]),
                         labels=torch.tensor([1.0]))
    with pytest.raises(TypeError, match='integer tensor, got torch.float32'):
        head.loss_terms(torch.zeros(1, 2, 2, 13), [boxes], [META])


def test_an_input_other_than_input_size_is_refused():
    """A 160 px input gives the 2 x 2 map of a 128 px one, so the forward
    pass accepts it, but the head was built for 128 px."""
    head = make_head()
    feats = (torch.rand(1, 4, 2, 2), )
    meta = dict(batch_input_shape=(160, 128), img_shape=(160, 128))
    with pytest.raises(ValueError, match=r'\(160, 128\) \(h, w\) but its '
                       r'input_size is \(128, 128\)'):
        head.loss_by_feat(*head(feats), [gt([], [])], [meta])
    with pytest.raises(ValueError, match='input_size'):
        head.predict_by_feat(*head(feats), [meta])


def test_empty_gt_and_gradients_reach_every_parameter():
    torch.manual_seed(0)
    head = make_head(output_act='sigmoid', dropout=0.5)
    head.init_weights()
    feats = (torch.rand(2, 4, 2, 2), )
    losses = head.loss_by_feat(*head(feats), [gt([], []), gt([], [])],
                               [META, META])
    for key in ('loss_coord', 'loss_pred', 'loss_obj'):
        assert losses[key].item() == 0.0
    assert losses['loss_noobj'].item() > 0
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    for name, param in head.named_parameters():
        assert param.grad is not None, name


def test_tiny_and_degenerate_boxes_stay_finite():
    head = make_head(output_act='linear')
    pred = torch.zeros(1, 2, 2, 13, requires_grad=True)  # zero-size boxes
    # A zero-size box (skipped) and a 1 x 1.5 px one (kept: 0.0078 of 128)
    gts = [gt([[30, 30, 30, 30], [100, 100, 101, 101.5]], [0, 2])]
    losses = head.loss_terms(pred, gts, [META])
    total = sum(v.sum() for v in losses.values())
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(pred.grad).all()
    # both predictors have IoU 0 and are equally near: predictor 0 is
    # responsible, its obj target is 0
    assert losses['loss_obj'].item() == 0.0
    # offsets x (100.5 / 64 - 1), y (100.75 / 64 - 1); sqrt sizes squared
    coord = (100.5 / 64 - 1)**2 + (100.75 / 64 - 1)**2 + 1 / 128 + 1.5 / 128
    assert losses['loss_coord'].item() == pytest.approx(coord, abs=1e-5)


def test_slf_weighting_reads_prediction_summary():
    head = make_head(
        weighting=dict(
            type='SLFWeighting', terms=TERMS, prior=[5.0, 1.0, 1.0, 0.5]))
    assert head.weighting.decision_net.in_channels == 13  # B * 5 + C
    before = {k: v.clone() for k, v in head.weighting.state_dict().items()}
    head.init_weights()  # the head's init must leave the weighting alone
    for key, value in head.weighting.state_dict().items():
        assert torch.equal(value, before[key]), key
    raw_reader = make_head(
        weighting=dict(type='SLFWeighting', terms=TERMS, in_channels=None))
    assert raw_reader.weighting.reads_terms
    head.train()
    feats = (torch.rand(2, 4, 2, 2), )
    losses = head.loss_by_feat(*head(feats), [gt([[8, 8, 40, 40]], [1]),
                                              gt([], [])], [META, META])
    for term in TERMS:
        assert f'slf_w_{term}' in losses
    # Only the objective's keys contain 'loss' (mmengine sums those keys):
    # no diagnostic reaches the objective.
    assert {key for key in losses if 'loss' in key} == {
        f'loss_{term}' for term in TERMS} | {'loss_slf_decision'}
    # The default decision objective's term (J of 'scale_free'): in the
    # first step each running mean equals its term, so s_i = 1 and, at the
    # prior, KL = 0: J = sum_i p_i * 1 = 1.
    assert losses['loss_slf_decision'].item() == pytest.approx(1.0, abs=1e-5)


def test_joint_slf_trains_the_head_through_its_decision_features():
    """The paper's Algorithm 1 (``detach_features=False``) back-propagates
    Eq. (11) from the decision network into the head's output through the
    features, their mean over the cells: the gradient on the output gains a
    part that is the same in every cell of an image."""
    gts = [gt([[8, 8, 40, 40]], [1]), gt([[70, 20, 120, 100]], [2])]
    torch.manual_seed(0)
    pred = torch.rand(2, 2, 2, 13)
    grads = {}
    for detach in (True, False):
        torch.manual_seed(1)  # the same decision network for both
        head = make_head(weighting=dict(
            type='SLFWeighting', terms=TERMS, prior=[5.0, 1.0, 1.0, 0.5],
            decision_objective='joint', kl_weight=0.0, estimator='expected',
            prior_init=False, detach_features=detach))
        leaf = pred.clone().requires_grad_()
        losses = head.loss_by_feat(leaf, gts, [META, META])
        sum(v for k, v in losses.items() if k[5:] in TERMS).backward()
        grads[detach] = leaf.grad
    extra = grads[False] - grads[True]
    assert extra.abs().sum() > 0
    # d features / d pred = 1 / (S * S) in every cell of the image
    torch.testing.assert_close(extra, extra[:, :1, :1].expand_as(extra))


def test_a_key_the_weighting_does_not_take_names_where_and_the_fix():
    """A child config that turns the SLF weighting into fixed lambdas keeps
    the parent's SLF keys unless it replaces the dict whole."""
    with pytest.raises(TypeError) as error:
        make_head(weighting=dict(type='FixedWeighting', terms=TERMS,
                                 weights=[5.0, 1.0, 1.0, 0.5],
                                 decision_objective='scale_free'))
    message = str(error.value)
    assert message.startswith('model.bbox_head.weighting (YOLOV1Head): ')
    assert "unexpected keyword argument 'decision_objective'" in message
    assert 'dict(_delete_=True, type=...)' in message


@pytest.mark.parametrize('kwargs, key', [
    (dict(input_size=100), 'input_size'),
    (dict(num_boxes=0), 'num_boxes'),
    (dict(output_act='softmax'), 'output_act'),
    (dict(dropout=1.0), 'dropout'),
    (dict(weighting=dict(type='FixedWeighting', terms=['cls', 'box'])),
     'weighting.terms'),
])
def test_bad_settings_fail_at_build(kwargs, key):
    with pytest.raises(ValueError, match=key):
        make_head(**kwargs)


def test_wrong_feature_map_names_input_size():
    head = make_head()
    with pytest.raises(ValueError, match=r'expects a \[4, 2, 2\] feature '
                       r'map .* but got \[4, 3, 3\]; set .*input_size'):
        head((torch.rand(1, 4, 3, 3), ))
    # one cell too many, as from padding 224 to a multiple of 64 at
    # stride 32 (256 px, an 8 x 8 map): the message names the padding too
    head = make_head(input_size=224, featmap_stride=32, num_grids=7)
    with pytest.raises(ValueError, match=r'but got \[4, 8, 8\].*'
                       'pad_size_divisor divides input_size'):
        head((torch.rand(1, 4, 8, 8), ))


def test_fc_sizes_follow_input_and_paper_size():
    head = make_head(input_size=(192, 128), num_grids=7)
    assert head.fc.in_features == 4 * 2 * 3  # (h / 64) * (w / 64) * C_in
    assert head((torch.rand(1, 4, 2, 3), ))[0].shape == (1, 7, 7, 13)
    # 448 x 448, stride 64: 7 x 7 x 1024 -> 4096 -> 7 x 7 x 30
    paper = YOLOV1Head(weighting=dict(type='FixedWeighting', terms=TERMS))
    assert paper.fc.in_features == 7 * 7 * 1024
    assert paper.fc.out_features == 4096
    assert paper.fc_out.out_features == 7 * 7 * 30


def test_predict_decodes_to_original_image():
    """Hand-made output -> boxes in the original 256 x 192 image.

    The network input is 128 x 128 (scale factors 0.5 in x, 2/3 in y).
    Cell (1, 0), box 0: x .5, y .25, sqrt w = sqrt h = .5, conf .9, class
    probs (.1, .8, .1): centre ((0 + .5) / 2 * 128, (1 + .25) / 2 * 128) =
    (32, 80), size 32 -> (16, 64, 48, 96) -> original (32, 96, 96, 144).
    Box 1 of the same cell duplicates it with conf .5 (class 1 score .4 is
    suppressed by NMS, the .05 scores fall under the threshold).
    Cell (0, 1), box 1: x .9, y .5, size 32, conf .5, class 2 prob 1:
    centre (121.6, 32) -> (105.6, 16, 137.6, 48), clipped at 128 ->
    original (211.2, 24, 256, 72).
    """
    pred = torch.zeros(1, 2, 2, 13)
    pred[0, 1, 0, :10] = torch.tensor(
        [.5, .25, .5, .5, .9, .5, .25, .5, .5, .5])
    pred[0, 1, 0, 10:] = torch.tensor([.1, .8, .1])
    pred[0, 0, 1, 5:10] = torch.tensor([.9, .5, .5, .5, .5])
    pred[0, 0, 1, 10:] = torch.tensor([0., 0., 1.])
    head = make_head(
        test_cfg=ConfigDict(
            score_thr=0.06,
            nms=dict(type='nms', iou_threshold=0.5),
            max_per_img=100))
    meta = dict(
        batch_input_shape=(128, 128),
        img_shape=(128, 128),
        ori_shape=(192, 256),
        scale_factor=(0.5, 128 / 192))
    result = head.predict_by_feat(pred, [meta], rescale=True)[0]
    got = sorted(
        zip(result.scores.tolist(), result.labels.tolist(),
            result.bboxes.tolist()),
        key=lambda r: (-round(r[0], 4), r[1]))
    expected = [
        (0.72, 1, [32, 96, 96, 144]),
        (0.5, 2, [211.2, 24, 256, 72]),
        (0.09, 0, [32, 96, 96, 144]),
        (0.09, 2, [32, 96, 96, 144]),
    ]
    assert len(got) == len(expected)
    for (score, label, box), (e_score, e_label, e_box) in zip(got, expected):
        assert label == e_label
        assert score == pytest.approx(e_score, abs=1e-5)
        assert box == pytest.approx(e_box, abs=1e-3)

    unscaled = head.predict_by_feat(pred, [meta], rescale=False)[0]
    top = unscaled.bboxes[unscaled.scores.argmax()]
    assert top.tolist() == pytest.approx([16, 64, 48, 96], abs=1e-4)


def test_conv_head_predicts_each_cell_from_its_own_column():
    torch.manual_seed(0)
    head = make_head(head='conv', input_size=128, featmap_stride=64)
    head.init_weights()
    assert not hasattr(head, 'fc')
    feats = torch.rand(2, 4, 2, 2)
    out = head((feats, ))[0]
    assert out.shape == (2, 2, 2, 13)  # [N, S, S, B*5+C]
    # cell (row 1, col 0) is the 1x1 conv of feature column [:, :, 1, 0]
    weight = head.conv_out.weight[:, :, 0, 0]  # [13, 4]
    expected = feats[:, :, 1, 0] @ weight.T + head.conv_out.bias
    assert torch.allclose(out[:, 1, 0], expected, atol=1e-6)
    # changing another cell's column leaves this cell unchanged
    changed = feats.clone()
    changed[:, :, 0, 1] += 1
    assert torch.equal(head((changed, ))[0][:, 1, 0], out[:, 1, 0])


def test_sigmoid_output_squashes_every_value():
    """With the FC weights zeroed the output is fc_out's bias, so the
    pre-activation of the 52 outputs is known: biases -2, 0 and 2 must come
    out as sigmoid(-2) = 0.1192, 0.5 and sigmoid(2) = 0.8808 with
    output_act='sigmoid', and unchanged with 'linear'."""
    bias = torch.tensor([-2.0, 0.0, 2.0]).repeat(18)[:52]
    expected = {'linear': bias,
                'sigmoid': 1 / (1 + torch.exp(-bias))}
    assert expected['sigmoid'][:3].tolist() == pytest.approx(
        [0.11920, 0.5, 0.88080], abs=1e-5)
    for act in ('linear', 'sigmoid'):
        head = make_head(output_act=act)
        with torch.no_grad():
            for layer in (head.fc, head.fc_out):
                layer.weight.zero_()
                layer.bias.zero_()
            head.fc_out.bias.copy_(bias)
        out = head((torch.rand(2, 4, 2, 2), ))[0]
        assert out.shape == (2, 2, 2, 13)
        for image in out:
            torch.testing.assert_close(image.flatten(), expected[act])


def test_default_init_draws_both_fc_layers_from_n0_001():
    """Without an init_cfg, init_weights draws the weights of both FC
    layers (the hidden ``fc`` and the output ``fc_out``) from N(0, 0.01)
    with zero biases. PyTorch's own Linear init, U(+-1 / sqrt(fan_in)),
    would give fc (fan_in 4 * 2 * 2 = 16) a weight std of 0.25 / sqrt(3) =
    0.144 and non-zero biases. With 1024 weights the sample std of N(0,
    0.01) is 0.01 +- 0.0002, so [0.009, 0.011] is a loose bound."""
    torch.manual_seed(0)
    head = make_head(fc_channels=64)
    head.init_weights()
    for layer in (head.fc, head.fc_out):
        assert layer.weight.numel() >= 1024
        assert 0.009 < layer.weight.std().item() < 0.011
        assert abs(layer.weight.mean().item()) < 0.002
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_fc_head_drops_hidden_units_in_training_only():
    """fc_channels = 52 = S * S * (B * 5 + C) with fc's weights zeroed and
    its bias 1 makes every hidden unit LeakyReLU(1) = 1, and fc_out the
    identity makes each output one hidden unit. In eval mode every output is
    1. In training, dropout p = 0.5 zeroes each unit with probability 0.5
    and scales the rest by 1 / (1 - p) = 2: over 20 images x 52 units the
    zeroed fraction is 0.5 +- 0.016 (one std), so [0.4, 0.6] holds."""
    torch.manual_seed(0)
    head = make_head(fc_channels=52, dropout=0.5)
    with torch.no_grad():
        head.fc.weight.zero_()
        head.fc.bias.fill_(1.0)
        head.fc_out.weight.copy_(torch.eye(52))
        head.fc_out.bias.zero_()
    feats = (torch.rand(20, 4, 2, 2), )
    head.eval()
    assert torch.equal(head(feats)[0], torch.ones(20, 2, 2, 13))
    head.train()
    out = head(feats)[0]
    zeroed = (out == 0).float().mean().item()
    assert 0.4 < zeroed < 0.6
    assert torch.equal(out[out != 0], torch.full_like(out[out != 0], 2.0))


def test_conv_head_needs_one_cell_per_position():
    with pytest.raises(ValueError, match='num_grids'):
        make_head(head='conv', input_size=128, featmap_stride=32,
                  num_grids=2)
    with pytest.raises(ValueError, match='head must be one of'):
        make_head(head='mlp')


def test_loss_under_float16_autocast_matches_float32():
    """Targets and terms are computed in float32 under AMP (a float16 head
    output used to give float16 targets beside float32 IoUs)."""
    torch.manual_seed(0)
    head = make_head(output_act='sigmoid')
    head.init_weights()
    pred = head((torch.rand(2, 4, 2, 2), ))[0]
    gts = [gt([[8, 8, 40, 40], [70, 60, 120, 126]], [1, 2]),
           gt([[10, 70, 50, 120]], [0])]
    reference = head.loss_by_feat(pred, gts, [META, META])
    with torch.autocast('cpu', dtype=torch.float16):
        half = head.loss_by_feat(pred.half(), gts, [META, META])
    for term in TERMS:
        key = f'loss_{term}'
        assert half[key].dtype == torch.float32
        # only the rounding of the head output to float16 differs
        assert half[key].item() == pytest.approx(reference[key].item(),
                                                 rel=2e-3, abs=1e-4)


def test_the_iou_target_sends_no_gradient_into_the_boxes():
    """The obj term's target is the IoU of the prediction with the truth, a
    constant of the step: loss_obj's gradient reaches the confidences only,
    never x, y, sqrt w, sqrt h (through the target it would be 0.2 here)."""
    torch.manual_seed(0)
    head = make_head()
    pred = torch.rand(1, 2, 2, 2 * 5 + 3, requires_grad=True)
    terms = head.loss_terms(pred, [gt([[10, 20, 60, 90], [70, 70, 120, 110]],
                                      [0, 2])], [META])
    grad, = torch.autograd.grad(terms['loss_obj'].sum(), pred)
    boxes = grad[..., :10].reshape(1, 2, 2, 2, 5)
    assert torch.count_nonzero(boxes[..., :4]) == 0
    assert torch.count_nonzero(boxes[..., 4]) > 0


def test_a_non_square_input_keeps_width_and_height_apart():
    """A 192 x 128 input (cells 96 px wide, 64 high).

    Targets: the box (100, 10, 160, 50) has its centre at (130, 30) px,
    i.e. (0.6771, 0.2344) of the input: cell (row 0, col 1), offsets
    (0.3542, 0.4688); its size (60, 40) px is (0.3125, 0.3125).
    Decoding: cell (0, 1), box 1 at x .25, y .75, sqrt w .5, sqrt h .6,
    conf .8, class 2 prob .9 is centred at (1.25 / 2 * 192, .75 / 2 * 128)
    = (120, 48) with size (.25 * 192, .36 * 128) = (48, 46.08): (96,
    24.96, 144, 71.04) in the input, and in the 300 x 100 original (scale
    factors 0.64 in x, 1.28 in y) (150, 19.5, 225, 55.5), score 0.72.
    """
    from mmdet_slf.models.dense_heads.yolov1_targets import yolov1_targets
    meta = dict(batch_input_shape=(128, 192), img_shape=(128, 192),
                ori_shape=(100, 300), scale_factor=(192 / 300, 128 / 100))
    _, cell_mask, box_target, _, _ = yolov1_targets(
        torch.zeros(2, 2, 13), gt([[100, 10, 160, 50]], [1]), meta, 2, 3)
    assert cell_mask.tolist() == [[0.0, 1.0], [0.0, 0.0]]
    torch.testing.assert_close(
        box_target[0, 1],
        torch.tensor([130 / 96 - 1, 30 / 64, math.sqrt(0.3125),
                      math.sqrt(0.3125)]))

    head = make_head(input_size=(192, 128), test_cfg=ConfigDict(
        score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
        max_per_img=100))
    pred = torch.zeros(1, 2, 2, 13)
    pred[0, 0, 1, 5:10] = torch.tensor([.25, .75, .5, .6, .8])
    pred[0, 0, 1, 10:] = torch.tensor([0., 0., .9])
    result = head.predict_by_feat(pred, [meta], rescale=True)[0]
    assert result.labels.tolist() == [2]
    assert result.scores.tolist() == pytest.approx([0.72])
    assert result.bboxes[0].tolist() == pytest.approx(
        [150, 19.5, 225, 55.5], abs=1e-3)
