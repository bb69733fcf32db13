# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""YOLOv1's target assignment (Redmon et al., CVPR 2016, Sec. 2.2): the cell
holding a box centre is responsible for it, and of its ``B`` predictors the
one with the highest IoU with the box."""
from typing import Tuple

import torch
from mmdet.structures.bbox import get_box_tensor
from mmengine.structures import InstanceData
from torch import Tensor


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


def yolov1_targets(pred: Tensor, gt_instances: InstanceData, img_meta: dict,
                   num_boxes: int, num_classes: int,
                   rescore: bool = True) -> Tuple[Tensor, ...]:
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

    Returns:
        tuple[Tensor]: ``obj_mask [S, S, B]`` (responsible predictors),
        ``cell_mask [S, S]`` (cells holding an object),
        ``box_target [S, S, 4]`` (x, y, sqrt(w), sqrt(h)),
        ``conf_target [S, S, B]`` and ``cls_target [S, S, C]``.
    """
    S, B = pred.shape[0], num_boxes
    # The targets are built flat, one row per cell, plus a last row that
    # takes the writes of the boxes that lose their cell and is dropped at
    # the end. Selecting the winners by a boolean mask instead would read
    # the device several times per image (each mask's true entries), and on
    # a GPU the device then waits for the host.
    num_cells = S * S
    obj_mask = pred.new_zeros(num_cells + 1, B)
    cell_mask = pred.new_zeros(num_cells + 1)
    box_target = pred.new_zeros(num_cells + 1, 4)
    conf_target = pred.new_zeros(num_cells + 1, B)
    cls_target = pred.new_zeros(num_cells + 1, num_classes)
    targets = (obj_mask, cell_mask, box_target, conf_target, cls_target)
    bboxes = get_box_tensor(gt_instances.bboxes).to(pred)
    if bboxes.numel() == 0:
        return _cell_grids(targets, S)
    height, width = img_meta['batch_input_shape'][:2]
    # Made on the device: new_tensor would copy from the host and wait.
    scale = torch.cat([bboxes.new_full((1, ), width),
                       bboxes.new_full((1, ), height)])
    centres = (bboxes[:, :2] + bboxes[:, 2:]) / 2 / scale  # [M, 2] in 0-1
    sizes = ((bboxes[:, 2:] - bboxes[:, :2]) / scale).clamp(0, 1)
    cells = (centres * S).floor().long().clamp(0, S - 1)  # [M, 2] (c, r)
    # One object per cell (the class probabilities are per cell): the
    # largest box wins, ties go to the later box as in darknet.
    flat = cells[:, 1] * S + cells[:, 0]
    area = sizes.prod(dim=1)
    index = torch.arange(len(flat), device=flat.device)
    # beaten[i, j]: box j would displace box i from a shared cell
    beaten = (area[None, :] > area[:, None]) | (
        (area[None, :] == area[:, None]) &
        (index[None, :] > index[:, None]))
    keep = ~((flat[:, None] == flat[None, :]) & beaten).any(dim=1)
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
    obj_mask[dest, best] = 1
    conf_target[dest, best] = ious.gather(
        1, best[:, None])[:, 0] if rescore else 1.0
    cell_mask[dest] = 1
    box_target[dest] = torch.cat([offsets, sizes.sqrt()], dim=1)
    cls_target[dest, gt_instances.labels] = 1
    return _cell_grids(targets, S)


def _cell_grids(targets: Tuple[Tensor, ...], S: int) -> Tuple[Tensor, ...]:
    """Flat targets ``[S * S + 1, ...]`` as grids ``[S, S, ...]``, the
    last (dropped) row left out."""
    return tuple(t[:S * S].view(S, S, *t.shape[1:]) for t in targets)
