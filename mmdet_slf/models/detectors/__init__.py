# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
from .loss_groups import LossGroups, reduce_loss_value
from .slf_detector import SLFDetector, pool_features, slf_detector_class

__all__ = [
    'LossGroups', 'reduce_loss_value', 'SLFDetector', 'pool_features',
    'slf_detector_class'
]
