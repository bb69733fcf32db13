# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Dynamic Weight Average (Liu et al., CVPR 2019)."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from .base import BaseWeighting, WeightsAndExtra
from .diagnostics import batch_level
from .checks import check_count, check_positive, resolve_scale


@MODELS.register_module()
class DWAWeighting(BaseWeighting):
    """Dynamic Weight Average (Liu et al., CVPR 2019) over windows of
    training calls.

    ``w_i = scale * softmax(r / T)_i`` with ``r_i = L_i(t-1) / L_i(t-2)``,
    where ``L_i(t)`` is the mean of the batch-level raw term over window
    ``t``: ``window`` consecutive training calls. The paper averages over
    epochs, so ``window`` should be one epoch's iterations (63 for the demo's
    2000 images at batch 32). The weights are uniform until two windows have
    finished, and they change only when a window finishes. The averages
    follow the whole batch's terms, averaged over ranks, so every rank holds
    the same.

    Args:
        terms (Sequence[str]): Term names.
        window (int): Training calls per average, >= 1. Defaults to 100.
        temperature (float): ``T`` > 0. Defaults to 2.0 (the paper's value).
        scale (float, optional): Sum of the weights. Defaults to None (``n``).
        nonfinite (str): See :class:`BaseWeighting`. Defaults to 'raise'.
    """

    def __init__(self,
                 terms: Sequence[str],
                 window: int = 100,
                 temperature: float = 2.0,
                 scale: Optional[float] = None,
                 nonfinite: str = 'raise') -> None:
        super().__init__(terms, nonfinite)
        self.window = check_count('window', window)
        self.temperature = check_positive('temperature', temperature)
        self.scale = resolve_scale(scale, None, self.num_terms)
        # The running window, the means of the last two finished windows,
        # and how many windows have finished.
        self.register_buffer('window_sum', torch.zeros(self.num_terms))
        self.register_buffer('window_calls', torch.zeros((),
                                                         dtype=torch.long))
        self.register_buffer('last_mean', torch.zeros(self.num_terms))
        self.register_buffer('prev_mean', torch.zeros(self.num_terms))
        self.register_buffer('num_windows', torch.zeros((), dtype=torch.long))

    _batch_statistic = staticmethod(batch_level)
    term_floor = 0.0  # ratios of averages of the terms
    floor_on_batch_terms = True  # the only terms DWA reads

    def _compute_weights(self, raw: Tensor, features: Optional[Tensor],
                         shared: Optional[Tensor]) -> WeightsAndExtra:
        # Branches are selected on the device: no host read of a counter.
        # A term whose earlier mean is 0 has no rate yet: ratio 1, not the
        # 1e11 that dividing by a tiny guard would give it.
        ratio = torch.where(self.prev_mean > 0,
                            self.last_mean / self.prev_mean.clamp(min=1e-12),
                            torch.ones_like(self.last_mean))
        learned = self.scale * F.softmax(ratio / self.temperature, dim=0)
        uniform = torch.full_like(self.last_mean, self.scale / self.num_terms)
        weights = torch.where(self.num_windows >= 2, learned, uniform)
        if self.training:
            # The whole batch's terms (the same on every rank).
            batch_raw = batch_level(raw.detach()) if shared is None \
                else shared
            total = self.window_sum + batch_raw.to(self.window_sum)
            calls = self.window_calls + 1
            done = calls >= self.window
            self.prev_mean.copy_(
                torch.where(done, self.last_mean, self.prev_mean))
            # Divided by the calls summed, which is the window unless a
            # resumed run was given a shorter one.
            self.last_mean.copy_(
                torch.where(done, total / calls, self.last_mean))
            self.window_sum.copy_(
                torch.where(done, torch.zeros_like(total), total))
            self.window_calls.copy_(torch.where(done, 0, calls))
            self.num_windows.add_(done.long())
        return weights.to(raw), {}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The per-iteration EMAs of the earlier DWA cannot be turned into
        # window means; restarting them silently would change the run.
        if f'{prefix}ema' in state_dict:
            raise ValueError(
                f'{prefix}ema: this checkpoint holds the state of the '
                f'earlier per-iteration EMA DWAWeighting, which the windowed '
                f'DWAWeighting cannot continue; load it with mmdet-slf '
                f'083d911 or earlier, or drop the weighting\'s keys to '
                f'start its averages anew')
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, window={self.window}, '
                f'temperature={self.temperature}')
