# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""FAMO: Fast Adaptive Multitask Optimization (Liu et al., NeurIPS 2023).

Follows the update rule of the authors' reference code
(github.com/Cranial-XIX/FAMO, ``famo.py``, MIT licence), re-implemented here
with the logits and the Adam state kept in buffers.
"""
from typing import Optional, Sequence

import torch
from mmdet.registry import MODELS
from mmengine.logging import print_log
from torch import Tensor

from .base import BaseWeighting, WeightsAndExtra
from .diagnostics import batch_level
from .checks import (Lambdas, as_lambdas, check_nonnegative, check_positive,
                     is_finite_number, positive_lambdas, resolve_scale)


@MODELS.register_module()
class FAMOWeighting(BaseWeighting):
    """FAMO: weights that equalise the rates at which the log-losses fall.

    Logits ``xi`` give ``z = softmax(xi)``. With ``D_i = l_i - min_i + eps``
    (batch-level terms), the detector is trained on
    ``sum_i w_i l_i`` with detached ``w_i = scale * (z_i / D_i) /
    sum_j (z_j / D_j)``, whose gradient is that of FAMO's
    ``scale * sum_i z_i log D_i / c``, ``c = sum_j z_j / D_j``. After a
    step, ``delta_i = log D_i(before) - log D_i(after)`` and ``xi`` takes one
    Adam step (``lr``, L2 ``weight_decay``) on the gradient
    ``J_softmax(xi)^T delta``, lowering the weight of terms that fell fastest.

    Departure from the paper: the paper measures "after" with one extra
    no-grad forward of the same batch. Here "after" is the next training
    call's batch: O(n), no extra forward, but ``delta`` also carries the
    difference between two batches. ``xi`` and the Adam moments are buffers
    updated in the forward from the terms of the whole batch, averaged over
    ranks, so every rank holds the same copy (no autograd parameter, nothing
    for DDP to reduce); they are saved in checkpoints, so a resumed run
    continues exactly.

    Args:
        terms (Sequence[str]): Term names.
        init_weights (Sequence[float] | dict, optional): Start ``z`` at these
            weights (normalised), e.g. the fixed lambdas. Defaults to None
            (``xi = 0``, uniform ``z``).
        scale (float, optional): Sum of the weights. None: ``sum
            (init_weights)``, or ``n``. Defaults to None.
        lr (float): Adam learning rate of ``xi``. Defaults to 0.025 (the
            reference code's).
        weight_decay (float): Adam's L2 coefficient on ``xi``.
            Defaults to 1e-3.
        min_losses (Sequence[float] | dict, optional): Lower bounds
            ``min_i`` of the terms. Defaults to None (zeros).
        eps (float): ``eps`` in ``D``. Defaults to 1e-8.
        betas (tuple[float, float]): Adam's ``(beta1, beta2)``.
            Defaults to (0.9, 0.999).
        nonfinite (str): See :class:`BaseWeighting`. Defaults to 'raise'.
    """

    def __init__(self,
                 terms: Sequence[str],
                 init_weights: Lambdas = None,
                 scale: Optional[float] = None,
                 lr: float = 0.025,
                 weight_decay: float = 1e-3,
                 min_losses: Lambdas = None,
                 eps: float = 1e-8,
                 betas: Sequence[float] = (0.9, 0.999),
                 nonfinite: str = 'raise') -> None:
        super().__init__(terms, nonfinite)
        lambdas = positive_lambdas(init_weights, self.terms, 'init_weights')
        self.scale = resolve_scale(scale, lambdas, self.num_terms)
        self.lr = check_positive('lr', lr)
        self.weight_decay = check_nonnegative('weight_decay', weight_decay)
        self.eps = check_positive('eps', eps)
        if not isinstance(betas, (list, tuple)) or len(betas) != 2 or not all(
                is_finite_number(b) and 0 <= b < 1 for b in betas):
            raise ValueError(f'betas must be two numbers in [0, 1), got '
                             f'{betas!r}')
        self.betas = (float(betas[0]), float(betas[1]))
        logits = torch.zeros(self.num_terms) if lambdas is None else \
            (lambdas / lambdas.sum()).log()
        self.register_buffer('logits', logits)  # xi
        # A constant of the config, like a prior: not saved, so a run
        # resumed with other bounds uses the bounds it is given.
        self.register_buffer(
            'min_losses',
            torch.zeros(self.num_terms) if min_losses is None else
            as_lambdas(min_losses, self.terms, 'min_losses'),
            persistent=False)
        self.register_buffer('prev_log_gap', torch.zeros(self.num_terms))
        self.register_buffer('has_prev', torch.zeros((), dtype=torch.bool))
        self.register_buffer('adam_m', torch.zeros(self.num_terms))
        self.register_buffer('adam_v', torch.zeros(self.num_terms))
        self.register_buffer('adam_step', torch.zeros((), dtype=torch.long))

    _batch_statistic = staticmethod(batch_level)
    # min_losses bounds the batch-level terms, the only ones FAMO reads.
    floor_on_batch_terms = True

    @property
    def term_floor(self) -> Tensor:
        # log(l_i - min_i): a term below its bound has no log
        return self.min_losses

    def _compute_weights(self, raw: Tensor, features: Optional[Tensor],
                         shared: Optional[Tensor]) -> WeightsAndExtra:
        # The whole batch's terms when training (the same on every rank).
        batch_raw = batch_level(raw.detach()) if shared is None else shared
        log_gap = (batch_raw.to(self.logits) - self.min_losses +
                   self.eps).clamp(min=self.eps).log()  # log D, [n]
        if self.training:
            self._update_logits(self.prev_log_gap - log_gap)
            self.prev_log_gap.copy_(log_gap)
            self.has_prev.fill_(True)
        z = torch.softmax(self.logits, dim=0)
        inverse = z / log_gap.exp()  # z_i / D_i
        weights = self.scale * inverse / inverse.sum()
        return weights.to(raw), {'slf_p_': z}

    @torch.no_grad()
    def _update_logits(self, delta: Tensor) -> None:
        """One Adam step on ``xi`` with gradient ``J_softmax^T delta``; a
        no-op (selected on the device) before a previous call exists."""
        z = torch.softmax(self.logits, dim=0)
        grad = z * (delta - (z * delta).sum())  # J_softmax(xi)^T delta
        grad = grad + self.weight_decay * self.logits
        beta1, beta2 = self.betas
        step = self.adam_step + 1
        adam_m = beta1 * self.adam_m + (1 - beta1) * grad
        adam_v = beta2 * self.adam_v + (1 - beta2) * grad.square()
        m_hat = adam_m / (1 - beta1**step.float())
        v_hat = adam_v / (1 - beta2**step.float())
        logits = self.logits - self.lr * m_hat / (v_hat.sqrt() + 1e-8)
        keep = self.has_prev
        self.logits.copy_(torch.where(keep, logits, self.logits))
        self.adam_m.copy_(torch.where(keep, adam_m, self.adam_m))
        self.adam_v.copy_(torch.where(keep, adam_v, self.adam_v))
        self.adam_step.copy_(torch.where(keep, step, self.adam_step))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before 2026-11-30 saved the bounds; the
        # config's bounds are the ones that apply.
        saved = state_dict.pop(f'{prefix}min_losses', None)
        if saved is not None and not torch.equal(
                saved.to(self.min_losses), self.min_losses):
            print_log(
                f'{prefix}min_losses: the checkpoint holds '
                f'{saved.tolist()}, the config {self.min_losses.tolist()}; '
                'the config\'s bounds are used', logger='current', level=30)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f'terms={self.terms}, scale={self.scale}, lr={self.lr}, '
                f'weight_decay={self.weight_decay}')
