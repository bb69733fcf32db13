# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""MergedGroupsOptimWrapperConstructor: mmengine's paramwise options with
the equal parameter groups merged, and the same updates."""
import copy

import pytest
import torch
from conftest import small_yolo_cfg
from mmengine.optim import build_optim_wrapper
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import mmdet_slf  # noqa: F401
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmdet_slf.engine import merge_param_groups

PARAMWISE = dict(
    custom_keys={'head.weighting': dict(lr_mult=1.0, decay_mult=0.0)})


class Toy(nn.Module):
    """A backbone, and a head with a BN layer and a 'weighting'."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Module()
        self.head.fc = nn.Linear(4, 2)
        self.head.weighting = nn.Linear(2, 3)

    def forward(self, x):
        x = self.backbone(x).mean(dim=(2, 3))
        return self.head.weighting(self.head.fc(x)).pow(2).sum()


def test_merge_param_groups_by_hand():
    p1, p2, p3, p4 = (nn.Parameter(torch.zeros(1)) for _ in range(4))
    groups = [
        dict(params=[p1], lr=0.1, weight_decay=1e-4),
        dict(params=[p2], lr=0.1, weight_decay=0.0),
        dict(params=[p3], lr=0.1, weight_decay=1e-4),
        dict(params=[p4], lr=0.1, weight_decay=0.0),
    ]
    merged = merge_param_groups(groups)
    assert len(merged) == 2
    assert merged[0]['params'] == [p1, p3]
    assert merged[0]['lr'] == 0.1 and merged[0]['weight_decay'] == 1e-4
    assert merged[1]['params'] == [p2, p4]
    assert merged[1]['weight_decay'] == 0.0
    # a group whose options differ in any key stays apart
    groups.append(dict(params=[p1], lr=0.2, weight_decay=1e-4))
    assert len(merge_param_groups(groups)) == 3


def test_options_given_as_lists_or_dicts_merge_by_value():
    """An option set in ``paramwise_cfg`` as a list (``betas`` from
    ``--cfg-options``) or a dict is compared by value, as mmengine's own
    constructor accepts it."""
    p1, p2, p3 = (nn.Parameter(torch.zeros(1)) for _ in range(3))
    groups = [
        dict(params=[p1], lr=0.1, betas=[0.8, 0.9], extra=dict(a=[1])),
        dict(params=[p2], lr=0.1, betas=(0.9, 0.999)),
        dict(params=[p3], lr=0.1, betas=[0.8, 0.9], extra=dict(a=[1])),
    ]
    merged = merge_param_groups(groups)
    assert [group['params'] for group in merged] == [[p1, p3], [p2]]
    assert merged[0]['betas'] == [0.8, 0.9]
    assert merged[0]['extra'] == dict(a=[1])
    # Built through the registry: the decision layer gets its own betas.
    register_all_modules()
    model = Toy()
    wrapper = build_optim_wrapper(
        model,
        dict(optimizer=dict(type='AdamW', lr=0.01, weight_decay=0.05),
             paramwise_cfg=dict(custom_keys={
                 'head.weighting': dict(decay_mult=0.0, betas=[0.8, 0.9])}),
             constructor='MergedGroupsOptimWrapperConstructor'))
    groups = wrapper.optimizer.param_groups
    assert [len(group['params']) for group in groups] == [6, 2]
    assert [group['betas'] for group in groups] == [(0.9, 0.999), [0.8, 0.9]]
    assert [group['weight_decay'] for group in groups] == [0.05, 0.0]


@pytest.mark.parametrize('optimizer', [
    dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=0.01),
    dict(type='AdamW', lr=0.01, weight_decay=0.05),
])
def test_same_updates_as_one_group_per_parameter(optimizer):
    """Five steps with mmengine's default constructor (one group per
    parameter) and with the merged one (2 groups) give the same weights, and
    the decision layer is still exempt from weight decay. On CPU PyTorch
    updates one tensor at a time either way, so they are bitwise equal; so
    is a third model whose decision group takes the multi-tensor update
    (``foreach=True``, as in ``configs/_base_/slf_weighting.py``)."""
    register_all_modules()
    torch.manual_seed(0)
    models = [Toy(), None, None]
    models[1] = copy.deepcopy(models[0])
    models[2] = copy.deepcopy(models[0])
    multi_tensor = dict(custom_keys={
        'head.weighting': dict(lr_mult=1.0, decay_mult=0.0, foreach=True)})
    wrappers = [
        build_optim_wrapper(
            models[0], dict(optimizer=optimizer, paramwise_cfg=PARAMWISE)),
        build_optim_wrapper(
            models[1],
            dict(optimizer=optimizer, paramwise_cfg=PARAMWISE,
                 constructor='MergedGroupsOptimWrapperConstructor')),
        build_optim_wrapper(
            models[2],
            dict(optimizer=optimizer, paramwise_cfg=multi_tensor,
                 constructor='MergedGroupsOptimWrapperConstructor')),
    ]
    assert [group['foreach'] for group in
            wrappers[2].optimizer.param_groups] == [None, True]
    num_params = len(list(models[0].parameters()))
    assert len(wrappers[0].optimizer.param_groups) == num_params
    merged = wrappers[1].optimizer.param_groups
    assert len(merged) == 2
    weighting = set(map(id, models[1].head.weighting.parameters()))
    decays = {
        id(p): group['weight_decay']
        for group in merged for p in group['params']
    }
    for name, p in models[1].named_parameters():
        expected = 0.0 if id(p) in weighting else optimizer['weight_decay']
        assert decays[id(p)] == expected, name
    initial = {k: v.clone() for k, v in models[0].named_parameters()}
    inputs = torch.randn(5, 2, 3, 8, 8)
    for x in inputs:
        for model, wrapper in zip(models, wrappers):
            wrapper.update_params(model(x))
    for (name, a), b, c in zip(models[0].named_parameters(),
                               models[1].parameters(),
                               models[2].parameters()):
        assert not torch.equal(a, initial[name]), name  # it trained
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
        torch.testing.assert_close(a, c, rtol=0, atol=0, msg=name)


def test_slf_config_has_three_groups():
    """configs/fast-yolo_slf_voc.py: the decision network without weight
    decay; the conv and FC weights with the config's decay; their biases
    and the batch-norm parameters without (darknet's rule)."""
    register_all_modules()
    cfg = small_yolo_cfg('fast-yolo_slf_voc.py')
    model = MODELS.build(cfg.model)
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer \
        .param_groups
    assert len(groups) == 3
    norms = {id(p) for module in model.modules()
             if isinstance(module, _BatchNorm) for p in module.parameters()}
    expected = {(0.0, True): set(), (0.0, None): set(),
                (cfg.optim_wrapper.optimizer.weight_decay, None): set()}
    for name, p in model.named_parameters():
        if name.startswith('bbox_head.weighting.'):
            expected[(0.0, True)].add(id(p))
        elif id(p) in norms or name.endswith('.bias'):
            expected[(0.0, None)].add(id(p))
        else:
            expected[(cfg.optim_wrapper.optimizer.weight_decay, None)].add(
                id(p))
    assert cfg.optim_wrapper.optimizer.weight_decay > 0
    assert all(expected.values())
    # The decision network's small tensors take the multi-tensor update; the
    # detector keeps PyTorch's default.
    assert {(group['weight_decay'], group['foreach']):
            set(map(id, group['params']))
            for group in groups} == expected
