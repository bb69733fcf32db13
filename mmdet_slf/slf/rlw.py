# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Random Loss Weighting (RLW; Lin et al., TMLR 2022)."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.dist import broadcast, get_world_size
from torch import Tensor

from .base import BaseWeighting, WeightsAndExtra
from .checks import resolve_scale


@MODELS.register_module()
class RandomWeighting(BaseWeighting):
    """Random Loss Weighting (RLW; Lin et al., TMLR 2022).

    Each training call draws ``w = scale * softmax(z)``, ``z ~ N(0, I)``;
    in eval mode the weights are the expectation ``scale / n``. In a
    distributed run rank 0's draw is broadcast, so every rank weights its
    loss alike, also under a rank-dependent seed (``diff_rank_seed``): the
    averaged gradient is then that of one weighted loss over the whole
    batch.

    Args:
        terms (Sequence[str]): Term names.
        scale (float, optional): Sum of the weights. Defaults to None (``n``).
        nonfinite (str): See :class:`BaseWeighting`. Defaults to 'raise'.
    """

    def __init__(self,
                 terms: Sequence[str],
                 scale: Optional[float] = None,
                 nonfinite: str = 'raise') -> None:
        super().__init__(terms, nonfinite)
        self.scale = resolve_scale(scale, None, self.num_terms)

    def _compute_weights(self, raw: Tensor, features: Optional[Tensor],
                         shared: Optional[Tensor]) -> WeightsAndExtra:
        if not self.training:
            return raw.new_full((self.num_terms, ),
                                self.scale / self.num_terms), {}
        noise = torch.randn(self.num_terms, device=raw.device, dtype=raw.dtype)
        if get_world_size() > 1:  # no collective in one process
            broadcast(noise, src=0)
        return self.scale * F.softmax(noise, dim=0), {}
