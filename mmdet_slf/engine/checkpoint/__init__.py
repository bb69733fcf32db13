# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Checkpoint safety: weights-only loading with clear errors (opt-in, see
``install_safe_loading``) and the comparison of a checkpoint with the
model."""
from .safe_load import (CheckpointError, enable_safe_loading,
                        safe_loading_enabled, safe_torch_load)
from .state_dict_check import (checkpoint_state_dict, compare_state_dicts,
                               describe_mismatch, has_mismatch)

__all__ = [
    'CheckpointError', 'enable_safe_loading', 'safe_loading_enabled',
    'safe_torch_load', 'checkpoint_state_dict', 'compare_state_dicts',
    'describe_mismatch', 'has_mismatch'
]
