# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Estimators ``p_hat`` of the decision probabilities ``p``.

One-hot Gumbel samples (``hard=True``, the paper's), ``'stratified'`` and
``'expected'`` have mean ``p``. Soft Gumbel samples (``hard=False``) do not:
their mean is pulled toward uniform, the more so the larger ``tau``.

``'gumbel'`` is the paper's (Eq. 9-10); ``'stratified'`` and ``'expected'``
are lower-variance estimators of the same expectation, added here.
"""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import check_count
from .gumbel import multiple_gumbel_softmax
from .precision import at_least_float32

ESTIMATORS = ('gumbel', 'stratified', 'expected')


def stratified_sample(probs: Tensor,
                      num_samples: int,
                      generator: Optional[torch.Generator] = None) -> Tensor:
    """``K`` systematic inverse-CDF draws per row, as counts / K.

    One ``U ~ U(0, 1)`` per row places the points ``u_k = (k + U) / K``,
    ``k = 0..K-1``; point ``u_k`` selects term ``i`` when
    ``cdf_{i-1} <= u_k < cdf_i``. An interval of length ``p_i`` holds
    ``floor(K p_i)`` or ``floor(K p_i) + 1`` points, the latter with
    probability ``f_i = frac(K p_i)``, so ``count_i / K`` has mean ``p_i``
    and variance ``f_i (1 - f_i) / K^2`` (against ``p_i (1 - p_i) / K`` for
    ``K`` independent draws), and a term with ``K p_i >= 1`` is never left
    at weight 0.

    Args:
        probs (Tensor): Probabilities ``[..., n]``, rows summing to 1.
        num_samples (int): ``K`` >= 1.
        generator (torch.Generator, optional): Random generator.
            Defaults to None.

    Returns:
        Tensor: ``p_hat`` of the shape of ``probs``, on the ``1/K`` grid.
    """
    check_count('num_samples', num_samples)
    # Half-precision cdfs and points are too coarse for the 1/K grid and
    # for small p: they are drawn in float32 (float32 input as it is).
    cdf = at_least_float32(probs.detach()).cumsum(dim=-1)
    # Normalised by its last entry, which is then exactly 1: a row that sums
    # a hair below 1 would otherwise send the points above its sum to the
    # last term, even one of probability 0.
    cdf = (cdf / cdf[..., -1:]).contiguous()
    dtype = cdf.dtype
    shift = torch.rand(
        probs.shape[:-1] + (1, ),
        device=probs.device,
        dtype=dtype,
        generator=generator)
    steps = torch.arange(num_samples, device=probs.device, dtype=dtype)
    # (k + U) / K can round to 1.0 for U just below 1: such a point is put
    # just below 1, where it falls in the last term of probability > 0.
    below_one = torch.nextafter(cdf.new_ones(()), cdf.new_zeros(()))
    points = ((steps + shift) / num_samples).clamp(max=below_one)
    index = torch.searchsorted(cdf, points.contiguous(), right=True)
    # A NaN row (non-finite terms, dropped later by the non-finite policy)
    # must still index inside the row.
    index = index.clamp(max=probs.shape[-1] - 1)
    counts = torch.zeros_like(cdf).scatter_add_(
        -1, index, torch.ones_like(points))
    return (counts / num_samples).to(probs.dtype)


def estimate_p_hat(logits: Tensor,
                   estimator: str,
                   num_samples: int,
                   tau: Union[float, Tensor] = 1.0,
                   hard: bool = True,
                   straight_through: bool = True,
                   generator: Optional[torch.Generator] = None,
                   probs: Optional[Tensor] = None) -> Tensor:
    """``p_hat``, an estimate of ``p = softmax(logits)``, with mean ``p``
    except for soft Gumbel samples (``hard=False``).

    ``'gumbel'``: the mean of ``K`` Gumbel-softmax samples, Eq. (9)-(10),
    one-hot (``hard=True``, the paper) or soft; the gradient is the
    Gumbel-softmax one. ``'stratified'``: :func:`stratified_sample`.
    ``'expected'``: ``p`` itself, no sampling noise. With
    ``straight_through`` the sampled values carry the gradient of ``p``
    (forward ``p_hat``, backward identity), so Eq. (11) trains the logits.

    Args:
        logits (Tensor): Logits ``[..., n]``.
        estimator (str): One of :data:`ESTIMATORS`.
        num_samples (int): ``K``.
        tau (float | Tensor): Gumbel-softmax temperature (``'gumbel'``).
            Defaults to 1.0.
        hard (bool): One-hot Gumbel samples. Defaults to True.
        straight_through (bool): Give ``'stratified'`` samples the gradient
            of ``p``. Defaults to True.
        generator (torch.Generator, optional): Random generator.
            Defaults to None.
        probs (Tensor, optional): ``softmax(logits)`` where the caller has
            it already, so it is not computed twice. Defaults to None.

    Returns:
        Tensor: ``p_hat`` of the shape of ``logits``.
    """
    if estimator == 'gumbel':
        return multiple_gumbel_softmax(
            logits, num_samples, tau=tau, hard=hard, generator=generator)
    if probs is None:
        probs = F.softmax(logits, dim=-1)
    if estimator == 'expected':
        return probs
    if estimator == 'stratified':
        p_hat = stratified_sample(probs, num_samples, generator=generator)
        if straight_through:
            p_hat = p_hat + probs - probs.detach()
        return p_hat
    raise ValueError(
        f'estimator must be one of {ESTIMATORS}, got {estimator!r}')
