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
"""
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS
from torch import Tensor, nn

from mmdet_slf.slf.precision import at_least_float32

REDUCTIONS = ('none', 'mean', 'sum')


def check_temperatures(t1: Optional[float], t2: float) -> None:
    """Refuse temperatures outside the loss's range: ``t1`` in [0, 1] (None
    skips it) and ``t2 > 0``."""
    if t1 is not None and (not isinstance(t1, (int, float))
                           or not 0.0 <= t1 <= 1.0):
        raise ValueError(f't1 must be in [0, 1], got {t1!r}; t1 > 1 makes '
                         'the loss grow faster than the log (NaN for t1 >= 2)')
    if not isinstance(t2, (int, float)) or not t2 > 0.0:
        raise ValueError(f't2 must be > 0, got {t2!r}')


def log_t(x: Tensor, t: float) -> Tensor:
    """Tempered logarithm ``log_t(x) = (x^(1-t) - 1) / (1 - t)``, ``log`` at
    ``t = 1``.

    Computed as ``expm1((1-t) log x) / (1-t)``, which keeps float32's
    precision as ``t -> 1`` (the power form cancels to ~1e-2 at
    ``t = 1 + 1e-5``).
    """
    if t == 1.0:
        return torch.log(x)
    return torch.expm1((1.0 - t) * torch.log(x)) / (1.0 - t)


def exp_t(x: Tensor, t: float) -> Tensor:
    """Tempered exponential ``exp_t(x) = [1 + (1-t) x]_+^(1/(1-t))``, ``exp``
    at ``t = 1``.

    Computed as ``exp(log1p((1-t) x) / (1-t))`` where ``1 + (1-t) x > 0``,
    which keeps float32's precision as ``t -> 1``. Elsewhere it is what the
    power form gives: 0 for ``t < 1`` (outside the support) and ``inf`` for
    ``t > 1`` (``0`` to a negative power).
    """
    if t == 1.0:
        return torch.exp(x)
    scaled = (1.0 - t) * x
    inside = scaled > -1.0
    # A safe argument outside the support keeps NaN out of the gradient.
    safe = torch.where(inside, scaled, torch.zeros_like(scaled))
    value = torch.exp(torch.log1p(safe) / (1.0 - t))
    outside = 0.0 if t < 1.0 else float('inf')
    return torch.where(inside, value, value.new_full((), outside))


def _normalization_fixed_point(activations: Tensor, t: float,
                               num_iters: int) -> Tensor:
    """``lambda`` with ``sum_i exp_t(a_i - lambda) = 1`` for ``t > 1``."""
    mu = activations.max(dim=-1, keepdim=True).values
    shifted = activations - mu  # [..., C], max 0
    current = shifted
    for _ in range(num_iters):
        partition = exp_t(current, t).sum(dim=-1, keepdim=True)
        current = shifted * partition.pow(1.0 - t)
    partition = exp_t(current, t).sum(dim=-1, keepdim=True)
    return -log_t(1.0 / partition, t) + mu  # [..., 1]


def _normalization_binary_search(activations: Tensor, t: float,
                                 num_iters: int) -> Tensor:
    """``lambda`` with ``sum_i exp_t(a_i - lambda) = 1`` for ``t < 1``."""
    mu = activations.max(dim=-1, keepdim=True).values
    shifted = activations - mu
    # Only classes inside the support of exp_t can carry mass; if all of
    # them sat at the max, lambda would be -log_t(1 / d): the upper bound.
    effective_dim = (shifted > -1.0 / (1.0 - t)).sum(
        dim=-1, keepdim=True).to(activations.dtype)
    lower = torch.zeros_like(mu)
    upper = -log_t(1.0 / effective_dim, t)
    for _ in range(num_iters):
        middle = (upper + lower) / 2.0
        total = exp_t(shifted - middle, t).sum(dim=-1, keepdim=True)
        too_low = total < 1.0  # lambda too large: move the upper bound
        upper = torch.where(too_low, middle, upper)
        lower = torch.where(too_low, lower, middle)
    return (upper + lower) / 2.0 + mu


class _TemperedNormalization(torch.autograd.Function):
    """The normaliser ``lambda_t(a)`` with its exact gradient.

    Differentiating ``sum_i exp_t(a_i - lambda) = 1`` implicitly gives
    ``d lambda / d a_i = p_i^t / sum_j p_j^t`` (the escort distribution),
    which is exact at convergence and avoids back-propagating through the
    iterations.
    """

    @staticmethod
    def forward(ctx, activations: Tensor, t: float, num_iters: int) -> Tensor:
        if t < 1.0:
            normalization = _normalization_binary_search(
                activations, t, num_iters)
        else:
            normalization = _normalization_fixed_point(
                activations, t, num_iters)
        ctx.save_for_backward(activations, normalization)
        ctx.t = t
        return normalization

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        activations, normalization = ctx.saved_tensors
        probs = exp_t(activations - normalization, ctx.t)
        escorts = probs.pow(ctx.t)
        escorts = escorts / escorts.sum(dim=-1, keepdim=True)
        return escorts * grad_output, None, None


def tempered_softmax(activations: Tensor,
                     t: float,
                     num_iters: int = 20,
                     num_bisect_iters: int = 30) -> Tensor:
    """Tempered softmax ``p_i = exp_t(a_i - lambda_t(a))`` over the last dim.

    Args:
        activations (Tensor): Logits ``[..., C]``.
        t (float): Temperature ``t2`` of ``exp_t``, > 0.
        num_iters (int): Fixed-point iterations (``t > 1``). Defaults to 20.
        num_bisect_iters (int): Bisection steps (``t < 1``). Defaults to 30.

    Returns:
        Tensor: Probabilities of the same shape, summing to 1.
    """
    check_temperatures(None, t)
    if t == 1.0:
        return F.softmax(activations, dim=-1)
    steps = num_bisect_iters if t < 1.0 else num_iters
    normalization = _TemperedNormalization.apply(activations, float(t),
                                                 int(steps))
    return exp_t(activations - normalization, t)


def bi_tempered_logistic_loss(activations: Tensor,
                              labels: Tensor,
                              t1: float,
                              t2: float,
                              num_iters: int = 20,
                              num_bisect_iters: int = 30) -> Tensor:
    """Bi-tempered logistic loss of probability labels, summed over classes.

    ``L(y, a) = sum_i [y_i (log_t1 y_i - log_t1 p_i)
    - (y_i^(2-t1) - p_i^(2-t1)) / (2 - t1)]`` with ``p = tempered_softmax(a,
    t2)``, the Bregman divergence of the paper.

    Args:
        activations (Tensor): Logits ``[..., C]``.
        labels (Tensor): Target distribution ``[..., C]`` (rows sum to 1).
        t1 (float): Temperature of ``log_t`` in [0, 1].
        t2 (float): Temperature of ``exp_t``, > 0.
        num_iters (int): Fixed-point iterations. Defaults to 20.
        num_bisect_iters (int): Bisection steps for ``t2 < 1``.
            Defaults to 30.

    Returns:
        Tensor: Loss ``[...]``.
    """
    check_temperatures(t1, t2)
    # The tempered powers under- and overflow in half precision.
    activations = at_least_float32(activations)
    if t1 == 1.0 and t2 == 1.0:
        # Stable closed form: sum y log y - y log p (- y + p sums to 0).
        log_probs = F.log_softmax(activations, dim=-1)
        entropy_term = torch.where(labels > 0,
                                   labels * labels.clamp(min=1e-30).log(),
                                   labels.new_zeros(()))
        return (entropy_term - labels * log_probs).sum(dim=-1)
    probs = tempered_softmax(activations, t2, num_iters, num_bisect_iters)
    # With t2 < 1 (or underflow) p can be exactly 0, where the derivatives
    # of p^(1-t1) and p^(2-t1) are infinite; clamping keeps them finite.
    tiny = torch.finfo(probs.dtype).tiny**0.5
    probs = probs.clamp(min=tiny)
    labels = labels.to(probs.dtype)
    # y log_t1 y is a constant of the target; 0 log 0 = 0.
    label_term = torch.where(labels > 0,
                             labels * log_t(labels.clamp(min=tiny), t1),
                             labels.new_zeros(()))
    cross_term = labels * log_t(probs, t1)
    power_term = (labels.pow(2.0 - t1) - probs.pow(2.0 - t1)) / (2.0 - t1)
    return (label_term - cross_term - power_term).sum(dim=-1)


def smooth_labels(one_hot: Tensor, label_smoothing: float) -> Tensor:
    """Move ``label_smoothing`` of the mass of the true class evenly onto the
    other ``C - 1`` classes, as the authors' reference code does.

    ``label_smoothing`` must be below ``(C - 1) / C``: there the true class
    keeps ``1 / C`` like every other class, and above it the target is
    inverted.
    """
    if label_smoothing == 0:
        return one_hot
    num_classes = one_hot.shape[-1]
    if num_classes < 2:
        raise ValueError(
            f'label_smoothing={label_smoothing!r} needs at least 2 classes to '
            f'move mass to, got {num_classes}; set label_smoothing=0')
    limit = (num_classes - 1) / num_classes
    if not label_smoothing < limit:
        raise ValueError(
            f'label_smoothing={label_smoothing!r} must be < (C - 1) / C = '
            f'{limit:.4g} for C={num_classes} classes: at or above it the '
            'true class gets no more mass than the others (the target is '
            'uniform or inverted); lower label_smoothing')
    return (1 - num_classes / (num_classes - 1) * label_smoothing) * one_hot \
        + label_smoothing / (num_classes - 1)


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
    sigmoid).

    Args:
        t1 (float): Temperature of the tempered log, in [0, 1]; ``t1 < 1``
            bounds the loss (``t1 > 1`` would make it grow faster than the
            log, the opposite of robust). Defaults to 0.8.
        t2 (float): Temperature of the tempered exp, > 0; ``t2 > 1`` gives
            heavy-tailed probabilities. Defaults to 1.2.
        num_iters (int): Fixed-point iterations of the normalisation for
            ``t2 > 1``. The reference uses 5, which leaves the probabilities
            of 21 classes summing to 1 +- 2e-4 at ``t2 = 1.2``; 20 brings that
            below 1e-9. Convergence slows for ``t2`` near 2 with widely
            spread logits (81 classes, logits of std 100: 3e-4 after 20), so
            raise it there. Defaults to 20.
        num_bisect_iters (int): Bisection steps of the normalisation for
            ``t2 < 1``; each halves an interval of width ``< 1 / (1 - t2)``.
            Defaults to 30.
        label_smoothing (float): Mass moved from the true class to the
            others (to the negative class in sigmoid mode); below
            ``(C - 1) / C`` for ``C`` classes (checked in ``forward``), below
            0.5 in sigmoid mode. Defaults to 0.0.
        use_sigmoid (bool): Per-class binary (tempered sigmoid) instead of
            softmax. Defaults to False.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        class_weight (list[float], optional): Weight of each class, one per
            column of ``cls_score``: of the true class of a sample (softmax)
            or of each column (sigmoid). Defaults to None.
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
        if reduction not in REDUCTIONS:
            raise ValueError(
                f'reduction must be one of {REDUCTIONS}, got {reduction!r}')
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
            weight (Tensor, optional): Sample weights ``[N]`` (or ``[N, C]``
                in sigmoid mode). Defaults to None.
            avg_factor (float, optional): Divisor of the 'mean' reduction.
                Defaults to None.
            reduction_override (str, optional): Overrides ``reduction``.
                Defaults to None.

        Returns:
            Tensor: Scalar, or the element-wise loss for 'none'.
        """
        reduction = reduction_override or self.reduction
        if reduction not in REDUCTIONS:
            raise ValueError(f'reduction_override must be one of '
                             f'{REDUCTIONS}, got {reduction!r}')
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
                loss = loss * class_weight
            else:
                loss = loss * class_weight[label.clamp(0, len(class_weight) -
                                                       1)]
        if weight is not None:
            weight = weight.to(loss.dtype)
            if loss.dim() == 2 and weight.dim() == 1:
                weight = weight[:, None]
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
