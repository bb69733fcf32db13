# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The SLF method in plain PyTorch: sampler, decision network, weightings.

One module per weighting strategy behind :class:`BaseWeighting`; a new
strategy is a new module and a line here.
"""
from .base import BaseWeighting
from .builder import build_weighting
from .decision import SLFDecisionNetwork, normalize_prior
from .dwa import DWAWeighting
from .estimators import ESTIMATORS, estimate_p_hat, stratified_sample
from .famo import FAMOWeighting
from .fixed import FixedWeighting
from .gumbel import multiple_gumbel_softmax, sample_gumbel
from .nonfinite import NonFinitePolicy
from .objectives import (DECISION_OBJECTIVES, ProgressSignal, ScaleFreeSignal,
                         TeacherSignal, decision_objective)
from .rlw import RandomWeighting
from .schedule import check_temperature_schedule, scheduled_temperature
from .slf import SLFWeighting
from .uncertainty import UncertaintyWeighting

__all__ = [
    'multiple_gumbel_softmax', 'sample_gumbel', 'SLFDecisionNetwork',
    'normalize_prior', 'BaseWeighting',
    'NonFinitePolicy', 'check_temperature_schedule', 'scheduled_temperature',
    'FixedWeighting', 'SLFWeighting', 'UncertaintyWeighting', 'DWAWeighting',
    'RandomWeighting', 'FAMOWeighting', 'build_weighting', 'ESTIMATORS',
    'estimate_p_hat', 'stratified_sample', 'DECISION_OBJECTIVES',
    'decision_objective', 'ScaleFreeSignal', 'ProgressSignal', 'TeacherSignal'
]
