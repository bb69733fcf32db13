# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Homoscedastic-uncertainty weighting (Kendall et al., CVPR 2018)."""
from typing import Optional, Sequence

import torch
from mmdet.registry import MODELS
from torch import Tensor, nn

from .base import BaseWeighting, WeightsAndExtra
from .diagnostics import batch_level
from .checks import Lambdas, positive_lambdas


@MODELS.register_module()
class UncertaintyWeighting(BaseWeighting):
    """Homoscedastic-uncertainty weighting (Kendall et al., CVPR 2018).

    Learns ``s_i = log sigma_i^2`` per term; the objective is
    ``sum_i exp(-s_i) * l_i + s_i``. ``s_i`` starts at ``-log(lambda_i)`` so
    the initial weights equal ``init_weights``.

    Nothing bounds the total weight ``sum_i exp(-s_i)``: at the minimum over
    ``s``, ``exp(-s_i) = 1 / l_i``, so the total grows as the terms fall
    (on the demo, from 7.5 to about 78 in 1,200 iterations). With
    ``fixed_total=True`` the detector is trained on the weights rescaled to
    the total of ``init_weights`` at every step, and ``s`` alone on
    Kendall's objective with the raw terms detached: ``s`` follows the same
    rule, and only the total differs. This separates the balance the method
    learns from the growth of its total (see ``docs/slf.md``).

    Args:
        terms (Sequence[str]): Term names.
        init_weights (Sequence[float] | dict, optional): Initial weights
            ``exp(-s_i)``, > 0. Defaults to None (all ones).
        fixed_total (bool): Hold the detector's total weight at
            ``sum(init_weights)``; ``s`` is then trained on
            ``loss_uncertainty_objective`` instead of through the detector's
            terms plus ``loss_uncertainty_reg``. Defaults to False (Kendall
            et al.).
        nonfinite (str): See :class:`BaseWeighting`. Defaults to 'raise'.
    """

    extra_terms = ('slf_nonfinite', 'uncertainty_reg',
                   'uncertainty_objective')

    def __init__(self,
                 terms: Sequence[str],
                 init_weights: Lambdas = None,
                 fixed_total: bool = False,
                 nonfinite: str = 'raise') -> None:
        super().__init__(terms, nonfinite)
        if not isinstance(fixed_total, bool):
            raise ValueError(
                f'fixed_total must be True or False, got {fixed_total!r}')
        lambdas = positive_lambdas(init_weights, self.terms, 'init_weights')
        if lambdas is None:
            lambdas = torch.ones(self.num_terms)
        self.log_vars = nn.Parameter(-lambdas.log())
        self.fixed_total = fixed_total
        self.total = float(lambdas.sum())

    # exp(-s) l + s: for l < 0 it falls without bound as s -> -inf
    term_floor = 0.0

    def _compute_weights(self, raw: Tensor, features: Optional[Tensor],
                         shared: Optional[Tensor]) -> WeightsAndExtra:
        weights = torch.exp(-self.log_vars).to(raw)
        if not self.fixed_total:
            return weights, {'loss_uncertainty_reg': self.log_vars.sum()}
        # s is trained here alone, on the batch-level terms the weights
        # multiply in BaseWeighting.forward; the detector gets no gradient
        # through the normaliser.
        objective = (weights * batch_level(raw).detach()).sum() \
            + self.log_vars.sum()
        weights = (weights * (self.total / weights.sum())).detach()
        return weights, {'loss_uncertainty_objective': objective}

    def extra_repr(self) -> str:
        return f'terms={self.terms}, fixed_total={self.fixed_total}'
