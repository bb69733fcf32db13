# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""mmdet-slf: the Stochastic Loss Function for MMDetection 3.x.

Importing the package registers every module into mmdet's registries
(``MODELS``, ``HOOKS``, ...); configs load it with
``custom_imports = dict(imports=['mmdet_slf'], allow_failed_imports=False)``.
It leaves mmengine's checkpoint loader alone: configs switch safe loading on
by importing ``mmdet_slf.engine.checkpoint.install_safe_loading`` the same
way.
"""
from .version import __version__

from . import datasets, engine, models, slf  # noqa: E402,F401

__all__ = ['__version__']
