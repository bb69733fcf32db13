# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Detections drawn alone and beside the ground truth: the saved PNG's
pixels show each box in its colour where it belongs, and VOC's matching
decides which predictions count as correct."""
import cv2
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

from mmdet.structures import DetDataSample
from mmdet_slf.visualization.detections import box_iou
from mmdet_slf.visualization import (CORRECT_COLOUR, GT_COLOUR, PALETTE,
                                     WRONG_COLOUR, as_detections,
                                     as_ground_truth, draw_comparison,
                                     draw_comparison_grid,
                                     draw_detection_grid, draw_detections,
                                     match_detections)


def test_detection_grid_draws_boxes(tmp_path):
    images = [np.full((40, 50, 3), 200, np.uint8),
              np.full((30, 20, 3), 100, np.uint8),
              np.full((40, 50, 3), 150, np.uint8)]
    sample = DetDataSample()
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor([[10., 20., 30., 35.], [2., 2., 8., 8.]]),
        scores=torch.tensor([0.9, 0.1]),
        labels=torch.tensor([3, 1]))
    results = [sample,
               dict(bboxes=np.array([[2., 3., 12., 25.]]),
                    scores=np.array([0.5]), labels=np.array([7])),
               (np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))]
    out = str(tmp_path / 'grid.png')
    grid = draw_detection_grid(images, results, [str(i) for i in range(10)],
                               out, score_thr=0.3, num_cols=2, scale=2.0,
                               gap=4)
    assert grid.shape == (2 * 80 + 4, 2 * 100 + 4, 3)
    assert np.array_equal(cv2.imread(out), grid)
    # Box of class 3 at 2x: left edge x=20, y from 40 to 70 (below label).
    assert (grid[50:70, 20] == PALETTE[3]).all()
    assert (grid[70, 30:60] == PALETTE[3]).all()
    # Score 0.1 < 0.3: the class-1 box is not drawn.
    assert not (grid[:80, :100] == PALETTE[1]).all(-1).any()
    # Second image in the second column, box of class 7 at 2x.
    left = 100 + 4
    assert (grid[20:50, left + 4] == PALETTE[7]).all()
    assert (grid[50, left + 10:left + 24] == PALETTE[7]).all()
    # The 20x30 image leaves its cell's padding white; the third image, no
    # detections, is unchanged.
    assert (grid[:60, left + 40:left + 100] == 255).all()
    assert (grid[84:, :100] == 150).all()
    with pytest.raises(ValueError, match='equal length'):
        draw_detection_grid(images, results[:2], ['a'], out)


def test_match_detections_follows_voc():
    gt_bboxes = np.array([[0., 0., 10., 10.], [20., 20., 30., 30.]])
    gt_labels = np.array([0, 1])
    bboxes = np.array([
        [0., 0., 10., 9.],  # IoU 0.9 with gt 0, class 0, score 0.6
        [0., 0., 10., 8.],  # IoU 0.8 with gt 0, class 0, score 0.9
        [20., 20., 30., 30.],  # exact gt 1 box but class 0
        [20., 20., 30., 24.],  # class 1, IoU 0.4 < 0.5
    ])
    scores = np.array([0.6, 0.9, 0.8, 0.7])
    labels = np.array([0, 0, 0, 1])
    correct = match_detections(bboxes, scores, labels, gt_bboxes, gt_labels)
    # The higher score takes gt 0 though the other box fits it better; the
    # other is a duplicate.
    assert correct.tolist() == [False, True, False, False]
    assert match_detections(bboxes, scores, labels, gt_bboxes, gt_labels,
                            iou_thr=0.3).tolist() == [False, True, False,
                                                      True]
    assert match_detections(bboxes, scores, labels, np.zeros((0, 4)),
                            np.zeros(0, int)).tolist() == [False] * 4


def test_match_detections_counts_pixels_as_the_voc_metric_does():
    """VOC boxes span x2 - x1 + 1 pixels (mmdet's VOC mAP uses
    use_legacy_coordinate=True): IoU 105 / 210 = 0.5 here, a true positive
    for the metric, and drawn as correct. Without the +1 it is 84 / 182."""
    gt_bboxes = np.array([[10., 10., 17., 24.]])
    bboxes = np.array([[11., 10., 23., 24.]])
    assert box_iou(bboxes, gt_bboxes)[0, 0] == pytest.approx(0.5)
    assert match_detections(bboxes, np.array([0.9]), np.array([0]),
                            gt_bboxes, np.array([0])).tolist() == [True]
    from mmdet.evaluation.functional import eval_map
    mean_ap, _ = eval_map(
        [[bboxes_with_score] for bboxes_with_score in
         [np.array([[11., 10., 23., 24., 0.9]], dtype=np.float32)]],
        [dict(bboxes=gt_bboxes.astype(np.float32), labels=np.array([0]))],
        iou_thr=0.5, use_legacy_coordinate=True, logger='silent')
    assert mean_ap == pytest.approx(1.0)


def test_duplicate_stays_wrong_beside_a_free_box():
    """A second detection whose best box is taken is a duplicate, as in
    mmdet's VOC evaluation, though it overlaps a free box of its class by
    more than the threshold."""
    from mmdet.evaluation.functional.mean_ap import tpfp_default
    gt_bboxes = np.array([[0., 0., 10., 10.], [4., 0., 14., 10.]])
    gt_labels = np.array([0, 0])
    bboxes = np.array([
        [0., 0., 10., 10.],  # exactly gt 0
        [1., 0., 11., 10.],  # IoU 0.82 with gt 0 (taken), 0.54 with gt 1
    ])
    scores = np.array([0.9, 0.8])
    correct = match_detections(bboxes, scores, np.array([0, 0]), gt_bboxes,
                               gt_labels)
    assert correct.tolist() == [True, False]
    tp, fp = tpfp_default(
        np.hstack([bboxes, scores[:, None]]).astype(np.float32),
        gt_bboxes.astype(np.float32), np.zeros((0, 4), np.float32), 0.5)
    assert tp[0].astype(bool).tolist() == correct.tolist()
    assert fp[0].astype(bool).tolist() == (~correct).tolist()


def test_ground_truth_from_data_info_skips_ignored():
    info = dict(img_path='a.jpg', instances=[
        dict(bbox=[1, 2, 3, 4], bbox_label=5, ignore_flag=0),
        dict(bbox=[5, 6, 7, 8], bbox_label=6, ignore_flag=1)])
    bboxes, labels = as_ground_truth(info)
    assert bboxes.tolist() == [[1, 2, 3, 4]] and labels.tolist() == [5]
    sample = DetDataSample()
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[1., 2, 3, 4]]),
                                       labels=torch.tensor([2]))
    assert as_ground_truth(sample)[1].tolist() == [2]


def test_comparison_grid_pixels(tmp_path):
    image = np.full((60, 80, 3), 128, np.uint8)
    gt = dict(bboxes=np.array([[10., 12., 40., 50.]]), labels=np.array([2]))
    predictions = dict(
        bboxes=np.array([[11., 13., 41., 49.],   # correct
                         [50., 5., 75., 30.],    # nothing there: wrong
                         [2., 35., 8., 55.]]),   # below the threshold
        scores=np.array([0.9, 0.8, 0.1]),
        labels=np.array([2, 5, 7]))
    out = str(tmp_path / 'detections.png')
    picture, counts = draw_comparison_grid(
        [image, image], [predictions, predictions], [gt, gt],
        [str(i) for i in range(10)], out, score_thr=0.3, pairs_per_row=2,
        scale=2.0, gap=10)
    saved = cv2.imread(out)
    assert np.array_equal(saved, picture)
    # Legend, then two pairs of 160-wide panels (2 px apart), 10 px apart.
    legend_height = saved.shape[0] - 120
    assert legend_height in (26, 46)  # its four entries in one or two rows
    assert saved.shape[1:] == (2 * (2 * 160 + 2) + 10, 3)
    assert counts == [dict(num_gts=1, num_shown=2, num_correct=1)] * 2
    legend, panels = saved[:legend_height], saved[legend_height:]
    for colour in (GT_COLOUR, CORRECT_COLOUR, WRONG_COLOUR):
        assert (legend == colour).all(-1).any()
    # Ground truth, left panel: green left edge at x = 2 * 10, below its
    # label, and a green bottom edge at y = 2 * 50.
    assert (panels[60:95, 20] == GT_COLOUR).all()
    assert (panels[100, 30:75] == GT_COLOUR).all()
    # Predictions, right panel (x offset 162): the correct box in blue, the
    # wrong one in red, the low-score one not drawn.
    right = panels[:, 162:322]
    assert (right[60:95, 22] == CORRECT_COLOUR).all()
    assert (right[30:55, 100] == WRONG_COLOUR).all()
    assert (right[75:105, 4] == 128).all()
    assert not (right == GT_COLOUR).all(-1).any()
    # No prediction drawn on the ground-truth panel.
    left = panels[:, :160]
    assert not (left == CORRECT_COLOUR).all(-1).any()
    assert not (left == WRONG_COLOUR).all(-1).any()
    # The second pair repeats the first.
    assert np.array_equal(panels[:, 332:], panels[:, :322])
    with pytest.raises(ValueError, match='equal length'):
        draw_comparison_grid([image], [predictions], [], ['a'], out)


def test_comparison_reads_image_files(tmp_path):
    path = str(tmp_path / 'digit.jpg')
    cv2.imwrite(path, np.full((32, 32, 3), 90, np.uint8))
    picture, counts = draw_comparison_grid(
        [path], [(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))],
        [dict(img_path=path, instances=[
            dict(bbox=[4, 4, 20, 20], bbox_label=1, ignore_flag=0)])],
        ['zero', 'one'], str(tmp_path / 'out.png'), scale=1.0)
    assert counts == [dict(num_gts=1, num_shown=0, num_correct=0)]
    panel = picture[-32:]
    assert (panel[10:20, 4] == GT_COLOUR).all()
    with pytest.raises(FileNotFoundError, match='cannot read image'):
        draw_comparison_grid([str(tmp_path / 'missing.jpg')], [()], [()],
                             ['a'], str(tmp_path / 'x.png'))


def _drawn(picture, label):
    """Whether a box of class ``label`` is drawn: its palette colour fills
    the label of every drawn box and is absent from a grey image."""
    return bool((picture == PALETTE[label]).all(-1).any())


def test_a_score_equal_to_the_threshold_is_drawn_and_counted():
    """'Lowest score drawn': a prediction scoring exactly score_thr (0.5,
    exact in binary) is drawn and counted as shown, one just below (0.49)
    is not."""
    image = np.full((20, 20, 3), 128, np.uint8)
    box = np.array([[2., 2., 9., 9.]])
    on = (box, np.array([0.5]), np.array([3]))
    below = (box, np.array([0.49]), np.array([4]))
    assert _drawn(draw_detections(image, on, ['a'] * 5, score_thr=0.5), 3)
    assert not _drawn(draw_detections(image, below, ['a'] * 5,
                                      score_thr=0.5), 4)
    gt = (np.array([[2., 2., 9., 9.]]), np.array([3]))
    _, counts = draw_comparison(image, on, gt, ['a'] * 5, score_thr=0.5)
    assert counts == dict(num_gts=1, num_shown=1, num_correct=1)


def test_iou_thr_reaches_the_counts(tmp_path):
    """gt [0, 0, 9, 9] spans 10 x 10 = 100 pixels; the prediction
    [0, 0, 9, 3] spans 10 x 4 = 40 pixels inside it: IoU 40 / 100 = 0.4.
    Wrong at the default iou_thr 0.5, correct at 0.3, both for one image
    and through the grid."""
    image = np.full((20, 20, 3), 128, np.uint8)
    pred = (np.array([[0., 0., 9., 3.]]), np.array([0.9]), np.array([1]))
    gt = (np.array([[0., 0., 9., 9.]]), np.array([1]))
    assert box_iou(pred[0], gt[0])[0, 0] == pytest.approx(0.4)
    names = ['a', 'b']
    for iou_thr, num_correct in ((0.5, 0), (0.3, 1)):
        _, counts = draw_comparison(image, pred, gt, names, iou_thr=iou_thr)
        assert counts['num_correct'] == num_correct, iou_thr
        _, counts = draw_comparison_grid([image], [pred], [gt], names,
                                         str(tmp_path / 'a.png'),
                                         iou_thr=iou_thr)
        assert counts[0]['num_correct'] == num_correct, iou_thr
    _, counts = draw_comparison_grid([image], [pred], [gt], names,
                                     str(tmp_path / 'b.png'))
    assert counts == [dict(num_gts=1, num_shown=1, num_correct=0)]


def test_hidden_predictions_take_no_ground_truth_box():
    """Only predictions at score >= score_thr are matched: the exact box
    of the right class at score 0.1 is not drawn, so it takes nothing and
    is not counted; the shown one of the wrong class is wrong. 0 of 1."""
    image = np.full((20, 20, 3), 128, np.uint8)
    pred = (np.array([[2., 2., 12., 12.], [2., 2., 12., 12.]]),
            np.array([0.9, 0.1]), np.array([0, 1]))
    gt = (np.array([[2., 2., 12., 12.]]), np.array([1]))
    _, counts = draw_comparison(image, pred, gt, ['a', 'b'], score_thr=0.3)
    assert counts == dict(num_gts=1, num_shown=1, num_correct=0)


def test_data_info_without_ignore_flag_keeps_its_boxes():
    """Instances that carry no ignore_flag are kept (not ignored), as in
    mmdet's data infos where the key is optional."""
    info = dict(instances=[dict(bbox=[1, 2, 3, 4], bbox_label=5),
                           dict(bbox=[5, 6, 7, 8], bbox_label=6,
                                ignore_flag=1)])
    bboxes, labels = as_ground_truth(info)
    assert bboxes.tolist() == [[1, 2, 3, 4]] and labels.tolist() == [5]


def test_predicted_boxes_keep_their_fractions():
    """Boxes come back as given (1.5 stays 1.5): a sub-pixel box decides
    the IoU. Here gt [0, 0, 9, 9] (100 px) and [0, 0, 9, 3.6] span
    10 x 4.6 = 46 px: IoU 0.46, wrong at 0.45 only if truncated to 3
    (IoU 0.4)."""
    bboxes, scores, labels = as_detections(
        (torch.tensor([[1.5, 2.25, 7.75, 9.5]]), torch.tensor([0.7]),
         torch.tensor([2])))
    assert bboxes.tolist() == [[1.5, 2.25, 7.75, 9.5]]
    assert scores.tolist() == [pytest.approx(0.7)] and labels.tolist() == [2]
    image = np.full((20, 20, 3), 128, np.uint8)
    pred = (np.array([[0., 0., 9., 3.6]]), np.array([0.9]), np.array([0]))
    gt = (np.array([[0., 0., 9., 9.]]), np.array([0]))
    _, counts = draw_comparison(image, pred, gt, ['a'], iou_thr=0.45)
    assert counts['num_correct'] == 1


def test_detection_grid_threshold_and_columns(tmp_path):
    """score_thr defaults to 0.3 (a 0.35 box is drawn, a 0.25 one is not)
    and is passed on (at 0.2 the 0.25 box is drawn too); one image with
    the default 4 columns gives a grid of that one cell, 2 x 20 = 40 px
    square, not 4 x 40 + 3 x 4 = 172 px wide."""
    image = np.full((20, 20, 3), 128, np.uint8)
    pred = (np.array([[2., 2., 9., 9.], [10., 10., 18., 18.]]),
            np.array([0.35, 0.25]), np.array([3, 4]))
    out = str(tmp_path / 'grid.png')
    grid = draw_detection_grid([image], [pred], ['a'] * 5, out)
    assert grid.shape == (40, 40, 3)
    assert _drawn(grid, 3) and not _drawn(grid, 4)
    grid = draw_detection_grid([image], [pred], ['a'] * 5, out,
                               score_thr=0.2)
    assert _drawn(grid, 3) and _drawn(grid, 4)


def test_no_images_is_refused(tmp_path):
    """An empty list is refused with the reason, not a division by zero
    while tiling."""
    with pytest.raises(ValueError, match='non-empty'):
        draw_detection_grid([], [], ['a'], str(tmp_path / 'a.png'))
    with pytest.raises(ValueError, match='non-empty'):
        draw_comparison_grid([], [], [], ['a'], str(tmp_path / 'b.png'))
