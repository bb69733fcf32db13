# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Importing this module switches safe checkpoint loading on (see
:func:`~mmdet_slf.engine.checkpoint.safe_load.enable_safe_loading`).

It is the opt-in for configs: ``Config.fromfile`` imports ``custom_imports``
before anything is built, so mmdet's own ``tools/train.py`` and
``tools/test.py``, and ``init_detector`` with a config file, all load
checkpoints the same way::

    custom_imports = dict(
        imports=['mmdet_slf',
                 'mmdet_slf.engine.checkpoint.install_safe_loading'],
        allow_failed_imports=False)
"""
from .safe_load import enable_safe_loading

enable_safe_loading()
