# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
from .config_check import (add_hooks, check_ann_files, check_data_roots,
                           check_nonfinite_skip, explain_empty_dataset)

__all__ = [
    'add_hooks', 'check_ann_files', 'check_data_roots',
    'check_nonfinite_skip', 'explain_empty_dataset'
]
from .dist_utils import CPUDistributedDataParallel, setup_cpu_distributed

__all__ += ['CPUDistributedDataParallel', 'setup_cpu_distributed']
