# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The Stochastic Loss Function weighting, Eq. (4), (9)-(11), Algorithm 1."""
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from .base import BaseWeighting, WeightsAndExtra
from .checks import (Lambdas, check_choice, check_count, check_nonnegative,
                     check_positive, check_repeatable, positive_lambdas,
                     resolve_scale)
from .decision import normalize_prior
from .estimators import ESTIMATORS, estimate_p_hat
from .objectives import (DECISION_OBJECTIVES, build_signal, prior_guards,
                         decision_objective)
from .precision import at_least_float32
from .schedule import check_temperature_schedule, scheduled_temperature


@MODELS.register_module()
class SLFWeighting(BaseWeighting):
    """Stochastic Loss Function weighting, Eq. (4), (9)-(11), Algorithm 1.

    A decision network ``h`` (Eq. 4) maps decision features (or the detached
    raw terms) to logits ``log p``; an estimator turns ``p`` into ``p_hat``
    (the paper's: ``K`` straight-through Gumbel-softmax samples, Eq. 10), and
    the weights are ``scale * p_hat`` (Eq. 11). With per-image terms each
    image draws its own ``p_hat``.

    ``decision_objective`` selects what trains ``h``'s parameters ``v``.
    ``'joint'`` is Algorithm 1: ``v`` gets the gradient of the detector's
    own objective through the straight-through ``p_hat`` (plus the optional
    KL guard and entropy bonus). It moves probability to the currently
    smallest term and collapses (``docs/slf.md``). The other objectives are
    ours: the detector is trained on ``sum_i w_i.detach() * l_i`` and ``v``
    only on ``loss_slf_decision``,
    ``J = E[sum_i p_i s_i] + kl_weight * KL(p || prior)``, with a detached
    signal ``s`` (``'scale_free'``: ``l_i`` over its running mean;
    ``'progress'``: how fast ``log l_i`` falls; ``'teacher'``:
    ``-l_i / sum_j prior_j l_j``). Its minimiser is
    ``p_i ~ prior_i * exp(-s_i / kl_weight)``.

    The defaults are the setting chosen on the benchmark (``docs/slf.md``):
    ``'scale_free'`` with the expected weights. The paper's Algorithm 1 is
    ``decision_objective='joint', estimator='gumbel', kl_weight=0,
    prior=None, prior_init=False, scale=1, detach_features=False`` (where
    a head's features are read); with ``kl_weight=5`` and a prior it is
    Algorithm 1 with this project's KL guard.

    Args:
        terms (Sequence[str]): Term names ``n``.
        prior (Sequence[float] | dict, optional): Hand-tuned lambdas, e.g.
            YOLO's ``[5, 1, 1, 0.5]``; normalised to the decision network's
            start point and the KL guard's target. Defaults to None (uniform).
        num_samples (int): ``K``, samples averaged in Eq. (10), with the
            ``'gumbel'`` and ``'stratified'`` estimators. Defaults to 4.
        temperature (float): ``tau`` of Eq. (6), with ``'gumbel'``; logged
            as ``slf_temperature`` with that estimator only. Defaults to 1.0.
        temperature_schedule (dict, optional): Anneal ``tau`` from
            ``temperature`` to ``final`` over ``num_iters`` training calls:
            ``dict(type='exp'|'linear'|'cosine', final=..., num_iters=...)``,
            with ``'gumbel'`` only. A head's weighting is called once per
            iteration; an ``SLFLoss`` in a head that calls its loss once per
            feature level is called that many times, so its ``num_iters``
            is iterations x levels. Defaults to None (constant).
        scale (float, optional): Multiplier of ``p_hat``. None keeps the fixed
            baseline's total, ``sum(prior)`` (7.5 for YOLO), or ``n`` when no
            prior is given. Defaults to None.
        per_image (bool): Sample one ``p_hat`` per image when the terms are
            per-image vectors (Algorithm 1 works per sample). If False, the
            terms are summed over the batch and one ``p_hat`` is sampled.
            Defaults to True.
        in_channels (int, optional): Length of the decision features; None
            means the network reads the ``n`` detached raw terms.
            Defaults to None.
        decision_net (dict): Config of the decision network (``type``,
            ``hidden_channels``, ...). ``in_channels``, ``num_terms``,
            ``prior`` and ``prior_init`` are this class's to set, and are
            refused here. Defaults to
            ``dict(type='SLFDecisionNetwork', hidden_channels=32)``.
        prior_init (bool): Start the decision network at the prior.
            Defaults to True.
        detach_features (bool): Stop gradients of Eq. (11) from flowing back
            into ``w`` through the decision features. The paper's joint
            backprop lets them flow (False). Defaults to True.
        kl_weight (float): Coefficient of the ``KL(p || prior)`` guard, scaled
            by the detached prior-weighted loss so its pull matches the
            loss's pull at any loss scale. For fixed raw terms ``l`` the
            decision then settles at ``p_i ~ prior_i * exp(-l_i /
            (kl_weight * sum_j prior_j l_j))``. Defaults to 5.0.
        entropy_weight (float): Coefficient of an entropy bonus on ``p``,
            scaled the same way. Defaults to 0.0.
        hard (bool): One-hot Gumbel samples (Eq. 7-9); False uses soft
            samples. Only for ``estimator='gumbel'``. Defaults to True.
        decision_objective (str): What trains ``v``: ``'joint'`` (Algorithm
            1), ``'scale_free'``, ``'progress'`` or ``'teacher'``. The
            non-joint ones need ``kl_weight > 0`` (it is ``beta`` of ``J``),
            ``entropy_weight=0`` and ``detach_features=True``.
            Defaults to 'scale_free'.
        estimator (str): ``p_hat``: ``'gumbel'`` (the paper's, Eq. 9-10),
            ``'stratified'`` (``K`` systematic inverse-CDF draws: same mean,
            variance ``f (1 - f) / K^2`` with ``f = frac(K p)``) or
            ``'expected'`` (``p_hat = p``, no sampling noise).
            Defaults to 'expected'.
        scale_momentum (float): Momentum of the running means that make the
            ``'scale_free'`` and ``'progress'`` signals unitless.
            Defaults to 0.99.
        fast_momentum (float): Fast average of ``log l`` (``'progress'``).
            Defaults to 0.9.
        slow_momentum (float): Slow average of ``log l`` (``'progress'``),
            > ``fast_momentum``. Defaults to 0.99.
        signal_min_scale (float): ``min_scale`` of :class:`ProgressSignal`:
            1e-3 keeps the first step's rounding error from becoming a
            signal. Defaults to 0.0.
        nonfinite (str): See :class:`BaseWeighting`. Defaults to 'raise'.
        cuda_graph (bool): Replay each training call on CUDA from captured
            CUDA graphs of its forward and backward: the same arithmetic
            for half the host time (see :mod:`mmdet_slf.slf.cuda_graph`).
            Inert off CUDA, in eval mode and in multi-process runs. Opt-in:
            the capture as it stands has been tested on the CPU with a
            stand-in for the graphs, not yet on a GPU (earlier versions
            were). Defaults to False.
    """

    extra_terms = ('slf_nonfinite', 'slf_decision', 'slf_kl', 'slf_entropy')

    def __init__(self,
                 terms: Sequence[str],
                 prior: Lambdas = None,
                 num_samples: int = 4,
                 temperature: float = 1.0,
                 temperature_schedule: Optional[dict] = None,
                 scale: Optional[float] = None,
                 per_image: bool = True,
                 in_channels: Optional[int] = None,
                 decision_net: dict = dict(
                     type='SLFDecisionNetwork', hidden_channels=32),
                 prior_init: bool = True,
                 detach_features: bool = True,
                 kl_weight: float = 5.0,
                 entropy_weight: float = 0.0,
                 hard: bool = True,
                 decision_objective: str = 'scale_free',
                 estimator: str = 'expected',
                 scale_momentum: float = 0.99,
                 fast_momentum: float = 0.9,
                 slow_momentum: float = 0.99,
                 signal_min_scale: float = 0.0,
                 nonfinite: str = 'raise',
                 cuda_graph: bool = False) -> None:
        super().__init__(terms, nonfinite, cuda_graph)
        check_count('num_samples (K)', num_samples)
        check_positive('temperature', temperature)
        lambdas = positive_lambdas(prior, self.terms, 'prior')
        prior_probs = normalize_prior(
            None if lambdas is None else lambdas.tolist(), self.num_terms)
        self.register_buffer('prior', prior_probs, persistent=False)
        self.register_buffer('log_prior', prior_probs.log(), persistent=False)
        self.scale = resolve_scale(scale, lambdas, self.num_terms)
        self.num_samples = num_samples
        self.temperature = float(temperature)
        self.temperature_schedule = check_temperature_schedule(
            temperature_schedule)
        self.per_image = per_image
        self.detach_features = detach_features
        self.kl_weight = check_nonnegative('kl_weight', kl_weight)
        self.entropy_weight = check_nonnegative('entropy_weight',
                                                entropy_weight)
        self.hard = hard
        self.decision_objective = decision_objective
        self.estimator = estimator
        self._check_choices(per_image, detach_features)
        # Keeps the running means of 'scale_free' and 'progress' in buffers;
        # None for 'joint', whose v is trained by Eq. (11) itself.
        self.signal = build_signal(
            decision_objective, self.num_terms, scale_momentum, fast_momentum,
            slow_momentum,
            check_nonnegative('signal_min_scale', signal_min_scale))
        self.reads_terms = in_channels is None
        if not isinstance(decision_net, dict) or 'type' not in decision_net:
            raise ValueError(f'decision_net must be a dict with a type, e.g. '
                             f"dict(type='SLFDecisionNetwork'), got "
                             f'{decision_net!r}')
        # SLFWeighting sets these below: the input is the raw terms or the
        # head's features, whichever it reads, and the prior is its own.
        # A value given in decision_net would be overwritten, so it is
        # refused.
        owned = [key for key in ('in_channels', 'num_terms', 'prior',
                                 'prior_init') if key in decision_net]
        if owned:
            raise ValueError(
                f'set {", ".join(owned)} on SLFWeighting, not in '
                'decision_net (got decision_net ' + ', '.join(
                    f'{key}={decision_net[key]!r}' for key in owned) + ')')
        decision_cfg = dict(decision_net)
        decision_cfg.update(
            in_channels=self.num_terms if in_channels is None else in_channels,
            num_terms=self.num_terms,
            prior=prior_probs.tolist(),
            prior_init=prior_init)
        self.decision_net = MODELS.build(decision_cfg)
        if not (detach_features or self.reads_terms) and (
                self.kl_weight > 0 or self.entropy_weight > 0):
            check_repeatable(
                self.decision_net, 'decision_net',
                'with detach_features=False the guards read it again on '
                'detached features, and two reads would differ (or update '
                'its statistics twice); use detach_features=True or a '
                'network without it')
        # Training calls so far: drives the temperature schedule and is saved
        # in checkpoints, so a resumed run continues the schedule exactly.
        self.register_buffer('num_updates', torch.zeros((), dtype=torch.long))

    def _check_choices(self, per_image: bool, detach_features: bool) -> None:
        """Build-time checks of the options that select the method."""
        for key, value in (('per_image', per_image), ('hard', self.hard),
                           ('detach_features', detach_features)):
            if not isinstance(value, bool):
                raise ValueError(f'{key} must be True or False, got {value!r}')
        check_choice('estimator', self.estimator, ESTIMATORS)
        check_choice('decision_objective', self.decision_objective,
                     DECISION_OBJECTIVES)
        if not self.hard and self.estimator != 'gumbel':
            raise ValueError(
                "hard=False (soft samples) applies to estimator='gumbel' "
                f'only, got estimator={self.estimator!r}')
        if self.temperature_schedule is not None \
                and self.estimator != 'gumbel':
            raise ValueError(
                'temperature_schedule anneals the Gumbel-softmax temperature '
                "and applies to estimator='gumbel' only, got "
                f'estimator={self.estimator!r}')
        objective = self.decision_objective
        if objective == 'joint':
            return
        if self.kl_weight <= 0:
            raise ValueError(
                f'kl_weight must be > 0 with decision_objective='
                f'{objective!r}: it is beta in J, and beta = 0 would put all '
                f'weight on one term; got {self.kl_weight}')
        if self.entropy_weight != 0:
            raise ValueError(
                "entropy_weight applies to decision_objective='joint' only, "
                f'got {self.entropy_weight} with {objective!r}')
        if not detach_features:
            raise ValueError(
                "detach_features=False applies to decision_objective='joint' "
                f'only: {objective!r} trains only the decision network')

    def current_temperature(self) -> Union[float, Tensor]:
        """``tau`` at the current training call, following the schedule; a
        tensor on the buffer's device when scheduled (no host read)."""
        if self.temperature_schedule is None:
            return self.temperature
        return scheduled_temperature(
            self.temperature, float(self.temperature_schedule['final']),
            float(self.temperature_schedule['num_iters']),
            self.temperature_schedule['type'], self.num_updates)

    def decision_logits(self, raw: Tensor,
                        features: Optional[Tensor]) -> Tensor:
        """Logits ``log p`` of shape ``[N, n]`` (or ``[1, n]`` per batch)."""
        if self.reads_terms:
            # Raw terms are always detached: reading them with gradient
            # would let h lower the loss by changing the loss values.
            inputs = torch.log1p(raw.detach().clamp(min=0))
            inputs = inputs if inputs.dim() == 2 else inputs[None]
        else:
            if features is None:
                raise ValueError(
                    'SLFWeighting was built with in_channels='
                    f'{self.decision_net.in_channels} and needs decision '
                    'features [N, C] from the head, but got features=None')
            inputs = features.detach() if self.detach_features else features
            if inputs.dim() == 1:
                inputs = inputs[None]
        if raw.dim() == 1 and inputs.shape[0] != 1:
            inputs = inputs.mean(dim=0, keepdim=True)
        return self.decision_net(inputs)

    def _decision_rows(self, raw: Tensor) -> Tensor:
        """The rows ``[R, n]`` the decision objective reads: per image, or
        one row for the batch; float32 for half-precision terms."""
        # The signals' guards against 0 (1e-12) are 0 in float16: a term
        # that is exactly 0 would give 0 / 0 and log(0).
        raw = at_least_float32(raw)
        if raw.dim() == 1:
            return raw[None]
        return raw if self.per_image else raw.sum(0)[None]

    @property
    def term_floor(self) -> Optional[float]:
        # The signals divide by a term's running scale or take its log;
        # the joint objective weights terms of any sign.
        return None if self.signal is None else 0.0

    def _batch_statistic(self, raw: Tensor) -> Optional[Tensor]:
        # The mean row, for a signal whose running averages follow it.
        if getattr(self.signal, 'follows_batches', False):
            return self._decision_rows(raw).mean(dim=0)
        return None

    def _compute_weights(self, raw: Tensor, features: Optional[Tensor],
                         shared: Optional[Tensor]) -> WeightsAndExtra:
        tau = self.current_temperature()
        if self.training:
            self.num_updates.add_(1)
        batch_level = raw.dim() == 2 and not self.per_image
        # [N, n] per image, or [1, n] when one p_hat serves the whole batch.
        logits = self.decision_logits(raw.sum(0) if batch_level else raw,
                                      features)
        if raw.dim() == 2 and logits.shape[0] != raw.shape[0] \
                and not batch_level:
            raise ValueError(f'decision features give {logits.shape[0]} rows '
                             f'but the raw terms have {raw.shape[0]} images')
        joint = self.signal is None
        probs, log_probs = self._probabilities(logits)
        # Eq. (10) for 'gumbel'; straight-through so that Eq. (11) trains v.
        p_hat = estimate_p_hat(logits, self.estimator, self.num_samples,
                               tau=tau, hard=self.hard,
                               straight_through=joint, probs=probs)
        if joint:
            weights = self.scale * p_hat  # Eq. (11)
            if self._guards_reach_features(features):
                # The guards (ours) train h only: read the features again,
                # detached, so that they do not train the detector through
                # them (Eq. (11) still does). Same values, other graph.
                probs, log_probs = self._probabilities(self.decision_logits(
                    raw.sum(0) if batch_level else raw, features.detach()))
            extra = prior_guards(raw, probs, log_probs, self.prior,
                                 self.log_prior, self.scale, self.kl_weight,
                                 self.entropy_weight)
        else:
            weights = p_hat.detach() * self.scale  # Eq. (11), for w only
            extra = self._decision_terms(
                self._decision_rows(raw), probs, log_probs, shared)
        if raw.dim() == 1:
            weights = weights[0]
        elif weights.shape != raw.shape:
            weights = weights.expand_as(raw)
        with torch.no_grad():  # diagnostics, one value per term under slf_p_
            extra['slf_entropy'] = -(probs * log_probs).sum(-1).mean()
            extra['slf_p_'] = probs.mean(dim=0)
            if self.estimator == 'gumbel':
                # new_full fills on the device; a host tensor's .to() would
                # sync.
                extra['slf_temperature'] = tau.to(raw) if isinstance(
                    tau, Tensor) else raw.new_full((), tau)
        return weights, extra

    def _decision_terms(self, rows: Tensor, probs: Tensor, log_probs: Tensor,
                        batch_mean: Optional[Tensor]) -> Dict[str, Tensor]:
        """``loss_slf_decision`` (``J``) and the mean signal per term, for
        rows ``[R, n]`` and the whole batch's mean row (over ranks)."""
        signal = self.signal(rows.detach(), self.prior,
                             batch_mean)  # [R, n] or [1, n]
        objective = decision_objective(
            probs, signal, self.prior, self.kl_weight, log_probs=log_probs,
            log_prior=self.log_prior)
        extra = {'loss_slf_decision': objective}
        extra['slf_signal_'] = signal.mean(dim=0)
        return extra

    @staticmethod
    def _probabilities(logits: Tensor) -> Tuple[Tensor, Tensor]:
        """``p`` and ``log p``; float32 for half-precision logits (1e-12 is
        0 in float16, and a collapsed p would give 0 * log 0 = NaN)."""
        probs = F.softmax(at_least_float32(logits), dim=-1)
        # log p as the objectives have always computed it (so training is
        # bitwise what it was); its gradient is Adam's whole first step.
        return probs, probs.clamp(min=1e-12).log()

    def _guards_reach_features(self, features: Optional[Tensor]) -> bool:
        return (self.kl_weight > 0 or self.entropy_weight > 0) \
            and not self.detach_features and not self.reads_terms \
            and features is not None and features.requires_grad

    def extra_repr(self) -> str:
        return (f'terms={self.terms}, '
                f'decision_objective={self.decision_objective!r}, '
                f'estimator={self.estimator!r}, '
                f'num_samples={self.num_samples}, '
                f'temperature={self.temperature}, scale={self.scale}, '
                f'per_image={self.per_image}, kl_weight={self.kl_weight}')
