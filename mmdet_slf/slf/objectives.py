# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""What trains the decision network when it is not Eq. (11) itself.

Each non-joint objective gives a detached signal ``s_i`` per term and trains
the decision network's parameters ``v`` alone on

    J(v) = E_images[ sum_i p_i s_i ] + beta * KL(p || prior),

whose minimiser over the simplex is ``p_i ~ prior_i * exp(-s_i / beta)``
(derived in ``docs/slf.md``). The signals are ours; the paper trains ``v`` on
Eq. (11) jointly with the detector (``decision_objective='joint'``).
"""
from typing import Dict, Optional

import torch
from mmdet.registry import MODELS
from torch import Tensor, nn

from .checks import check_momentum, check_nonnegative

DECISION_OBJECTIVES = ('joint', 'scale_free', 'progress', 'teacher')
_EPS = 1e-12


def decision_objective(probs: Tensor,
                       signal: Tensor,
                       prior: Tensor,
                       beta: float,
                       log_probs: Optional[Tensor] = None,
                       log_prior: Optional[Tensor] = None) -> Tensor:
    """``J = mean_rows sum_i p_i s_i + beta * KL(p || prior)``.

    Args:
        probs (Tensor): Decision probabilities ``p`` ``[R, n]``.
        signal (Tensor): Detached signal ``s`` broadcastable to ``probs``.
        prior (Tensor): Prior ``[n]``, summing to 1.
        beta (float): KL coefficient ``beta`` > 0 (``kl_weight``).
        log_probs (Tensor, optional): ``log max(p, 1e-12)`` where the
            caller has it already. Defaults to None (computed here).
        log_prior (Tensor, optional): ``log prior``, if precomputed.
            Defaults to None.

    Returns:
        Tensor: Scalar ``J``; its gradient reaches only ``probs`` (and
        ``log_probs``).
    """
    if log_probs is None:
        log_probs = probs.clamp(min=_EPS).log()
    if log_prior is None:
        log_prior = prior.log()
    if signal.requires_grad:
        signal = signal.detach()
    per_row = (probs * (signal + beta * (log_probs - log_prior))).sum(dim=-1)
    return per_row.mean()


def prior_guards(raw: Tensor, probs: Tensor, log_probs: Tensor,
                 prior: Tensor, log_prior: Tensor, scale: float,
                 kl_weight: float, entropy_weight: float) -> Dict[str, Tensor]:
    """The joint objective's guards against collapse (ours):
    ``loss_slf_kl = kl_weight * M * KL(p || prior)`` and ``loss_slf_entropy
    = -entropy_weight * M * H(p)``, each left out when its weight is 0.

    ``M = |scale * prior . l|``, the size of the detached loss the prior
    would give for the batch-level terms, so that the guards' gradient on
    the logits is commensurate with that of Eq. (11) at any loss scale, and
    pulls towards the prior for terms of either sign.
    """
    extra: Dict[str, Tensor] = {}
    if kl_weight == 0 and entropy_weight == 0:
        return extra
    batch_raw = raw.detach().sum(0) if raw.dim() == 2 else raw.detach()
    magnitude = scale * (prior.to(probs) * batch_raw).sum().abs()
    if kl_weight > 0:
        kl = (probs * (log_probs - log_prior)).sum(-1).mean()
        extra['loss_slf_kl'] = kl_weight * magnitude * kl
    if entropy_weight > 0:
        entropy = -(probs * log_probs).sum(-1).mean()
        extra['loss_slf_entropy'] = -entropy_weight * magnitude * entropy
    return extra


@MODELS.register_module()
class BiasCorrectedEMA(nn.Module):
    """Exponential moving average with Adam's bias correction.

    ``value / (1 - momentum ** count)`` is the average of the values seen
    with weights ``momentum ** age``; after one update it is that value, so
    no warm-up is needed. State is kept in buffers, saved in checkpoints.

    Args:
        num_terms (int): Length ``n`` of the averaged vector.
        momentum (float): Momentum in [0, 1).
    """

    def __init__(self, num_terms: int, momentum: float) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer('value', torch.zeros(num_terms))
        self.register_buffer('count', torch.zeros((), dtype=torch.long))

    def update(self, x: Tensor) -> None:
        """Blend ``x`` ``[n]`` (or a scalar) into the average."""
        if x.requires_grad:
            x = x.detach()
        self.value.mul_(self.momentum).add_(
            x.to(self.value), alpha=1 - self.momentum)
        self.count.add_(1)

    def read(self, fallback: Optional[Tensor] = None) -> Tensor:
        """The corrected average, or ``fallback`` before any update.

        Without a ``fallback`` the caller vouches for an update before this
        read (a training call that has just updated), which saves the
        device-side choice."""
        correction = 1 - self.momentum**self.count.float()
        if fallback is None:
            return self.value / correction
        average = self.value / correction.clamp(min=_EPS)
        return torch.where(self.count > 0, average, fallback.to(average))


@MODELS.register_module()
class ScaleFreeSignal(nn.Module):
    """``s_i = l_i / m_i`` with ``m_i`` a running mean of term ``i``.

    Eq. (11) in each term's own units: no term gains weight for being small
    in absolute size. At stationarity ``s_i ~ 1`` for every term and
    ``p ~ prior``; the fixed point ``p_i / prior_i >= exp(-s_i / beta)``
    (``s_j >= 0``) keeps 25% of the prior while ``l_i <= beta ln 4 * m_i``.

    Args:
        num_terms (int): ``n``.
        momentum (float): Momentum of ``m``. Defaults to 0.99.
    """

    def __init__(self, num_terms: int, momentum: float = 0.99) -> None:
        super().__init__()
        self.mean = BiasCorrectedEMA(num_terms, momentum)

    follows_batches = True

    def forward(self,
                rows: Tensor,
                prior: Tensor,
                batch_mean: Optional[Tensor] = None) -> Tensor:
        """Signal ``[R, n]`` for detached raw rows ``[R, n]``; ``batch_mean``
        (``[n]``, the mean row of the whole batch over ranks) replaces
        ``rows.mean(0)`` when given."""
        if batch_mean is None:
            batch_mean = rows.mean(dim=0)  # [n]
        if self.training:
            self.mean.update(batch_mean)
            scale = self.mean.read()  # just updated
        else:
            scale = self.mean.read(batch_mean)
        return rows / scale.to(rows).clamp(min=_EPS)


@MODELS.register_module()
class ProgressSignal(nn.Module):
    """How fast each term's log-loss falls, in units of its usual rate.

    ``d_i = slow_i - fast_i``, the gap between a slow and a fast moving
    average of ``log l_i`` (batch level), is > 0 while ``l_i`` falls. It is
    divided by ``max(sigma, rms_j d_j)``, ``sigma^2`` a running mean of
    ``mean_j d_j^2``, so ``s`` is unitless and ``sum_j s_j^2 <= n``: the
    fixed point keeps ``p_i / prior_i >= exp(-sqrt(2 n) / beta)``. The term
    whose log-loss falls slowest gets the smallest ``s`` and the most weight
    (FAMO's signal); a starved term stops improving and regains weight.

    Args:
        num_terms (int): ``n``.
        fast_momentum (float): Momentum of the fast average.
            Defaults to 0.9.
        slow_momentum (float): Momentum of the slow average, >
            ``fast_momentum``. Defaults to 0.99.
        scale_momentum (float): Momentum of ``sigma^2``. Defaults to 0.99.
        min_scale (float): The smallest divisor. In the first step the two
            averages agree and ``d`` is rounding error (~1e-6 of ``log l``),
            which the division by ``rms_j d_j`` would raise to a signal of
            unit size; ``min_scale = 1e-3`` keeps it below 1e-2 and is far
            below the gaps of a learning run (~1e-2). Defaults to 0.0, the
            setting of the benchmark in ``docs/results.md``.
    """

    def __init__(self,
                 num_terms: int,
                 fast_momentum: float = 0.9,
                 slow_momentum: float = 0.99,
                 scale_momentum: float = 0.99,
                 min_scale: float = 0.0) -> None:
        super().__init__()
        self.min_scale = check_nonnegative('min_scale', min_scale)
        self.fast = BiasCorrectedEMA(num_terms, fast_momentum)
        self.slow = BiasCorrectedEMA(num_terms, slow_momentum)
        self.square = BiasCorrectedEMA(1, scale_momentum)

    follows_batches = True

    def forward(self,
                rows: Tensor,
                prior: Tensor,
                batch_mean: Optional[Tensor] = None) -> Tensor:
        """Signal ``[1, n]``, the same for every row of ``rows`` ``[R, n]``;
        ``batch_mean`` as in :meth:`ScaleFreeSignal.forward`."""
        if batch_mean is None:
            batch_mean = rows.mean(dim=0)  # [n]
        log_loss = batch_mean.clamp(min=_EPS).log()
        if self.training:
            self.fast.update(log_loss)
            self.slow.update(log_loss)
        gap = self.slow.read(log_loss) - self.fast.read(log_loss)  # [n]
        square = gap.square().mean().reshape(1)
        if self.training:
            self.square.update(square)
        sigma2 = torch.maximum(self.square.read(square), square)
        scale = sigma2.sqrt().clamp(min=max(self.min_scale, _EPS))
        return (gap / scale)[None].to(rows)


@MODELS.register_module()
class TeacherSignal(nn.Module):
    """``s_i = -l_i / M``, ``M = sum_j prior_j l_j`` of the same row: the
    network ascends Eq. (11) under the KL guard, so the hardest term of
    each image gains weight. Fixed point ``p_i ~ prior_i * exp(l_i /
    (beta M))``; as ``l_i / M <= 1 / prior_i``, no image's terms can be
    starved beyond the floor derived in ``docs/slf.md``. No state."""

    follows_batches = False

    def forward(self,
                rows: Tensor,
                prior: Tensor,
                batch_mean: Optional[Tensor] = None) -> Tensor:
        """Signal ``[R, n]`` for detached raw rows ``[R, n]``."""
        magnitude = (prior.to(rows) * rows).sum(dim=-1, keepdim=True)
        return -rows / magnitude.clamp(min=_EPS)


def build_signal(objective: str,
                 num_terms: int,
                 scale_momentum: float = 0.99,
                 fast_momentum: float = 0.9,
                 slow_momentum: float = 0.99,
                 min_scale: float = 0.0) -> Optional[nn.Module]:
    """The signal module of a decision objective; None for ``'joint'``.

    Args:
        objective (str): One of :data:`DECISION_OBJECTIVES`.
        num_terms (int): ``n``.
        scale_momentum (float): Running-scale momentum. Defaults to 0.99.
        fast_momentum (float): Fast average (``'progress'``).
            Defaults to 0.9.
        slow_momentum (float): Slow average (``'progress'``).
            Defaults to 0.99.
        min_scale (float): Smallest divisor of the ``'progress'`` signal.
            Defaults to 0.0.

    Returns:
        nn.Module, optional: Maps detached rows ``[R, n]`` and the prior to
        the signal ``s``.
    """
    if objective not in DECISION_OBJECTIVES:
        raise ValueError(f'decision_objective must be one of '
                         f'{DECISION_OBJECTIVES}, got {objective!r}')
    scale_momentum = check_momentum('scale_momentum', scale_momentum)
    fast_momentum = check_momentum('fast_momentum', fast_momentum)
    slow_momentum = check_momentum('slow_momentum', slow_momentum)
    if not fast_momentum < slow_momentum:
        raise ValueError(
            'fast_momentum must be < slow_momentum (the fast average follows '
            f'the loss more closely), got {fast_momentum} and '
            f'{slow_momentum}')
    if objective == 'scale_free':
        return ScaleFreeSignal(num_terms, scale_momentum)
    if objective == 'progress':
        return ProgressSignal(num_terms, fast_momentum, slow_momentum,
                              scale_momentum, min_scale)
    if objective == 'teacher':
        return TeacherSignal()
    return None
