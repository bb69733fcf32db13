# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
from .checkpoint_check_hook import CheckpointCheckHook
from .crash_safe_checkpoint_hook import CrashSafeCheckpointHook
from .dataset_check_hook import DatasetCheckHook
from .iter_seed_hook import IterSeedHook, seed_everything
from .progress_bar_hook import ProgressBarHook
from .slf_logger_hook import (SLFLoggerHook, claim_diagnostics,
                              collect_diagnostics, find_weightings)

__all__ = [
    'CheckpointCheckHook', 'CrashSafeCheckpointHook', 'DatasetCheckHook',
    'IterSeedHook', 'ProgressBarHook', 'SLFLoggerHook', 'claim_diagnostics',
    'collect_diagnostics', 'find_weightings', 'seed_everything'
]
