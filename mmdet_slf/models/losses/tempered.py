# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The tempered functions of the bi-tempered logistic loss (Amid et al.,
NeurIPS 2019): ``log_t``, ``exp_t``, the tempered softmax and its
normalisation, the loss of probabilities against targets, and label
smoothing. :class:`~.bitempered_loss.BiTemperedLogisticLoss` is the mmdet
loss module built on them."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet_slf.slf.precision import at_least_float32


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


def tempered_log_softmax(activations: Tensor,
                         t: float,
                         num_iters: int = 20) -> Tensor:
    """``log p`` of :func:`tempered_softmax` for ``t >= 1``, without forming
    ``p``: ``log1p((1-t)(a - lambda)) / (1-t)``, ``log_softmax`` at ``t = 1``.

    ``p`` itself underflows float32 where a class is far behind (``p <
    1e-38``), and with it every power of ``p``; its log stays finite, so
    the loss and its gradient stay right there. ``t < 1`` is refused: its
    ``p`` is exactly 0 outside the support, where the log is ``-inf``.
    """
    check_temperatures(None, t)
    if t < 1.0:
        raise ValueError(f'tempered_log_softmax needs t >= 1, got {t!r}: '
                         'for t < 1 some probabilities are exactly 0')
    if t == 1.0:
        return F.log_softmax(activations, dim=-1)
    normalization = _TemperedNormalization.apply(activations, float(t),
                                                 int(num_iters))
    # a - lambda <= 0 up to the normaliser's rounding, so the argument of
    # log1p is >= 0 (> -1 is all it needs).
    scaled = ((1.0 - t) * (activations - normalization)).clamp(min=-0.5)
    return torch.log1p(scaled) / (1.0 - t)


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
        cross_term = torch.where(labels > 0, labels * log_probs,
                                 labels.new_zeros(()))  # 0 * -inf: 0
        return (entropy_term - cross_term).sum(dim=-1)
    tiny = torch.finfo(activations.dtype).tiny**0.5
    if t2 >= 1.0:
        # From log p: p underflows where a class is far behind, and a clamp
        # of p would then freeze the loss and cut its gradient.
        log_probs = tempered_log_softmax(activations, t2, num_iters)
        log_t1_probs = log_probs if t1 == 1.0 else torch.expm1(
            (1.0 - t1) * log_probs) / (1.0 - t1)
        probs_power = torch.exp((2.0 - t1) * log_probs)
    else:
        probs = tempered_softmax(activations, t2, num_iters,
                                 num_bisect_iters)
        # With t2 < 1, p is exactly 0 outside the support, where the
        # derivatives of p^(1-t1) and p^(2-t1) are infinite; clamping keeps
        # them finite. There log_t1(0) = -1 / (1 - t1) exactly for t1 < 1
        # (p is constant outside the support: no gradient is lost); for
        # t1 = 1 the true loss is infinite and the clamp bounds it.
        outside = probs == 0
        probs = probs.clamp(min=tiny)
        log_t1_probs = log_t(probs, t1)
        if t1 < 1.0:
            log_t1_probs = torch.where(
                outside, log_t1_probs.new_full((), -1.0 / (1.0 - t1)),
                log_t1_probs)
        probs_power = probs.pow(2.0 - t1)
    labels = labels.to(activations.dtype)
    # y log_t1 y is a constant of the target; 0 log 0 = 0.
    label_term = torch.where(labels > 0,
                             labels * log_t(labels.clamp(min=tiny), t1),
                             labels.new_zeros(()))
    # A class of label 0 adds nothing, also where its log p is -inf (a
    # logit of -inf, as from a mask): 0 * -inf would be NaN.
    cross_term = torch.where(labels > 0, labels * log_t1_probs,
                             labels.new_zeros(()))
    power_term = (labels.pow(2.0 - t1) - probs_power) / (2.0 - t1)
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
