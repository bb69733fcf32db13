# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Data transforms of the YOLO configs."""
from .transforms import RandomExposureSaturation, RandomJitterCrop

__all__ = ['RandomExposureSaturation', 'RandomJitterCrop']
