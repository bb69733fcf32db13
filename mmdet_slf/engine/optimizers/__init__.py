# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
from .merged_groups_constructor import (MergedGroupsOptimWrapperConstructor,
                                        merge_param_groups)
from .skip_nonfinite_optim_wrapper import SkipNonFiniteOptimWrapper

__all__ = [
    'MergedGroupsOptimWrapperConstructor', 'SkipNonFiniteOptimWrapper',
    'merge_param_groups'
]
