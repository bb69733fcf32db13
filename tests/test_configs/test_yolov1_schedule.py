# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The YOLOv1 VOC schedule takes darknet's step: the paper's learning rate
and decay are darknet's, whose error signal is half the gradient of the
head's sum-squared loss, so the configs halve the one and double the
other. Checked against darknet's update written out by hand, and that,
as in darknet, only the conv and FC weights are decayed."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.structures import InstanceData
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import mmdet_slf  # noqa: F401
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmdet_slf.models.dense_heads import YOLOV1Head
from conftest import REPO_ROOT

CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'yolov1', '*.py')))
PAPER_LR, PAPER_DECAY, NOOBJ = 1e-2, 5e-4, 0.5


def test_every_yolov1_config_halves_the_rate_and_doubles_the_decay():
    assert len(CONFIGS) == 8
    for name in CONFIGS:
        optimizer = Config.fromfile(name).optim_wrapper.optimizer
        assert (optimizer.type, optimizer.lr, optimizer.momentum,
                optimizer.weight_decay) == ('SGD', PAPER_LR / 2, 0.9,
                                            2 * PAPER_DECAY), name


def test_one_sgd_step_on_the_head_loss_is_darknets_step():
    """Two images without objects: only the no-object confidences get a
    signal. Darknet: delta = noobject_scale * (0 - o) per confidence, and
    ``w += lr / batch * (sum of deltas - decay * batch * w)``. Here the
    outputs are the parameters, stepped once by torch's SGD with the
    config's rate and decay on the head's loss."""
    head = YOLOV1Head(
        num_classes=3, in_channels=4, input_size=128, featmap_stride=64,
        num_grids=2, num_boxes=2, fc_channels=8, dropout=0.0,
        output_act='linear',
        weighting=dict(type='FixedWeighting',
                       terms=['coord', 'pred', 'obj', 'noobj'],
                       weights=[5.0, 1.0, 1.0, NOOBJ]))
    torch.manual_seed(0)
    start = torch.rand(2, 2, 2, 13)
    outputs = torch.nn.Parameter(start.clone())
    optimizer = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'yolo_voc.py')).optim_wrapper.optimizer
    sgd = torch.optim.SGD([outputs], lr=optimizer.lr,
                          momentum=optimizer.momentum,
                          weight_decay=optimizer.weight_decay)
    empty = InstanceData(bboxes=torch.zeros(0, 4),
                         labels=torch.zeros(0, dtype=torch.long))
    meta = dict(batch_input_shape=(128, 128), img_shape=(128, 128))
    for _ in range(2):  # the second step carries momentum
        sgd.zero_grad()
        losses = head.loss_by_feat(outputs, [empty, empty], [meta, meta])
        sum(value for key, value in losses.items()
            if key.startswith('loss_')).backward()
        sgd.step()

    # Darknet's update (update_weights): the deltas summed over the batch,
    # less decay * batch * w, added at lr / batch; then the sum is kept
    # times the momentum for the next step. Each image's outputs take only
    # that image's deltas.
    batch, momentum = 2, 0.9
    confidences = [4, 9]  # (x, y, sqrt w, sqrt h, conf) for two boxes
    darknet, updates = start.clone(), torch.zeros_like(start)
    for _ in range(2):
        delta = torch.zeros_like(start)
        delta[..., confidences] = NOOBJ * (0 - darknet[..., confidences])
        updates += delta - PAPER_DECAY * batch * darknet
        darknet += PAPER_LR / batch * updates
        updates *= momentum
    torch.testing.assert_close(outputs.detach(), darknet, rtol=0, atol=1e-7)


def _shrunk_model(cfg):
    """The config's detector at a width that builds in a second; parameter
    names and layer types, which decide the decay, are the full model's."""
    if cfg.model.backbone.type == 'YOLOVGG':
        cfg.model.backbone.extra_channels = 16
        cfg.model.bbox_head.in_channels = 16
    else:
        cfg.model.backbone.widen_factor = 1 / 64
        cfg.model.bbox_head.in_channels = 16
    cfg.model.bbox_head.fc_channels = 8
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('name', CONFIGS, ids=osp.basename)
def test_only_conv_and_fc_weights_are_decayed_as_in_darknet(name):
    """darknet decays the weights of its conv and connected layers, never
    their biases or the batch-norm scales and shifts (``update_*_layer``);
    the decision network of the SLF configs is not decayed either. The
    parameters fall into one group per distinct setting."""
    register_all_modules()
    cfg = Config.fromfile(name)
    model = _shrunk_model(cfg)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay_of = {id(param): group['weight_decay']
                for group in optim_wrapper.optimizer.param_groups
                for param in group['params']}
    norm_params = {id(param) for module in model.modules()
                   if isinstance(module, (_BatchNorm, nn.GroupNorm,
                                          nn.LayerNorm))
                   for param in module.parameters(recurse=False)}
    kinds = set()
    for param_name, param in model.named_parameters():
        if param_name.startswith('bbox_head.weighting.'):
            kind, expected = 'decision network', 0.0
        elif id(param) in norm_params:
            kind, expected = 'norm', 0.0
        elif param_name.endswith('.bias'):
            kind, expected = 'bias', 0.0
        else:
            kind, expected = 'weight', 2 * PAPER_DECAY
        kinds.add(kind)
        assert decay_of[id(param)] == expected, (param_name, kind)
    slf = '-slf_' in osp.basename(name)
    assert kinds == {'weight', 'bias', 'norm'} | (
        {'decision network'} if slf else set())
    assert len(optim_wrapper.optimizer.param_groups) == 2 + slf
    assert all(group['lr'] == PAPER_LR / 2
               for group in optim_wrapper.optimizer.param_groups)
