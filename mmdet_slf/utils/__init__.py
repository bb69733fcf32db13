# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
from .checkpoint import (CheckpointError, register_safe_globals,
                         safe_torch_load)

__all__ = ['CheckpointError', 'register_safe_globals', 'safe_torch_load']
from .checkpoint_check import (checkpoint_state_dict, compare_state_dicts,
                               describe_mismatch)
from .config_check import (add_hooks, check_ann_files, check_data_roots,
                           check_nonfinite_skip, explain_empty_dataset)

__all__ += [
    'checkpoint_state_dict', 'compare_state_dicts', 'describe_mismatch',
    'add_hooks', 'check_ann_files', 'check_data_roots',
    'check_nonfinite_skip', 'explain_empty_dataset'
]
from .dist_utils import CPUDistributedDataParallel, setup_cpu_distributed

__all__ += ['CPUDistributedDataParallel', 'setup_cpu_distributed']
