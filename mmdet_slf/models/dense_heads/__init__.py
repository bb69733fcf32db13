# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
from .ssd_head import PredictableSSDHead
from .yolov1_head import YOLOV1Head
from .yolov3_slf_head import YOLOV3SLFHead

__all__ = ['PredictableSSDHead', 'YOLOV1Head', 'YOLOV3SLFHead']
