# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The digits demo set: a VOC-format tree of real handwritten digits.

A data generator, not a dataset class (mmdet's ``VOCDataset`` reads what it
writes), so ``import mmdet_slf`` does not import it, nor OpenCV with it;
``tools/make_demo_data.py`` calls it.
"""
from .digits_voc import (DIGIT_CLASSES, make_digits_voc, read_manifest,
                         render_digits_image, split_source_digits)

__all__ = [
    'DIGIT_CLASSES', 'make_digits_voc', 'read_manifest',
    'render_digits_image', 'split_source_digits'
]
