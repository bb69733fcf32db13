# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""CheckedRunner: found by both registries the tools use, and each loop
checks only its own dataloader's data."""
import os.path as osp
import re

import pytest
from conftest import REPO_ROOT, patch_cfg_for_tiny_voc
from mmengine.config import Config
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmdet.registry import RUNNERS as MMDET_RUNNERS

import mmdet_slf  # noqa: F401
from mmdet_slf.engine import CheckedRunner
from mmdet_slf.engine.checks import check_data_roots


def test_registered_where_the_tools_look():
    # mmdet's tools/train.py builds with mmengine's registry, test.py with
    # mmdet's.
    assert MMENGINE_RUNNERS.get('CheckedRunner') is CheckedRunner
    assert MMDET_RUNNERS.get('CheckedRunner') is CheckedRunner


def tiny_fast_yolo_cfg(data_root: str, work_dir: str) -> Config:
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'fast-yolo_voc.py'))
    patch_cfg_for_tiny_voc(cfg, data_root, work_dir, (64, 64))
    cfg.model.backbone.widen_factor = 0.125
    cfg.model.bbox_head.update(in_channels=128, fc_channels=32)
    assert cfg.runner_type == 'CheckedRunner'
    return cfg


def test_testing_needs_only_the_test_data(tiny_voc_root, tmp_path):
    cfg = tiny_fast_yolo_cfg(tiny_voc_root, str(tmp_path))
    for dataset in cfg.train_dataloader.dataset.datasets:
        dataset.data_root = str(tmp_path / 'no_train_data')
    runner = MMDET_RUNNERS.build(cfg)
    assert isinstance(runner, CheckedRunner)
    # tiny_voc_root is make_tiny_voc's default tree: 2 test and 4 trainval
    # images per year; the test split is VOC2007's test list.
    dataset = runner.test_loop.dataloader.dataset
    assert len(dataset) == 2
    assert [dataset.get_data_info(i)['img_id'] for i in range(2)] == [
        '2007_test_0000', '2007_test_0001']
    with pytest.raises(FileNotFoundError,
                       match=r'train_dataloader: data_root ".*no_train_data"'
                       r' does not exist'):
        runner.train_loop


def test_validation_and_testing_check_their_own_data(
        tiny_voc_root, tmp_path):
    """Missing val and test data roots: building the val loop names the
    val dataloader's root, building the test loop the test one's (the
    training data is there)."""
    cfg = tiny_fast_yolo_cfg(tiny_voc_root, str(tmp_path))
    cfg.val_dataloader.dataset.data_root = str(tmp_path / 'no_val_data')
    cfg.test_dataloader.dataset.data_root = str(tmp_path / 'no_test_data')
    runner = MMDET_RUNNERS.build(cfg)
    with pytest.raises(FileNotFoundError,
                       match=r'^val_dataloader: data_root ".*no_val_data" '
                       r'does not exist'):
        runner.val_loop
    with pytest.raises(FileNotFoundError,
                       match=r'^test_dataloader: data_root ".*no_test_data" '
                       r'does not exist'):
        runner.test_loop


@pytest.mark.parametrize('config', [
    'yolo_slf_voc.py',  # 07+12 in a ConcatDataset
    'slf_detectors/retinanet-slf_r50_fpn_1x_voc0712.py',  # Repeat(Concat)
])
def test_a_missing_data_root_names_every_key_that_sets_it(
        config, tiny_voc_root, tmp_path):
    """The message lists the --cfg-options keys of every dataset that reads
    the missing root; setting those keys, and only those, is enough."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', config))
    with pytest.raises(FileNotFoundError) as error:
        check_data_roots(cfg)
    message = str(error.value)
    assert message.startswith(
        'train_dataloader: data_root "data/VOCdevkit/" does not exist')
    keys = re.findall(r'(\S+)\.data_root=\.\.\.', message)
    wrapper = 'dataset.' if 'retinanet' in config else ''
    assert keys == [
        f'train_dataloader.dataset.{wrapper}datasets.0',
        f'train_dataloader.dataset.{wrapper}datasets.1',
        'val_dataloader.dataset', 'test_dataloader.dataset']
    cfg.merge_from_dict({f'{key}.data_root': tiny_voc_root for key in keys})
    check_data_roots(cfg)
    # a year whose image lists are missing: the message names the dataset
    cfg.merge_from_dict({f'{keys[1]}.ann_file': 'VOC2012/missing.txt'})
    with pytest.raises(FileNotFoundError,
                       match=re.escape(f'ann_file "{tiny_voc_root}/'
                                       f'VOC2012/missing.txt" of {keys[1]} '
                                       'does not exist')):
        check_data_roots(cfg)
