# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Bi-tempered logistic loss (Amid, Warmuth, Anil and Koren, NeurIPS 2019).

"Robust Bi-Tempered Logistic Loss Based on Bregman Divergences" replaces the
``log`` of the logistic loss by the tempered ``log_t1`` (``t1 < 1`` bounds the
loss, so far-away mislabelled examples stop dominating) and the ``exp`` of the
softmax by the tempered ``exp_t2`` (``t2 > 1`` gives the probabilities heavier
tails, so examples near the boundary decay slowly). ``t1 = t2 = 1`` is softmax
cross-entropy.

The normalisation follows the authors' reference algorithm (Apache-2.0,
github.com/google/bi-tempered-loss), re-written here in PyTorch: a fixed-point
iteration for ``t2 > 1``, a bisection for ``t2 < 1`` (where ``exp_t2`` has
compact support), and the exact gradient of the normaliser, the escort
distribution ``p^t2 / sum(p^t2)``, instead of differentiating the iterations.

The functions live in :mod:`.tempered`; this module is the mmdet loss.
"""
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS
from torch import Tensor, nn

from .tempered import (bi_tempered_logistic_loss, check_temperatures,
                       smooth_labels)
from .utils import check_reduction, element_weight


@MODELS.register_module()
class BiTemperedLogisticLoss(nn.Module):
    """Bi-tempered logistic loss with mmdet's ``CrossEntropyLoss`` interface.

    ``use_sigmoid=False``: ``cls_score [N, C]`` and integer ``label [N]``
    (``C`` includes the background class of a softmax head); the loss of a
    sample is the bi-tempered loss of its tempered softmax. ``use_sigmoid=
    True``: every class is a binary problem with logits ``[x, 0]`` (the
    paper's tempered sigmoid), labels ``[N]`` in ``[0, C]`` with ``C`` the
    background as in mmdet's sigmoid heads, and the loss is ``[N, C]``
    element-wise. ``t1 = t2 = 1`` equals ``CrossEntropyLoss`` (softmax or
    sigmoid, ``class_weight`` included) without label smoothing; with it,
    the loss is the KL divergence, cross-entropy less the target's entropy
    (a constant: the same gradient).

    Args:
        t1 (float): Temperature of the tempered log, in [0, 1]; ``t1 < 1``
            bounds the loss (``t1 > 1`` would make it grow faster than the
            log, the opposite of robust). Defaults to 0.8.
        t2 (float): Temperature of the tempered exp, > 0; ``t2 > 1`` gives
            heavy-tailed probabilities. Defaults to 1.2.
        num_iters (int): Fixed-point iterations of the normalisation for
            ``t2 > 1``. The reference uses 5, which leaves the probabilities
            of 21 classes summing to 1 +- 2e-4 at ``t2 = 1.2``; 20 brings that
            below 1e-9. Convergence slows for ``t2`` of about 2 and above
            with widely spread logits (81 classes, logits of std 100, after
            20: the sums are off by up to about 4e-4 at ``t2 = 2`` and 1e-2
            at 2.5), so raise it there. Defaults to 20.
        num_bisect_iters (int): Bisection steps of the normalisation for
            ``t2 < 1``; each halves an interval of width ``< 1 / (1 - t2)``.
            Defaults to 30.
        label_smoothing (float): Mass moved from the true class to the
            others; below ``(C - 1) / C`` for ``C`` classes (checked in
            ``forward``). In sigmoid mode each element is a two-class
            problem, so positives get target ``1 - label_smoothing`` and
            every negative (background included) ``label_smoothing``: in a
            dense head that raises the target of every negative anchor.
            Below 0.5 there. Defaults to 0.0.
        use_sigmoid (bool): Per-class binary (tempered sigmoid) instead of
            softmax. Defaults to False.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        class_weight (list[float], optional): Weight of each class, one per
            column of ``cls_score``, applied to the loss of a sample's true
            class: the whole loss of the sample (softmax), or only its own
            column, negatives unweighted (sigmoid: mmdet's ``pos_weight``).
            Defaults to None.
        ignore_index (int, optional): Label whose samples get zero loss, as
            do negative labels. Defaults to -100.
        avg_non_ignore (bool): Average over the samples with non-ignored
            labels only when no ``avg_factor`` is given. Defaults to False.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 t1: float = 0.8,
                 t2: float = 1.2,
                 num_iters: int = 20,
                 num_bisect_iters: int = 30,
                 label_smoothing: float = 0.0,
                 use_sigmoid: bool = False,
                 reduction: str = 'mean',
                 class_weight: Optional[List[float]] = None,
                 ignore_index: Optional[int] = -100,
                 avg_non_ignore: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        check_temperatures(t1, t2)
        for key, value in (('num_iters', num_iters),
                           ('num_bisect_iters', num_bisect_iters)):
            if not isinstance(value, int) or isinstance(value, bool) \
                    or value < 1:
                raise ValueError(f'{key} must be an int >= 1, got {value!r}')
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f'label_smoothing must be in [0, 1), got {label_smoothing!r}')
        if use_sigmoid and not label_smoothing < 0.5:
            # Each class is a 2-way problem: (C - 1) / C = 1 / 2.
            raise ValueError(
                f'label_smoothing must be < 0.5 with use_sigmoid=True (each '
                f'class is a binary problem; 0.5 or more makes the target '
                f'uniform or inverted), got {label_smoothing!r}')
        check_reduction(reduction)
        self.t1 = float(t1)
        self.t2 = float(t2)
        self.num_iters = num_iters
        self.num_bisect_iters = num_bisect_iters
        self.label_smoothing = float(label_smoothing)
        self.use_sigmoid = use_sigmoid
        self.reduction = reduction
        self.class_weight = class_weight
        self.ignore_index = ignore_index
        self.avg_non_ignore = avg_non_ignore
        self.loss_weight = loss_weight

    def valid_labels(self, label: Tensor) -> Tensor:
        """Labels that are not ignored: ``>= 0`` and not ``ignore_index``."""
        return label >= 0 if self.ignore_index is None else \
            (label >= 0) & (label != self.ignore_index)

    def elementwise(self, cls_score: Tensor, label: Tensor) -> Tensor:
        """Unweighted loss: ``[N]`` (softmax) or ``[N, C]`` (sigmoid)."""
        num_classes = cls_score.shape[-1]
        valid = self.valid_labels(label)
        # Targets in at least float32: half would round the smoothed mass.
        dtype = torch.promote_types(cls_score.dtype, torch.float32)
        if self.use_sigmoid:
            # Background (label == C) and ignored labels give all-zero rows.
            keep = valid & (label < num_classes)
            one_hot = F.one_hot(
                torch.where(keep, label, label.new_full((), num_classes)),
                num_classes + 1)[:, :num_classes].to(dtype)
            binary = torch.stack([one_hot, 1 - one_hot], dim=-1)
            logits = torch.stack(
                [cls_score, torch.zeros_like(cls_score)], dim=-1)
            targets = smooth_labels(binary, self.label_smoothing)
        else:
            if bool(((label >= num_classes) & valid).any()):
                raise ValueError(
                    f'labels must be < the {num_classes} classes of '
                    f'cls_score, got max {int(label.max())}')
            one_hot = F.one_hot(
                torch.where(valid, label, torch.zeros_like(label)),
                num_classes).to(dtype)
            logits, targets = cls_score, smooth_labels(
                one_hot, self.label_smoothing)
        loss = bi_tempered_logistic_loss(logits, targets, self.t1, self.t2,
                                         self.num_iters,
                                         self.num_bisect_iters)
        mask = valid.to(loss.dtype)
        return loss * (mask[:, None] if loss.dim() == 2 else mask)

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> Tensor:
        """Loss of ``cls_score [N, C]`` for integer ``label [N]``.

        Args:
            cls_score (Tensor): Logits ``[N, C]``.
            label (Tensor): Class indices ``[N]``.
            weight (Tensor, optional): Sample weights ``[N]`` (or ``[N, 1]``
                or ``[N, C]`` in sigmoid mode); other shapes are refused.
                Defaults to None.
            avg_factor (float, optional): Divisor of the 'mean' reduction.
                Defaults to None.
            reduction_override (str, optional): Overrides ``reduction``.
                Defaults to None.

        Returns:
            Tensor: Scalar, or the element-wise loss for 'none'.
        """
        reduction = reduction_override or self.reduction
        check_reduction(reduction, 'reduction_override')
        if cls_score.dim() != 2 or label.shape != cls_score.shape[:1]:
            raise ValueError(
                'BiTemperedLogisticLoss expects cls_score [N, C] and integer '
                f'label [N], got {tuple(cls_score.shape)} and '
                f'{tuple(label.shape)}')
        if cls_score.numel() == 0 and reduction != 'none':
            return cls_score.sum() * 0
        if self.class_weight is not None and \
                len(self.class_weight) != cls_score.shape[-1]:
            raise ValueError(
                f'class_weight has {len(self.class_weight)} entries but '
                f'cls_score has {cls_score.shape[-1]} classes; give one '
                'weight per column of cls_score')
        label = label.long()
        loss = self.elementwise(cls_score, label)
        if self.class_weight is not None:
            class_weight = cls_score.new_tensor(self.class_weight)
            if self.use_sigmoid:
                # As mmdet's sigmoid CrossEntropyLoss, which passes it as
                # pos_weight: it weights each sample's own class only, not
                # the negatives of a column.
                positive = label[:, None] == torch.arange(
                    cls_score.shape[-1], device=label.device)  # [N, C]
                loss = loss * torch.where(positive, class_weight,
                                          class_weight.new_ones(()))
            else:
                loss = loss * class_weight[label.clamp(0, len(class_weight) -
                                                       1)]
        weight = element_weight(weight, loss, type(self).__name__)
        if avg_factor is None and self.avg_non_ignore and reduction == 'mean':
            valid = self.valid_labels(label)
            avg_factor = valid.sum().item() * (
                loss.shape[-1] if loss.dim() == 2 else 1)
        loss = weight_reduce_loss(
            loss, weight=weight, reduction=reduction, avg_factor=avg_factor)
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        return (f't1={self.t1}, t2={self.t2}, num_iters={self.num_iters}, '
                f'label_smoothing={self.label_smoothing}, '
                f'use_sigmoid={self.use_sigmoid}')
