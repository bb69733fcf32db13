# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Detections drawn on test images, alone (:func:`draw_detection_grid`) or
beside the ground truth (:func:`draw_comparison_grid`). OpenCV is imported
when an image is drawn, not on import. Images are BGR ``uint8`` arrays as
``cv2.imread`` gives them; colours are BGR."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

# matplotlib's tab10 per class index.
PALETTE = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214),
           (189, 103, 148), (75, 86, 140), (194, 119, 227), (127, 127, 127),
           (34, 189, 188), (207, 190, 23)]
GT_COLOUR = (0, 170, 0)  # green
CORRECT_COLOUR = (210, 110, 0)  # blue: right class, IoU >= iou_thr
WRONG_COLOUR = (0, 0, 220)  # red: wrong class, poor box or duplicate
FONT_SCALE = 0.4


def _numpy(value) -> np.ndarray:
    if hasattr(value, 'tensor'):  # mmdet's HorizontalBoxes
        value = value.tensor
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def as_detections(result) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(bboxes [K, 4], scores [K], labels [K])`` as numpy from a
    ``DetDataSample`` (its ``pred_instances``), an ``InstanceData``, a dict
    or a ``(bboxes, scores, labels)`` tuple."""
    if hasattr(result, 'pred_instances'):
        result = result.pred_instances
    elif isinstance(result, dict) and 'pred_instances' in result:
        result = result['pred_instances']
    if isinstance(result, (tuple, list)):
        bboxes, scores, labels = result
    else:
        bboxes, scores, labels = (result['bboxes'], result['scores'],
                                  result['labels'])
    return (_numpy(bboxes).reshape(-1, 4).astype(float),
            _numpy(scores).reshape(-1).astype(float),
            _numpy(labels).reshape(-1).astype(int))


def as_ground_truth(gt) -> Tuple[np.ndarray, np.ndarray]:
    """``(bboxes [G, 4], labels [G])`` from a ``DetDataSample`` (its
    ``gt_instances``), an ``InstanceData`` or dict with ``bboxes`` and
    ``labels``, a dataset's data info (``instances`` with ``bbox`` and
    ``bbox_label``; ``ignore_flag`` ones left out) or a tuple."""
    if hasattr(gt, 'gt_instances'):
        gt = gt.gt_instances
    elif isinstance(gt, dict) and 'gt_instances' in gt:
        gt = gt['gt_instances']
    if isinstance(gt, dict) and 'instances' in gt:
        kept = [i for i in gt['instances'] if not i.get('ignore_flag', 0)]
        bboxes = [i['bbox'] for i in kept]
        labels = [i['bbox_label'] for i in kept]
    elif isinstance(gt, (tuple, list)):
        bboxes, labels = gt
    else:
        bboxes, labels = gt['bboxes'], gt['labels']
    return (_numpy(bboxes).reshape(-1, 4).astype(float),
            _numpy(labels).reshape(-1).astype(int))


def box_iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of every box in ``boxes [N, 4]`` with every one in
    ``others [M, 4]`` (x1, y1, x2, y2): ``[N, M]``, in VOC's pixel
    convention: a box spans ``x2 - x1 + 1`` pixels, as mmdet's VOC mAP
    (``eval_map(..., use_legacy_coordinate=True)``) counts it."""
    top_left = np.maximum(boxes[:, None, :2], others[None, :, :2])
    bottom_right = np.minimum(boxes[:, None, 2:], others[None, :, 2:])
    overlap = np.clip(bottom_right - top_left + 1, 0, None).prod(-1)
    area = np.clip(boxes[:, 2:] - boxes[:, :2] + 1, 0, None).prod(-1)
    other_area = np.clip(others[:, 2:] - others[:, :2] + 1, 0, None).prod(-1)
    union = area[:, None] + other_area[None, :] - overlap
    return overlap / np.maximum(union, 1e-9)


def match_detections(bboxes: np.ndarray, scores: np.ndarray,
                     labels: np.ndarray, gt_bboxes: np.ndarray,
                     gt_labels: np.ndarray,
                     iou_thr: float = 0.5) -> np.ndarray:
    """Which detections are correct, as VOC counts them: from the highest
    score down, a detection is correct if its best-overlapping ground-truth
    box of the same class has IoU >= ``iou_thr`` and is not yet taken; if
    an earlier detection took that box, it is a duplicate, even when
    another box of the class overlaps it enough.

    Returns:
        np.ndarray: ``[K]`` bool, in the order of ``bboxes``.
    """
    correct = np.zeros(len(bboxes), dtype=bool)
    if len(bboxes) == 0 or len(gt_bboxes) == 0:
        return correct
    ious = box_iou(bboxes, gt_bboxes)  # [K, G]
    taken = np.zeros(len(gt_bboxes), dtype=bool)
    for index in np.argsort(-scores, kind='stable'):
        candidates = np.where(gt_labels == labels[index])[0]
        if candidates.size == 0:
            continue
        best = candidates[np.argmax(ious[index, candidates])]
        if ious[index, best] >= iou_thr and not taken[best]:
            correct[index] = True
            taken[best] = True
    return correct


def _to_bgr(image: Union[str, np.ndarray]) -> np.ndarray:
    import cv2
    if isinstance(image, str):
        path, image = image, cv2.imread(image)
        if image is None:
            raise FileNotFoundError(f'cannot read image {path}')
    image = np.ascontiguousarray(image)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


def _enlarge(image: np.ndarray, scale: float) -> np.ndarray:
    import cv2
    height, width = image.shape[:2]
    return cv2.resize(image, (int(round(width * scale)),
                              int(round(height * scale))),
                      interpolation=cv2.INTER_LINEAR)


def _draw_box(canvas: np.ndarray, box: np.ndarray, colour: tuple,
              text: str, thickness: int = 1) -> None:
    """Rectangle ``box`` (canvas pixels) with ``text`` on a filled label
    above it, or inside it when the box touches the top."""
    import cv2
    x1, y1, x2, y2 = np.rint(np.clip(
        box, 0, [canvas.shape[1] - 1, canvas.shape[0] - 1] * 2)).astype(int)
    cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
    (text_w, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX,
                                          FONT_SCALE, 1)
    top = y1 - text_h - 3 if y1 >= text_h + 3 else y1 + 1
    cv2.rectangle(canvas, (x1, top), (x1 + text_w + 2, top + text_h + 2),
                  colour, -1)
    cv2.putText(canvas, text, (x1 + 1, top + text_h),
                cv2.FONT_HERSHEY_SIMPLEX, FONT_SCALE, (255, 255, 255), 1,
                cv2.LINE_AA)


def _class_name(class_names: Sequence[str], label: int) -> str:
    return class_names[label] if 0 <= label < len(class_names) else str(
        label)


def draw_detections(image: np.ndarray, result, class_names: Sequence[str],
                    score_thr: float = 0.3,
                    scale: float = 2.0,
                    colours: Optional[Sequence[tuple]] = None,
                    thickness: int = 1) -> np.ndarray:
    """Draw the detections scoring at least ``score_thr`` on a copy of a
    BGR ``image`` enlarged ``scale`` times; labels read 'name score'.
    Colour per class from :data:`PALETTE`, or ``colours[k]`` for the k-th
    detection."""
    canvas = _enlarge(_to_bgr(image), scale)
    bboxes, scores, labels = as_detections(result)
    # Draw the lowest scores first so the best boxes end up on top.
    for index in np.argsort(scores, kind='stable'):
        if scores[index] < score_thr:
            continue
        label = int(labels[index])
        colour = colours[index] if colours is not None else PALETTE[
            label % len(PALETTE)]
        _draw_box(canvas, bboxes[index] * scale, colour,
                  f'{_class_name(class_names, label)} {scores[index]:.2f}',
                  thickness)
    return canvas


def draw_ground_truth(image: np.ndarray, gt, class_names: Sequence[str],
                      scale: float = 2.0,
                      thickness: int = 2) -> np.ndarray:
    """Draw the ground-truth boxes, labelled with their class, in
    :data:`GT_COLOUR` on a copy of ``image`` enlarged ``scale`` times."""
    canvas = _enlarge(_to_bgr(image), scale)
    bboxes, labels = as_ground_truth(gt)
    for box, label in zip(bboxes, labels):
        _draw_box(canvas, box * scale, GT_COLOUR,
                  _class_name(class_names, int(label)), thickness)
    return canvas


def tile(cells: Sequence[np.ndarray], num_cols: int,
         gap: int = 4) -> np.ndarray:
    """Cells in rows of ``num_cols``, white between and around them."""
    num_cols = min(num_cols, len(cells))
    num_rows = -(-len(cells) // num_cols)
    cell_h = max(c.shape[0] for c in cells)
    cell_w = max(c.shape[1] for c in cells)
    grid = np.full((num_rows * (cell_h + gap) - gap,
                    num_cols * (cell_w + gap) - gap, 3), 255, np.uint8)
    for index, cell in enumerate(cells):
        top = (index // num_cols) * (cell_h + gap)
        left = (index % num_cols) * (cell_w + gap)
        grid[top:top + cell.shape[0], left:left + cell.shape[1]] = cell
    return grid


def _write(out_file: str, image: np.ndarray) -> None:
    import cv2
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    if not cv2.imwrite(out_file, image):
        raise OSError(f'could not write {out_file}')


def _check_lengths(images: Sequence, *others: Sequence) -> None:
    if not images or any(len(other) != len(images) for other in others):
        raise ValueError('images and det_results must be non-empty and of '
                         f'equal length, got {len(images)} and '
                         f'{[len(o) for o in others]}')


def draw_detection_grid(images: Sequence[Union[str, np.ndarray]],
                        det_results: Sequence,
                        class_names: Sequence[str],
                        out_file: str,
                        score_thr: float = 0.3,
                        num_cols: int = 4,
                        scale: float = 2.0,
                        gap: int = 4) -> np.ndarray:
    """Draw detections on several images and tile them into one PNG.

    Args:
        images (Sequence[str | np.ndarray]): Image paths or BGR arrays.
        det_results (Sequence): Per image a ``DetDataSample`` (its
            ``pred_instances``, boxes in original image pixels), an
            ``InstanceData``/dict with ``bboxes``, ``scores``, ``labels``, or
            a ``(bboxes, scores, labels)`` tuple of arrays/tensors.
        class_names (Sequence[str]): Name of every label.
        out_file (str): PNG to write.
        score_thr (float): Lowest score drawn. Defaults to 0.3.
        num_cols (int): Images per row. Defaults to 4.
        scale (float): Enlargement of every image. Defaults to 2.0.
        gap (int): White pixels between cells. Defaults to 4.

    Returns:
        np.ndarray: The grid, BGR ``[rows * (h + gap) - gap, ...]``.
    """
    _check_lengths(images, det_results)
    cells = [
        draw_detections(image, result, class_names, score_thr, scale)
        for image, result in zip(images, det_results)
    ]
    grid = tile(cells, num_cols, gap)
    _write(out_file, grid)
    return grid


def _legend(width: int, score_thr: float, iou_thr: float,
            row_height: int = 20) -> np.ndarray:
    """A white band with a swatch and a text for each colour, in as many
    rows as ``width`` needs."""
    import cv2
    entries = [(GT_COLOUR, 'ground truth (left)'),
               (CORRECT_COLOUR, f'correct: class right, IoU >= {iou_thr:g}'),
               (WRONG_COLOUR, 'wrong class, poor box or duplicate'),
               (None, f'predictions (right) with score >= {score_thr:g}')]
    placed, x, row = [], 6, 0
    for colour, text in entries:
        (text_w, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX,
                                         FONT_SCALE, 1)
        entry_w = text_w + (16 if colour is not None else 0)
        if x > 6 and x + entry_w > width:
            x, row = 6, row + 1
        placed.append((x, row, colour, text))
        x += entry_w + 14
    band = np.full(((row + 1) * row_height + 6, width, 3), 255, np.uint8)
    for x, row, colour, text in placed:
        top = row * row_height
        if colour is not None:
            cv2.rectangle(band, (x, top + 7), (x + 12, top + 19), colour, -1)
            x += 16
        cv2.putText(band, text, (x, top + 17), cv2.FONT_HERSHEY_SIMPLEX,
                    FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return band


def draw_comparison(image: Union[str, np.ndarray], result, gt,
                    class_names: Sequence[str],
                    score_thr: float = 0.3,
                    iou_thr: float = 0.5,
                    scale: float = 2.0,
                    gap: int = 2) -> Tuple[np.ndarray, dict]:
    """Ground truth (left) beside the predictions (right) of one image.

    Predictions scoring at least ``score_thr`` are blue when
    :func:`match_detections` counts them correct at ``iou_thr`` against the
    ground truth, red otherwise; labels read 'name score'.

    Returns:
        tuple[np.ndarray, dict]: The pair, ``[h, 2 * w + gap, 3]``, and
        the counts ``num_gts``, ``num_shown``, ``num_correct``.
    """
    image = _to_bgr(image)
    bboxes, scores, labels = as_detections(result)
    gt_bboxes, gt_labels = as_ground_truth(gt)
    shown = scores >= score_thr
    correct = match_detections(bboxes[shown], scores[shown], labels[shown],
                               gt_bboxes, gt_labels, iou_thr)
    colours = [WRONG_COLOUR] * len(bboxes)
    for index, is_correct in zip(np.where(shown)[0], correct):
        colours[index] = CORRECT_COLOUR if is_correct else WRONG_COLOUR
    left = draw_ground_truth(image, (gt_bboxes, gt_labels), class_names,
                             scale)
    right = draw_detections(image, (bboxes, scores, labels), class_names,
                            score_thr, scale, colours, thickness=2)
    pair = np.full((left.shape[0], 2 * left.shape[1] + gap, 3), 255,
                   np.uint8)
    pair[:, :left.shape[1]] = left
    pair[:, left.shape[1] + gap:] = right
    counts = dict(num_gts=len(gt_bboxes), num_shown=int(shown.sum()),
                  num_correct=int(correct.sum()))
    return pair, counts


def draw_comparison_grid(images: Sequence[Union[str, np.ndarray]],
                         det_results: Sequence,
                         gt_results: Sequence,
                         class_names: Sequence[str],
                         out_file: str,
                         score_thr: float = 0.3,
                         iou_thr: float = 0.5,
                         pairs_per_row: int = 2,
                         scale: float = 2.0,
                         gap: int = 10) -> Tuple[np.ndarray, List[dict]]:
    """Ground truth beside predictions for several images, tiled under a
    legend into one PNG (see :func:`draw_comparison`).

    Args:
        images (Sequence[str | np.ndarray]): Image paths or BGR arrays.
        det_results (Sequence): Per image, predictions as accepted by
            :func:`as_detections` (boxes in original image pixels).
        gt_results (Sequence): Per image, ground truth as accepted by
            :func:`as_ground_truth`.
        class_names (Sequence[str]): Name of every label.
        out_file (str): PNG to write.
        score_thr (float): Lowest score drawn. Defaults to 0.3.
        iou_thr (float): IoU at which a prediction counts as correct.
            Defaults to 0.5.
        pairs_per_row (int): Images (pairs of panels) per row.
            Defaults to 2.
        scale (float): Enlargement of every image. Defaults to 2.0.
        gap (int): White pixels between pairs. Defaults to 10.

    Returns:
        tuple[np.ndarray, list[dict]]: The PNG's pixels (BGR) and the
        counts of every image.
    """
    _check_lengths(images, det_results, gt_results)
    pairs, counts = [], []
    for image, result, gt in zip(images, det_results, gt_results):
        pair, count = draw_comparison(image, result, gt, class_names,
                                      score_thr, iou_thr, scale)
        pairs.append(pair)
        counts.append(count)
    grid = tile(pairs, pairs_per_row, gap)
    legend = _legend(grid.shape[1], score_thr, iou_thr)
    picture = np.concatenate([legend, grid], axis=0)
    _write(out_file, picture)
    return picture, counts
