# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
from .checked_runner import CheckedRunner
from .cpu_distributed import CPUDistributedDataParallel, setup_cpu_distributed

__all__ = [
    'CheckedRunner', 'CPUDistributedDataParallel', 'setup_cpu_distributed'
]
