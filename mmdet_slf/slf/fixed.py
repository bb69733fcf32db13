# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Hand-tuned constant weights, the baseline."""
from typing import Optional, Sequence

from mmdet.registry import MODELS
from torch import Tensor

from .base import BaseWeighting, WeightsAndExtra
from .checks import Lambdas, as_lambdas


@MODELS.register_module()
class FixedWeighting(BaseWeighting):
    """Hand-tuned constant weights (YOLO's ``lambda_coord=5, ...``).

    Args:
        terms (Sequence[str]): Term names.
        weights (Sequence[float] | dict, optional): One weight per term, as a
            list in ``terms`` order or a ``{term: weight}`` dict.
            Defaults to None (all ones).
        nonfinite (str): See :class:`BaseWeighting`. Defaults to 'raise'.
    """

    def __init__(self,
                 terms: Sequence[str],
                 weights: Lambdas = None,
                 nonfinite: str = 'raise') -> None:
        super().__init__(terms, nonfinite)
        self.register_buffer(
            'weights', as_lambdas(weights, self.terms, 'weights'),
            persistent=False)

    def _compute_weights(self, raw: Tensor, features: Optional[Tensor],
                         shared: Optional[Tensor]) -> WeightsAndExtra:
        return self.weights.to(raw), {}
