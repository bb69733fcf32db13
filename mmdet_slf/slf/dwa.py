# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Dynamic Weight Average (Liu et al., CVPR 2019)."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from .base import BaseWeighting, WeightsAndExtra, batch_level
from .checks import check_momentum, check_positive, resolve_scale


@MODELS.register_module()
class DWAWeighting(BaseWeighting):
    """Dynamic Weight Average (Liu et al., CVPR 2019), per iteration.

    ``w_i = scale * softmax(r / T)_i`` with ``r_i = L_i(t-1) / L_i(t-2)``,
    where ``L_i`` is an exponential moving average of the batch-level raw
    term (the paper averages over epochs; the EMA with ``momentum`` is the
    per-iteration analogue). Uniform weights until two averages exist. The
    averages follow the whole batch's terms, averaged over ranks, so every
    rank holds the same.

    Args:
        terms (Sequence[str]): Term names.
        temperature (float): ``T`` > 0. Defaults to 2.0 (the paper's value).
        scale (float, optional): Sum of the weights. Defaults to None (``n``).
        momentum (float): EMA momentum in [0, 1). Defaults to 0.9.
        nonfinite (str): See :class:`BaseWeighting`. Defaults to 'raise'.
    """

    def __init__(self,
                 terms: Sequence[str],
                 temperature: float = 2.0,
                 scale: Optional[float] = None,
                 momentum: float = 0.9,
                 nonfinite: str = 'raise') -> None:
        super().__init__(terms, nonfinite)
        self.temperature = check_positive('temperature', temperature)
        self.scale = resolve_scale(scale, None, self.num_terms)
        self.momentum = check_momentum('momentum', momentum)
        self.register_buffer('ema', torch.zeros(self.num_terms))
        self.register_buffer('prev_ema', torch.zeros(self.num_terms))
        self.register_buffer('num_updates', torch.zeros((), dtype=torch.long))

    _batch_statistic = staticmethod(batch_level)
    term_floor = 0.0  # ratios of running averages of the terms

    def _compute_weights(self, raw: Tensor, features: Optional[Tensor],
                         shared: Optional[Tensor]) -> WeightsAndExtra:
        # The whole batch's terms when training (the same on every rank).
        batch_raw = batch_level(raw.detach()) if shared is None else shared
        # Branches are selected on the device: no host read of the counter.
        # A term whose earlier average is 0 has no rate yet: ratio 1, not
        # the 1e11 that dividing by a tiny guard would give it.
        ratio = torch.where(self.prev_ema > 0,
                            self.ema / self.prev_ema.clamp(min=1e-12),
                            torch.ones_like(self.ema))
        learned = self.scale * F.softmax(ratio / self.temperature, dim=0)
        uniform = torch.full_like(self.ema, self.scale / self.num_terms)
        weights = torch.where(self.num_updates >= 2, learned, uniform)
        if self.training:
            self.prev_ema.copy_(self.ema)
            blended = self.ema * self.momentum + batch_raw.to(self.ema) * (
                1 - self.momentum)
            self.ema.copy_(
                torch.where(self.num_updates == 0, batch_raw.to(self.ema),
                            blended))
            self.num_updates.add_(1)
        return weights.to(raw), {}
