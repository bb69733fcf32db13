# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""An optimizer constructor that keeps ``paramwise_cfg`` but not one
parameter group per parameter."""
from typing import Any, Dict, List

from mmengine.optim import DefaultOptimWrapperConstructor
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn


def _option_key(value: Any) -> Any:
    """A hashable stand-in for an option value: lists, tuples and dicts (a
    ``betas=[0.9, 0.99]`` given in ``paramwise_cfg``) by their content,
    anything else as it is."""
    if isinstance(value, dict):
        return ('dict', tuple(sorted(
            (key, _option_key(item)) for key, item in value.items())))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__,
                tuple(_option_key(item) for item in value))
    return value


def merge_param_groups(groups: List[Dict]) -> List[Dict]:
    """Merge the parameter groups whose options are all equal.

    An optimizer applies each group's options to every parameter of the
    group, one parameter at a time, so a group of ``k`` parameters updates
    them exactly as ``k`` one-parameter groups with the same options would.
    The merged groups keep the order in which their options first appear,
    and the parameters their order within it.

    Args:
        groups (list[dict]): ``{'params': [...], <option>: value, ...}``.

    Returns:
        list[dict]: One group per distinct set of options.
    """
    merged: Dict[tuple, Dict] = {}
    for group in groups:
        options = {k: v for k, v in group.items() if k != 'params'}
        key = tuple(sorted(
            (name, _option_key(value)) for name, value in options.items()))
        if key not in merged:
            merged[key] = dict(options, params=[])
        merged[key]['params'].extend(group['params'])
    return list(merged.values())


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MergedGroupsOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor, with equal parameter groups merged.

    With any ``paramwise_cfg``, mmengine's default constructor gives every
    parameter its own group. The update is the same, but PyTorch's
    multi-tensor (``foreach``) kernels then work on one tensor at a time: a
    CUDA step launches a few kernels per parameter instead of a few per
    group. The SLF configs need a ``paramwise_cfg`` to exempt the decision
    network from weight decay, the YOLOv1 configs to exempt biases and
    norms as darknet does. With this constructor, YOLOv1 + SLF has 3
    groups instead of 82.

    Example::

        optim_wrapper = dict(
            constructor='MergedGroupsOptimWrapperConstructor',
            paramwise_cfg=dict(custom_keys={
                'bbox_head.weighting': dict(lr_mult=1.0, decay_mult=0.0)}))
    """

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   is_dcn_module=None) -> None:
        if prefix:  # a recursive call on a submodule
            super().add_params(params, module, prefix, is_dcn_module)
            return
        groups: List[dict] = []
        super().add_params(groups, module, prefix, is_dcn_module)
        params.extend(merge_param_groups(groups))
