# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
from .slf_loss import SLFLoss
from .bitempered_loss import BiTemperedLogisticLoss
from .tempered import bi_tempered_logistic_loss, tempered_softmax
from .iou_balanced_loss import IoUBalancedClsLoss, IoUBalancedSmoothL1Loss

__all__ = [
    'SLFLoss', 'BiTemperedLogisticLoss', 'bi_tempered_logistic_loss',
    'tempered_softmax', 'IoUBalancedClsLoss', 'IoUBalancedSmoothL1Loss'
]
