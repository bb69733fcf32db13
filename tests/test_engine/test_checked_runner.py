# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""CheckedRunner: found by both registries the tools use, and each loop
checks only its own dataloader's data."""
import os.path as osp

import pytest
from conftest import REPO_ROOT, patch_cfg_for_tiny_voc
from mmengine.config import Config
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmdet.registry import RUNNERS as MMDET_RUNNERS

import mmdet_slf  # noqa: F401
from mmdet_slf.engine import CheckedRunner


def test_registered_where_the_tools_look():
    # mmdet's tools/train.py builds with mmengine's registry, test.py with
    # mmdet's.
    assert MMENGINE_RUNNERS.get('CheckedRunner') is CheckedRunner
    assert MMDET_RUNNERS.get('CheckedRunner') is CheckedRunner


def test_testing_needs_only_the_test_data(tiny_voc_root, tmp_path):
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'fast-yolo_voc.py'))
    patch_cfg_for_tiny_voc(cfg, tiny_voc_root, str(tmp_path), (64, 64))
    cfg.model.backbone.widen_factor = 0.125
    cfg.model.bbox_head.update(in_channels=128, fc_channels=32)
    assert cfg.runner_type == 'CheckedRunner'
    for dataset in cfg.train_dataloader.dataset.datasets:
        dataset.data_root = str(tmp_path / 'no_train_data')
    runner = MMDET_RUNNERS.build(cfg)
    assert isinstance(runner, CheckedRunner)
    assert len(runner.test_loop.dataloader.dataset) > 0
    with pytest.raises(FileNotFoundError,
                       match=r'train_dataloader: data_root ".*no_train_data"'
                       r' does not exist'):
        runner.train_loop
