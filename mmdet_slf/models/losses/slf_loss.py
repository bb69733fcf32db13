# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""``SLFLoss``: stochastic selection among candidate losses, Eq. (11)."""
import re
from typing import Dict, List, Optional, Sequence

import torch
from mmdet.registry import MODELS
from mmdet.utils import ConfigType
from torch import Tensor, nn

from mmdet_slf.slf.builder import build_checked


def _default_name(cfg: dict) -> str:
    """``'CrossEntropyLoss'`` -> ``'crossentropy'`` (no ``loss`` in names)."""
    name = re.sub(r'loss', '', str(cfg.get('type', 'term')), flags=re.I)
    return name.lower() or 'term'


# The weighting of SLFLoss unless its config names one: Algorithm 1's
# selection among the candidates, K one-hot draws per call
# (docs/candidate_losses.md).
SELECTION = dict(
    type='SLFWeighting',
    scale=1.0,
    decision_objective='joint',
    estimator='gumbel',
    num_samples=4)


@MODELS.register_module()
class SLFLoss(nn.Module):
    """Drop-in loss that selects among candidate losses with SLF, Eq. (11).

    Every candidate ``l_i`` is computed on the same ``(pred, target)`` with
    the caller's ``weight``, ``avg_factor`` and ``reduction_override``; the
    weighting (by default :class:`SLFWeighting`, reading the detached
    candidate values) turns them into ``sum_i w_i * l_i``. Extra objective
    terms of the weighting (the KL guard ``loss_slf_kl``, the decision
    objective ``loss_slf_decision``) are added to the returned tensor;
    weights and temperature are kept in ``last_diagnostics`` for
    :class:`SLFLoggerHook`, because a head's ``loss_cls`` returns one tensor.

    Example::

        loss_cls=dict(
            type='SLFLoss',
            use_sigmoid=True,
            candidates=[
                dict(type='CrossEntropyLoss', use_sigmoid=True),
                dict(type='FocalLoss', use_sigmoid=True)])

    Args:
        candidates (Sequence[dict]): Configs of candidate losses, >= 1.
        names (Sequence[str], optional): Term names for the candidates, used
            in diagnostics (``slf_w_<name>``). Defaults to None (derived from
            the candidate types).
        weighting (dict): Weighting config; ``terms`` is filled in from
            ``names``. Defaults to :data:`SELECTION`, the paper's selection:
            candidates are alternatives for one role, so their weights sum
            to 1 (``scale=1``) and each call draws ``K`` one-hot
            Gumbel-softmax samples, averaged into weights that are multiples
            of ``1 / K``, with the joint objective of Algorithm 1 (and this
            project's KL guard). The images a head passes in one call (for
            most mmdet heads the whole batch, or one feature level of it)
            share that draw. ``SLFWeighting``'s own defaults are for terms
            with distinct roles (``docs/slf.md``).
        loss_weight (float): Multiplier of the result. Defaults to 1.0.
        use_sigmoid (bool, optional): Whether the candidates score classes
            with sigmoids. mmdet heads read ``use_sigmoid`` from the
            ``loss_cls`` config to size the classifier (``num_classes`` or
            ``num_classes + 1``), so it must be set here when the candidates
            are sigmoid losses; it must agree with every candidate that has a
            ``use_sigmoid`` attribute. Defaults to None (softmax or a loss
            without the notion, e.g. a box loss).
    """

    def __init__(self,
                 candidates: Sequence[ConfigType],
                 names: Optional[Sequence[str]] = None,
                 weighting: ConfigType = SELECTION,
                 loss_weight: float = 1.0,
                 use_sigmoid: Optional[bool] = None) -> None:
        super().__init__()
        if not isinstance(candidates, Sequence) or isinstance(
                candidates, (str, dict)) or len(candidates) == 0:
            raise ValueError('SLFLoss candidates must be a non-empty list of '
                             f'loss configs, got {candidates!r}')
        if names is None:
            names = [_default_name(cfg) for cfg in candidates]
            if len(set(names)) != len(names):
                names = [f'{name}{i}' for i, name in enumerate(names)]
        names = list(names)
        if len(names) != len(candidates):
            raise ValueError(f'SLFLoss names must have one entry per '
                             f'candidate ({len(candidates)}), got {names}')
        self.names = names
        self.candidates = nn.ModuleList(
            [MODELS.build(cfg) for cfg in candidates])
        self.use_sigmoid = self._check_use_sigmoid(use_sigmoid)
        weighting = dict(weighting)
        weighting['terms'] = names
        # The loss cannot know where its config sits; name the loss instead.
        self.weighting = build_checked(
            weighting, f'the weighting key of SLFLoss over {names} (e.g. '
            'model.bbox_head.loss_cls.weighting)')
        self.loss_weight = loss_weight

    def _check_use_sigmoid(self, use_sigmoid: Optional[bool]) -> bool:
        """The candidates' common ``use_sigmoid``, checked against ours."""
        flags = {
            name: bool(candidate.use_sigmoid)
            for name, candidate in zip(self.names, self.candidates)
            if hasattr(candidate, 'use_sigmoid')
        }
        if len(set(flags.values())) > 1:
            raise ValueError('SLFLoss candidates mix sigmoid and softmax '
                             f'scores (use_sigmoid {flags}); a head has one')
        inferred = next(iter(flags.values())) if flags else None
        if inferred is not None and bool(use_sigmoid) != inferred:
            raise ValueError(
                f'SLFLoss use_sigmoid={use_sigmoid} but its candidates have '
                f'use_sigmoid {flags}: set use_sigmoid={inferred} on SLFLoss, '
                'which is where mmdet heads read it to size the classifier')
        return bool(use_sigmoid)

    def init_weights(self) -> None:
        """Restore the decision network's prior start after an owner's
        ``init_cfg`` has run."""
        self.weighting.init_weights()

    @property
    def last_diagnostics(self) -> Dict[str, float]:
        """Weights and temperature of the last call (read to the host)."""
        return self.weighting.last_diagnostics

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                **kwargs) -> Tensor:
        """Weighted sum of the candidates; arguments as in mmdet's losses."""
        values: List[Tensor] = [
            candidate(
                pred,
                target,
                weight=weight,
                avg_factor=avg_factor,
                reduction_override=reduction_override,
                **kwargs) for candidate in self.candidates
        ]
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) != 1:
            raise ValueError(
                'SLFLoss candidates must return the same shape for the same '
                f'input, got '
                f'{dict(zip(self.names, [tuple(v.shape) for v in values]))}')
        # One decision per call; element-wise results ('none') are weighted
        # with the weights sampled from their means.
        raw = torch.stack(
            [value if value.dim() == 0 else value.mean() for value in values])
        weights, extra = self.weighting.weigh(raw)
        if weights is None:
            # A non-finite candidate, dropped by the weighting's policy.
            return extra['loss_slf_nonfinite']
        total = sum(weights[i] * value for i, value in enumerate(values))
        objective = {key: value for key, value in extra.items()
                     if 'loss' in key}
        if objective and total.dim() > 0:
            # Added to an element-wise tensor, a scalar term would count once
            # per element in the caller's sum (masked elements included).
            raise ValueError(
                f'SLFLoss with reduction "none" returns element-wise losses, '
                f'to which its weighting\'s own objective terms '
                f'{sorted(objective)} cannot be added once; use reduction '
                '"mean" or "sum", or a weighting without such terms (e.g. '
                "decision_objective='joint' with kl_weight=0, or "
                'FixedWeighting)')
        for value in objective.values():
            total = total + value
        return self.loss_weight * total
