# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""YOLOv1's target assignment (Redmon et al., CVPR 2016, Sec. 2.2): the cell
holding a box centre is responsible for it, and of its ``B`` predictors the
one with the highest IoU with the box. As in darknet, a box that no
predictor overlaps goes to the nearest one, and a box under 0.005 of the
input wide or high is skipped."""
from typing import List, Sequence, Tuple

import torch
from mmdet.structures.bbox import get_box_tensor
from mmengine.structures import InstanceData
from torch import Tensor

# darknet's fill_truth_region skips a box under 0.005 of the image in width
# or height: it shows nothing to learn, yet would claim its cell.
MIN_BOX_SIZE = 0.005
# Which predictor takes a box that none of its cell's predictors overlaps:
# 'rmse', darknet's, the one nearest in (x, y, w, h); 'first', predictor 0.
NO_OVERLAP_RULES = ('rmse', 'first')


def check_no_overlap(no_overlap: str) -> str:
    if no_overlap not in NO_OVERLAP_RULES:
        raise ValueError(f'no_overlap must be one of {NO_OVERLAP_RULES}, got '
                         f'{no_overlap!r}')
    return no_overlap


def cxcywh_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-9) -> Tensor:
    """Element-wise IoU of broadcastable ``(cx, cy, w, h)`` boxes ``[..., 4]``.

    ``eps`` bounds the union away from zero, so degenerate (zero-area) boxes
    give IoU 0 instead of NaN.
    """
    half1, half2 = boxes1[..., 2:] / 2, boxes2[..., 2:] / 2
    top_left = torch.maximum(boxes1[..., :2] - half1, boxes2[..., :2] - half2)
    bottom_right = torch.minimum(boxes1[..., :2] + half1,
                                 boxes2[..., :2] + half2)
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    union = boxes1[..., 2:].prod(-1) + boxes2[..., 2:].prod(-1) - inter
    return inter / union.clamp(min=eps)


def yolov1_targets(pred: Tensor,
                   gt_instances: InstanceData,
                   img_meta: dict,
                   num_boxes: int,
                   num_classes: int,
                   rescore: bool = True,
                   no_overlap: str = 'rmse') -> Tuple[Tensor, ...]:
    """Targets of one image from its detached prediction ``[S, S, D]``.

    Args:
        pred (Tensor): The image's head output ``[S, S, B * 5 + C]``
            (activated), used to pick the responsible predictor by IoU.
        gt_instances (InstanceData): ``bboxes`` (x1, y1, x2, y2 in input
            pixels) and ``labels``.
        img_meta (dict): Holds ``batch_input_shape``.
        num_boxes (int): Predictors per cell ``B``.
        num_classes (int): Classes ``C``.
        rescore (bool): The obj target is the responsible box's IoU (True,
            the paper) or 1. Defaults to True.
        no_overlap (str): The predictor responsible for a box that none of
            them overlaps (IoU 0 for all): ``'rmse'``, darknet's, the one
            nearest to it in ``(x, y, w, h)`` (image fractions); ``'first'``,
            predictor 0. Defaults to 'rmse'.

    Returns:
        tuple[Tensor]: ``obj_mask [S, S, B]`` (responsible predictors),
        ``cell_mask [S, S]`` (cells holding an object),
        ``box_target [S, S, 4]`` (x, y, sqrt(w), sqrt(h)),
        ``conf_target [S, S, B]`` and ``cls_target [S, S, C]``.
    """
    targets = batch_yolov1_targets(pred[None], [gt_instances], [img_meta],
                                   num_boxes, num_classes, rescore,
                                   no_overlap)
    return tuple(t[0] for t in targets)


def batch_yolov1_targets(pred: Tensor,
                         batch_gt_instances: Sequence[InstanceData],
                         batch_img_metas: Sequence[dict],
                         num_boxes: int,
                         num_classes: int,
                         rescore: bool = True,
                         no_overlap: str = 'rmse') -> Tuple[Tensor, ...]:
    """Targets of a batch from its detached prediction ``[N, S, S, D]``.

    Every box of the batch is assigned in one pass, so the number of
    operators does not grow with the batch, and nothing is read from the
    device: the boxes that lose their cell write into one extra row that is
    dropped, instead of being left out by a boolean mask (which would make
    the host wait for a GPU, several times per image). The arguments are
    those of :func:`yolov1_targets`, one per image, and each output gains a
    leading batch dimension ``N``.
    """
    N, S, B = pred.shape[0], pred.shape[1], num_boxes
    check_no_overlap(no_overlap)
    if len(batch_gt_instances) != N or len(batch_img_metas) != N:
        raise ValueError(
            f'pred has {N} images but got {len(batch_gt_instances)} '
            f'gt_instances and {len(batch_img_metas)} img_metas')
    num_cells = N * S * S
    obj_mask = pred.new_zeros(num_cells + 1, B)
    cell_mask = pred.new_zeros(num_cells + 1)
    box_target = pred.new_zeros(num_cells + 1, 4)
    conf_target = pred.new_zeros(num_cells + 1, B)
    cls_target = pred.new_zeros(num_cells + 1, num_classes)
    targets = (obj_mask, cell_mask, box_target, conf_target, cls_target)
    per_image = [get_box_tensor(gt.bboxes) for gt in batch_gt_instances]
    counts = [len(boxes) for boxes in per_image]
    if sum(counts) == 0:
        return _cell_grids(targets, N, S)
    bboxes = torch.cat(per_image).to(pred)  # [M, 4]
    # An image without boxes may carry labels of any dtype (an empty float
    # tensor would make the whole batch's labels float).
    labels = torch.cat([gt.labels for gt in batch_gt_instances
                        if len(gt.labels)])  # [M]
    _check_labels(labels, num_classes)
    # The image of each box, filled on the device (no copy from the host).
    image = torch.cat([
        labels.new_full((count, ), i) for i, count in enumerate(counts)
        if count
    ])
    height, width = _batch_input_shape(batch_img_metas)
    # Made on the device: new_tensor would copy from the host and wait.
    scale = torch.cat([bboxes.new_full((1, ), width),
                       bboxes.new_full((1, ), height)])
    # Of each box, the part inside the input is trained (the identity for
    # the shipped pipelines, which clip): a centre outside would give cell
    # offsets outside [0, 1]. A box with (almost) nothing inside, under
    # MIN_BOX_SIZE of the input in width or height, takes no cell.
    bboxes = torch.minimum(bboxes.clamp(min=0), scale.repeat(2))
    centres = (bboxes[:, :2] + bboxes[:, 2:]) / 2 / scale  # [M, 2] in 0-1
    sizes = ((bboxes[:, 2:] - bboxes[:, :2]) / scale).clamp(0, 1)
    outside = (sizes < MIN_BOX_SIZE).any(dim=1)
    cells = (centres * S).floor().long().clamp(0, S - 1)  # [M, 2] (c, r)
    # Row of each box's cell in the flat targets, image by image.
    flat = image * (S * S) + cells[:, 1] * S + cells[:, 0]
    # One object per cell (the class probabilities are per cell): the
    # largest box wins, ties go to the later box. (darknet keeps the first
    # box written to the cell after shuffling the boxes: a random one.)
    area = sizes.prod(dim=1)
    index = torch.arange(len(flat), device=flat.device)
    # beaten[i, j]: box j would displace box i from a shared cell (a box
    # outside displaces none)
    beaten = ((area[None, :] > area[:, None]) | (
        (area[None, :] == area[:, None]) &
        (index[None, :] > index[:, None]))) & ~outside[None, :]
    keep = ~((flat[:, None] == flat[None, :]) & beaten).any(dim=1) & ~outside
    # Each winner writes to its own cell, the others to the dropped row.
    dest = torch.where(keep, flat, torch.full_like(flat, num_cells))
    offsets = centres * S - cells.to(centres)  # [M, 2]
    gt_boxes = torch.cat([centres, sizes], dim=1)  # [M, 4]

    cell_preds = pred.reshape(num_cells, -1)[flat, :B * 5].view(-1, B, 5)
    grid_xy = cells.to(pred)[:, None, :]
    pred_boxes = torch.cat([(grid_xy + cell_preds[..., :2]) / S,
                            cell_preds[..., 2:4]**2], dim=-1)
    ious = cxcywh_iou(pred_boxes, gt_boxes[:, None, :])  # [M, B]
    best = ious.argmax(dim=1)  # first predictor on ties
    if no_overlap == 'rmse':
        # darknet: the highest IoU when one is above 0, else the smallest
        # distance (the square root is monotone: left out).
        squared = (pred_boxes - gt_boxes[:, None, :]).square().sum(-1)
        best = torch.where(ious.amax(dim=1) > 0, best, squared.argmin(dim=1))
    obj_mask[dest, best] = 1
    conf_target[dest, best] = ious.gather(
        1, best[:, None])[:, 0] if rescore else 1.0
    cell_mask[dest] = 1
    box_target[dest] = torch.cat([offsets, sizes.sqrt()], dim=1)
    cls_target[dest, labels] = 1
    return _cell_grids(targets, N, S)


def _check_labels(labels: Tensor, num_classes: int) -> None:
    """Refuse labels outside ``[0, num_classes)``: as an index, ``-1`` would
    silently train the last class.

    The check is an asynchronous assertion, so it does not make the host
    wait for a GPU: on the CPU it raises at once, on a GPU the run stops at
    a later kernel launch with this message (as an out-of-range index
    would, without one).
    """
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f'gt labels must be an integer tensor, got '
                        f'{labels.dtype}')
    valid = ((labels >= 0) & (labels < num_classes)).all()
    torch._assert_async(
        valid, f'gt labels must be in [0, num_classes={num_classes}); '
        "check model.bbox_head.num_classes against the dataset's classes")


def _batch_input_shape(batch_img_metas: Sequence[dict]) -> Tuple[int, int]:
    """The padded input shape ``(height, width)`` that the box coordinates
    refer to, the same for every image of a batch."""
    shapes: List[Tuple[int, int]] = [
        tuple(meta['batch_input_shape'][:2]) for meta in batch_img_metas
    ]
    if len(set(shapes)) > 1:
        raise ValueError('the images of one batch must share their '
                         f'batch_input_shape, got {sorted(set(shapes))}')
    return shapes[0]


def _cell_grids(targets: Tuple[Tensor, ...], N: int,
                S: int) -> Tuple[Tensor, ...]:
    """Flat targets ``[N * S * S + 1, ...]`` as grids ``[N, S, S, ...]``,
    the last (dropped) row left out."""
    return tuple(t[:N * S * S].view(N, S, S, *t.shape[1:]) for t in targets)
