# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""AP per class of saved detections, computed the way mmdet's ``VOCMetric``
computes the mAP it reports (mmdet's ``eval_map`` on the same inputs)."""
from typing import Dict, List, Sequence

import numpy as np

from .detections import as_detections, as_ground_truth


def _voc_annotation(gt) -> dict:
    """``eval_map``'s annotation: boxes and labels, the ``ignore_flag``
    (VOC 'difficult') ones apart, as mmdet's ``LoadAnnotations`` splits a
    dataset's data info."""
    if isinstance(gt, dict) and 'instances' in gt:
        kept = [i for i in gt['instances'] if not i.get('ignore_flag', 0)]
        ignored = [i for i in gt['instances'] if i.get('ignore_flag', 0)]

        def boxes(items):
            return np.array([i['bbox'] for i in items],
                            dtype=np.float32).reshape(-1, 4)

        def labels(items):
            return np.array([i['bbox_label'] for i in items], dtype=np.int64)

        return dict(bboxes=boxes(kept), labels=labels(kept),
                    bboxes_ignore=boxes(ignored),
                    labels_ignore=labels(ignored))
    bboxes, labels = as_ground_truth(gt)
    return dict(bboxes=bboxes.astype(np.float32), labels=labels,
                bboxes_ignore=np.zeros((0, 4), np.float32),
                labels_ignore=np.zeros(0, np.int64))


def class_average_precision(det_results: Sequence,
                            gt_results: Sequence,
                            class_names: Sequence[str],
                            iou_thr: float = 0.5,
                            eval_mode: str = '11points') -> Dict[str, object]:
    """AP, recall and counts per class of detections on a test set.

    Args:
        det_results (Sequence): Per image, predictions as accepted by
            :func:`as_detections` (boxes in original image pixels).
        gt_results (Sequence): Per image, a dataset's data info (with
            ``instances``) or ground truth as accepted by
            :func:`as_ground_truth`.
        class_names (Sequence[str]): Name of every label.
        iou_thr (float): IoU of a true positive. Defaults to 0.5.
        eval_mode (str): '11points' (VOC2007) or 'area'. Defaults to
            '11points'.

    Returns:
        dict: ``mAP`` (float) and ``classes``, a list with per class
        ``name``, ``ap``, ``recall`` (at the last detection), ``num_gts``
        and ``num_dets``.
    """
    from mmdet.evaluation.functional import eval_map
    if len(det_results) != len(gt_results):
        raise ValueError('det_results and gt_results must be of equal '
                         f'length, got {len(det_results)} and '
                         f'{len(gt_results)}')
    detections: List[List[np.ndarray]] = []
    for result in det_results:
        bboxes, scores, labels = as_detections(result)
        detections.append([
            np.hstack([bboxes[labels == k], scores[labels == k, None]])
            for k in range(len(class_names))
        ])
    annotations = [_voc_annotation(gt) for gt in gt_results]
    mean_ap, per_class = eval_map(
        detections,
        annotations,
        iou_thr=iou_thr,
        eval_mode=eval_mode,
        logger='silent',
        use_legacy_coordinate=True)
    classes = []
    for name, result in zip(class_names, per_class):
        recall = np.asarray(result['recall']).reshape(-1)
        classes.append(
            dict(name=name,
                 ap=float(result['ap']),
                 recall=float(recall[-1]) if recall.size else 0.0,
                 num_gts=int(result['num_gts']),
                 num_dets=int(result['num_dets'])))
    return dict(mAP=float(mean_ap), classes=classes)
