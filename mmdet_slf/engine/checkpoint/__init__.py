# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Checkpoint safety: weights-only loading with clear errors (opt-in, see
``install_safe_loading``), atomic saving, automatic resume that skips
unreadable files, and the comparison of a checkpoint with the model."""
from .atomic_io import (ATOMIC_BACKEND, AtomicLocalBackend, atomic_write,
                        remove_stale_temporaries, stale_temporaries)
from .resume import (checkpoint_problem, checkpoint_step,
                     find_resume_checkpoint, read_last_checkpoint)
from .safe_load import (CheckpointError, enable_safe_loading,
                        safe_loading_enabled, safe_torch_load)
from .state_dict_check import (checkpoint_state_dict, compare_state_dicts,
                               describe_mismatch, has_mismatch)

__all__ = [
    'ATOMIC_BACKEND', 'AtomicLocalBackend', 'atomic_write',
    'remove_stale_temporaries', 'stale_temporaries', 'checkpoint_problem',
    'checkpoint_step', 'find_resume_checkpoint', 'read_last_checkpoint',
    'CheckpointError', 'enable_safe_loading', 'safe_loading_enabled',
    'safe_torch_load', 'checkpoint_state_dict', 'compare_state_dicts',
    'describe_mismatch', 'has_mismatch'
]
