# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Homoscedastic-uncertainty weighting (Kendall et al., CVPR 2018)."""
from typing import Optional, Sequence

import torch
from mmdet.registry import MODELS
from torch import Tensor, nn

from .base import BaseWeighting, WeightsAndExtra
from .checks import Lambdas, positive_lambdas


@MODELS.register_module()
class UncertaintyWeighting(BaseWeighting):
    """Homoscedastic-uncertainty weighting (Kendall et al., CVPR 2018).

    Learns ``s_i = log sigma_i^2`` per term; the objective is
    ``sum_i exp(-s_i) * l_i + s_i``. ``s_i`` starts at ``-log(lambda_i)`` so
    the initial weights equal ``init_weights``.

    Args:
        terms (Sequence[str]): Term names.
        init_weights (Sequence[float] | dict, optional): Initial weights
            ``exp(-s_i)``, > 0. Defaults to None (all ones).
        nonfinite (str): See :class:`BaseWeighting`. Defaults to 'raise'.
    """

    def __init__(self,
                 terms: Sequence[str],
                 init_weights: Lambdas = None,
                 nonfinite: str = 'raise') -> None:
        super().__init__(terms, nonfinite)
        lambdas = positive_lambdas(init_weights, self.terms, 'init_weights')
        if lambdas is None:
            lambdas = torch.ones(self.num_terms)
        self.log_vars = nn.Parameter(-lambdas.log())

    def _compute_weights(self, raw: Tensor, features: Optional[Tensor],
                         shared: Optional[Tensor]) -> WeightsAndExtra:
        weights = torch.exp(-self.log_vars).to(raw)
        return weights, {'loss_uncertainty_reg': self.log_vars.sum()}
