# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Every config in configs/losses/ builds as written and trains one step on
tiny VOC data (with a narrow backbone) with its SLF candidate losses."""
import glob
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner import Runner

from conftest import REPO_ROOT, patch_cfg_for_tiny_voc

import mmdet_slf  # noqa: F401

CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'losses', '*.py')))

# Candidate types each config puts in its classification and box branches.
EXPECTED = {
    'faster-rcnn_r50_fpn_slf-bitempered-iou-balanced_1x_voc0712.py':
    (('CrossEntropyLoss', 'BiTemperedLogisticLoss'),
     ('L1Loss', 'IoUBalancedSmoothL1Loss')),
    'gfl_r50_fpn_slf-iou-balanced_1x_voc0712.py':
    (('QualityFocalLoss', 'IoUBalancedClsLoss'),
     ('GIoULoss', 'IoUBalancedSmoothL1Loss')),
}


def _loss_head(model):
    return model.roi_head.bbox_head if hasattr(model, 'roi_head') \
        else model.bbox_head


def _narrow(node):
    """Shrink a ResNet-50/FPN-256 model to ResNet-18 with 8 base channels
    and 32-channel necks/heads (GFL's GroupNorm has 32 groups), so one CPU
    step takes seconds."""
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if key in ('in_channels', 'out_channels', 'feat_channels') \
                    and value == 256:
                node[key] = 32
            elif key == 'fc_out_channels':
                node[key] = 32
            elif key == 'stacked_convs':
                node[key] = 1
            else:
                _narrow(value)
    elif isinstance(node, list):
        for value in node:
            _narrow(value)


def test_every_config_is_checked():
    assert sorted(map(osp.basename, CONFIGS)) == sorted(EXPECTED)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_with_slf_candidates(path):
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    head = _loss_head(model)
    cls_types, box_types = EXPECTED[osp.basename(path)]
    pairs = ((head.loss_cls, cls_types), (head.loss_bbox, box_types))
    for loss, types in pairs:
        assert type(loss).__name__ == 'SLFLoss'
        assert tuple(type(c).__name__ for c in loss.candidates) == types
        assert not any('loss' in name for name in loss.names)
    # The head sized its classifier from SLFLoss's use_sigmoid: 20 VOC
    # classes, plus background for softmax.
    sigmoid = head.loss_cls.use_sigmoid
    channels = getattr(head, 'cls_out_channels', None) or \
        head.fc_cls.out_features
    assert channels == (20 if sigmoid else 21)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_trains_one_step(path, tiny_voc_root, tmp_path):
    cfg = Config.fromfile(path)
    # All four tiny images in every batch and a fixed seed: the box branch is
    # only called on batches with positive anchors, so a batch of two images
    # with small boxes could leave it silent.
    patch_cfg_for_tiny_voc(
        cfg, tiny_voc_root, str(tmp_path), image_size=(96, 96),
        batch_size=4, max_iters=2)
    cfg.randomness = dict(seed=0)
    cfg.model.backbone.update(
        depth=18, base_channels=8, init_cfg=None, frozen_stages=-1)
    cfg.model.neck.in_channels = [8, 16, 32, 64]
    _narrow(cfg.model)
    cfg.default_hooks.pop('visualization', None)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    runner = Runner.from_cfg(cfg)
    head = _loss_head(runner.model)
    decision = {
        f'{branch}.{name}': param.detach().clone()
        for branch in ('loss_cls', 'loss_bbox')
        for name, param in getattr(head, branch).named_parameters()
    }
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert torch.isfinite(torch.tensor(scalars['train/loss'].current()))
    # Both SLFLoss weightings logged their sampled weights, summing to 1.
    for branch, names in (('cls', head.loss_cls.names),
                          ('bbox', head.loss_bbox.names)):
        weights = [
            scalars[key].current() for key in scalars
            if f'.{branch}.slf_w_' in key and key.rsplit('slf_w_', 1)[1] in
            names
        ]
        assert len(weights) == len(names), sorted(scalars)
        assert sum(weights) == pytest.approx(1.0)
    # The decision networks of both branches took an optimizer step.
    params = dict(
        (f'{branch}.{name}', param)
        for branch in ('loss_cls', 'loss_bbox')
        for name, param in getattr(head, branch).named_parameters())
    for branch in ('loss_cls', 'loss_bbox'):
        assert any(not torch.equal(decision[key], params[key])
                   for key in decision if key.startswith(branch)), branch
