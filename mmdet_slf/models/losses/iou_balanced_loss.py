# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""IoU-balanced losses (Wu, Yang, Wang and Li, "IoU-balanced Loss Functions
for Single-stage Object Detection", 2019).

The loss of every positive example ``i`` is multiplied by ``w_i = iou_i^eta *
sum_j l_j / sum_j iou_j^eta l_j`` (sums over the positives of the call): high-
IoU positives get a larger share of the same total, so the classification
score learns to follow localisation quality (classification, ``eta``) and the
regression is not dominated by badly localised outliers (localisation,
``lambda``). The weights are detached, as in the authors' code: the IoU and
the normaliser only rescale gradients. Negatives are left unchanged.

"The call" is one call of the loss: per FPN level for ``GFLHead``, which
calls its losses once per level, whereas the paper normalises over the
mini-batch (see the classes' docstrings).
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from mmdet.models.losses.smooth_l1_loss import smooth_l1_loss
from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures.bbox import bbox_overlaps
from mmdet.utils import ConfigType, OptConfigType
from torch import Tensor, nn

from .utils import check_reduction, element_weight


def iou_balanced_factors(loss: Tensor,
                         positive: Tensor,
                         iou: Tensor,
                         exponent: float,
                         weight: Optional[Tensor] = None) -> Tensor:
    """Detached factors ``w`` that re-weight the positive elements of
    ``loss`` by ``iou^exponent`` and keep ``sum(weight * loss)`` over them.

    Args:
        loss (Tensor): Element-wise loss, any shape.
        positive (Tensor): Bool mask of the elements to re-weight, same shape.
        iou (Tensor): IoU of each element's example, broadcastable to
            ``loss``; only read where ``positive``.
        exponent (float): ``eta`` or ``lambda``, >= 0.
        weight (Tensor, optional): Caller's element weights, broadcastable.
            Defaults to None.

    Returns:
        Tensor: Factors of the shape of ``loss``: ``iou^exponent *
        normaliser`` on positives, 1 elsewhere. If every positive has IoU 0
        (nothing to keep the sum with) the positives keep factor 1.
    """
    with torch.no_grad():
        loss = loss.detach()
        iou = iou.detach().to(loss.dtype).clamp(0.0, 1.0).expand_as(loss)
        scaled = iou.pow(exponent)  # 0^0 = 1: exponent 0 is unweighted
        mask = positive.to(loss.dtype)
        if weight is not None:
            mask = mask * weight.to(loss.dtype)
        total = (mask * loss).sum()
        total_scaled = (mask * scaled * loss).sum()
        usable = total_scaled > 0
        normaliser = torch.where(
            usable, total / total_scaled.clamp(min=torch.finfo(
                loss.dtype).tiny), loss.new_ones(()))
        factors = torch.where(usable, scaled * normaliser,
                              torch.ones_like(loss))
        return torch.where(positive, factors, torch.ones_like(loss))


def _check_common(exponent: float, reduction: str, key: str) -> None:
    if not isinstance(exponent, (int, float)) or isinstance(
            exponent, bool) or not exponent >= 0:
        raise ValueError(f'{key} must be a number >= 0, got {exponent!r}')
    check_reduction(reduction)


@MODELS.register_module()
class IoUBalancedClsLoss(nn.Module):
    """IoU-balanced classification loss: positives weighted by ``iou^eta``.

    Wraps an element-wise classification loss ``loss_cls`` (by default
    softmax cross-entropy, as in the paper's formula; ``FocalLoss`` or
    :class:`BiTemperedLogisticLoss` work too). A positive is a sample whose
    label is a foreground class (``0 <= label < num_classes``; the last
    column of a softmax score is the background). Its IoU, the IoU of the
    box it regressed with its ground truth, comes either as the ``iou``
    argument ``[N]`` or in the target ``(labels, iou)``, the form mmdet's
    ``GFLHead`` and ``LDHead`` already pass to their classification loss.
    In sigmoid mode only the element of the positive's own class is
    re-weighted (as in the authors' code); the other classes of that sample
    and all negatives keep weight 1.

    The normaliser keeps the loss sum over the positives of ONE call. The
    paper keeps it over the mini-batch; that holds here only for heads that
    call the loss once per batch. ``GFLHead`` (and other heads that loop
    over FPN levels) call it once per level, so the sum is kept per level:
    the weights only redistribute within a level, and a level with a single
    positive gives it factor exactly 1 (no IoU weighting there at all).

    Args:
        eta (float): IoU exponent ``eta`` >= 0; 0 gives the unweighted loss.
            Defaults to 1.5 (the paper's choice).
        use_sigmoid (bool): Per-class sigmoid scores; passed on to
            ``loss_cls`` and read by mmdet heads from this config.
            Defaults to False.
        loss_cls (dict): Config of the element-wise loss; its reduction is
            overridden to 'none' and its ``use_sigmoid`` set to
            ``use_sigmoid``; ``avg_non_ignore=True`` is refused (it acts in
            the reduction). Defaults to ``dict(type='CrossEntropyLoss')``.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 eta: float = 1.5,
                 use_sigmoid: bool = False,
                 loss_cls: ConfigType = dict(type='CrossEntropyLoss'),
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        _check_common(eta, reduction, 'eta')
        loss_cls = dict(loss_cls)
        if loss_cls.get('use_sigmoid', use_sigmoid) != use_sigmoid:
            raise ValueError(
                f'loss_cls.use_sigmoid={loss_cls["use_sigmoid"]} contradicts '
                f'use_sigmoid={use_sigmoid}; set it once, on '
                'IoUBalancedClsLoss')
        loss_cls['use_sigmoid'] = use_sigmoid
        if loss_cls.get('avg_non_ignore', False):
            # Its divisor is applied in the inner loss's own reduction, which
            # is overridden to 'none' here; it would be dropped silently.
            raise ValueError(
                'IoUBalancedClsLoss reduces the loss itself, so '
                'loss_cls.avg_non_ignore=True would have no effect; leave it '
                'out (mmdet heads pass avg_factor)')
        self.eta = float(eta)
        self.use_sigmoid = use_sigmoid
        self.loss_cls = MODELS.build(loss_cls)
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self,
                cls_score: Tensor,
                target: Union[Tensor, Tuple[Tensor, Tensor]],
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                iou: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """IoU-balanced loss of ``cls_score [N, C]``.

        Args:
            cls_score (Tensor): Scores ``[N, C]``.
            target (Tensor | tuple[Tensor, Tensor]): Labels ``[N]``, or
                ``(labels [N], iou [N])``.
            weight (Tensor, optional): Sample weights ``[N]`` (or ``[N, 1]``
                or ``[N, C]`` in sigmoid mode); other shapes are refused.
                Defaults to None.
            avg_factor (float, optional): Divisor of 'mean'. Defaults to None.
            reduction_override (str, optional): Overrides ``reduction``.
                Defaults to None.
            iou (Tensor, optional): IoU ``[N]`` of each sample's regressed box
                with its ground truth; read only for positives.
                Defaults to None.

        Returns:
            Tensor: Scalar, or the element-wise loss for 'none'.
        """
        reduction = reduction_override or self.reduction
        check_reduction(reduction, 'reduction_override')
        labels = target
        if isinstance(target, (tuple, list)):
            if iou is not None:
                raise ValueError('IoUBalancedClsLoss got the IoU twice: in '
                                 'the target tuple and as iou=')
            labels, iou = target
        if iou is None:
            raise ValueError(
                'IoUBalancedClsLoss needs the IoU of each positive: pass '
                'iou=Tensor[N] or target=(labels, iou) (as GFLHead does)')
        if iou.shape != labels.shape:
            raise ValueError(f'iou must have the shape of labels '
                             f'{tuple(labels.shape)}, got {tuple(iou.shape)}')
        if cls_score.numel() == 0 and reduction != 'none':
            return cls_score.sum() * 0
        loss = self.loss_cls(cls_score, labels, reduction_override='none')
        num_classes = cls_score.shape[-1] - (0 if self.use_sigmoid else 1)
        positive = (labels >= 0) & (labels < num_classes)  # [N]
        if loss.dim() == 2:  # sigmoid: the positive's own class only
            positive = positive[:, None] & (torch.arange(
                loss.shape[1], device=labels.device)[None] == labels[:, None])
            iou = iou[:, None]
        elif loss.shape != labels.shape:
            raise ValueError(
                f'loss_cls {type(self.loss_cls).__name__} returned shape '
                f'{tuple(loss.shape)} for reduction "none"; expected [N] or '
                '[N, C]')
        weight = element_weight(weight, loss, type(self).__name__)
        factors = iou_balanced_factors(loss, positive, iou, self.eta, weight)
        loss = weight_reduce_loss(
            loss * factors,
            weight=weight,
            reduction=reduction,
            avg_factor=avg_factor)
        return self.loss_weight * loss


@MODELS.register_module()
class IoUBalancedSmoothL1Loss(nn.Module):
    """IoU-balanced localisation loss: smooth L1 weighted by ``iou^lambda``.

    A positive is a row with a non-zero ``weight`` (every row when no weight
    is given), as the regression targets of mmdet heads. Its IoU is, in
    order of precedence: the ``iou`` argument ``[N]``; else, with a
    ``bbox_coder``, the IoU of the predicted and target boxes decoded from
    the deltas ``pred``/``target`` around one common anchor (IoU does not
    depend on which anchor, for coders that are equivariant to shifting and
    scaling it, such as ``DeltaXYWHBBoxCoder`` without ``add_ctr_clamp``);
    else ``pred``/``target`` are read as decoded ``(x1, y1, x2, y2)`` boxes
    (``reg_decoded_bbox=True``, ``GFLHead``).

    As in :class:`IoUBalancedClsLoss`, the normaliser keeps the loss sum
    over the positives of ONE call, not of the mini-batch as in the paper:
    ``GFLHead`` calls the loss once per FPN level, so the sum is kept per
    level, and a level with a single positive gives it factor exactly 1.

    Args:
        beta (float): Smooth L1 threshold, > 0. Defaults to 1.0.
        exponent (float): IoU exponent ``lambda`` >= 0; 0 gives the plain
            smooth L1 loss. Defaults to 1.5 (the paper's choice).
        bbox_coder (dict, optional): Coder of the head when ``pred`` and
            ``target`` are deltas; must match the head's ``bbox_coder``.
            Only ``DeltaXYWHBBoxCoder`` without ``add_ctr_clamp`` is taken
            (others are refused). Defaults to None.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    # Anchor the deltas are decoded around; IoU is invariant to its choice.
    REFERENCE_ANCHOR: Sequence[float] = (0.0, 0.0, 100.0, 100.0)

    def __init__(self,
                 beta: float = 1.0,
                 exponent: float = 1.5,
                 bbox_coder: OptConfigType = None,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        _check_common(exponent, reduction, 'exponent')
        if not isinstance(beta, (int, float)) or not beta > 0:
            raise ValueError(f'beta must be > 0, got {beta!r}')
        self.beta = float(beta)
        self.exponent = float(exponent)
        self.bbox_coder = None if bbox_coder is None else TASK_UTILS.build(
            bbox_coder)
        if self.bbox_coder is not None and (
                type(self.bbox_coder) is not DeltaXYWHBBoxCoder
                or self.bbox_coder.add_ctr_clamp):
            # Another coder's IoU may depend on the anchor (add_ctr_clamp
            # caps the centre shift in pixels), and the reference anchor
            # would then give every row a wrong weight without a sign.
            name = type(self.bbox_coder).__name__ + (
                ' with add_ctr_clamp=True' if getattr(
                    self.bbox_coder, 'add_ctr_clamp', False) else '')
            raise ValueError(
                f'IoUBalancedSmoothL1Loss cannot take bbox_coder {name}: it '
                'decodes the deltas around one reference anchor, which gives '
                'the true IoU only for DeltaXYWHBBoxCoder without '
                'add_ctr_clamp. Pass iou=[N] from the head, or set '
                'reg_decoded_bbox=True and leave bbox_coder out')
        self.reduction = reduction
        self.loss_weight = loss_weight

    def regression_iou(self, pred: Tensor, target: Tensor) -> Tensor:
        """Detached IoU ``[N]`` of each predicted box with its target."""
        with torch.no_grad():
            pred, target = pred.detach(), target.detach()
            if self.bbox_coder is not None:
                anchors = pred.new_tensor(self.REFERENCE_ANCHOR).expand(
                    pred.shape[0], 4)
                pred = self.bbox_coder.decode(anchors, pred)
                target = self.bbox_coder.decode(anchors, target)
            return bbox_overlaps(pred, target, is_aligned=True)

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                iou: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """IoU-balanced smooth L1 loss of ``pred [N, 4]``.

        Args:
            pred (Tensor): Predicted deltas or boxes ``[N, 4]``.
            target (Tensor): Targets of the same form ``[N, 4]``.
            weight (Tensor, optional): Weights ``[N, 4]``, ``[N, 1]`` or
                ``[N]``; other shapes are refused. Defaults to None.
            avg_factor (float, optional): Divisor of 'mean'. Defaults to None.
            reduction_override (str, optional): Overrides ``reduction``.
                Defaults to None.
            iou (Tensor, optional): IoU ``[N]`` of each row, overriding the
                one computed from ``pred`` and ``target``. Defaults to None.

        Returns:
            Tensor: Scalar, or the element-wise ``[N, 4]`` loss for 'none'.
        """
        reduction = reduction_override or self.reduction
        check_reduction(reduction, 'reduction_override')
        if pred.shape != target.shape or pred.dim() != 2 \
                or pred.shape[-1] != 4:
            raise ValueError('IoUBalancedSmoothL1Loss expects pred and target '
                             f'[N, 4], got {tuple(pred.shape)} and '
                             f'{tuple(target.shape)}')
        if target.numel() == 0:
            # Same convention as mmdet's SmoothL1Loss: a zero in the graph.
            return pred.sum() * 0
        if iou is None:
            iou = self.regression_iou(pred, target)
        elif iou.shape != pred.shape[:1]:
            raise ValueError(f'iou must have shape [{pred.shape[0]}], got '
                             f'{tuple(iou.shape)}')
        loss = smooth_l1_loss(
            pred, target, beta=self.beta, reduction='none')  # [N, 4]
        weight = element_weight(weight, loss, type(self).__name__)
        if weight is not None:
            positive = (weight > 0).any(dim=-1, keepdim=True).expand_as(loss)
        else:
            positive = torch.ones_like(loss, dtype=torch.bool)
        factors = iou_balanced_factors(loss, positive, iou[:, None],
                                       self.exponent, weight)
        loss = weight_reduce_loss(
            loss * factors,
            weight=weight,
            reduction=reduction,
            avg_factor=avg_factor)
        return self.loss_weight * loss
