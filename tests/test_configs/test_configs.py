# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Every config in configs/ builds and trains one step on tiny VOC data."""
import glob
import math
import os.path as osp

import pytest
from conftest import (REPO_ROOT, VOC_CLASSES, make_tiny_voc,
                      patch_cfg_for_tiny_voc)
from mmengine.config import Config
from mmengine.runner import Runner

import mmdet_slf  # noqa: F401
from mmdet_slf.engine.checks import leaf_datasets
from mmdet_slf.slf import SLFWeighting

CONFIG_ROOT = osp.join(REPO_ROOT, 'configs')
CONFIGS = sorted(
    path for path in glob.glob(
        osp.join(CONFIG_ROOT, '**', '*.py'), recursive=True)
    if '_base_' not in osp.relpath(path, CONFIG_ROOT).split(osp.sep))


def test_configs_are_found():
    names = {osp.relpath(path, CONFIG_ROOT) for path in CONFIGS}
    for name in ('yolo_voc.py', 'yolo_slf_voc.py', 'fast-yolo_voc.py',
                 'fast-yolo_slf_voc.py', 'yolo-vgg16_voc.py',
                 'yolo-vgg16_slf_voc.py',
                 'yolov3/yolov3_d53_8xb8-273e_voc0712.py',
                 'yolov3/yolov3-slf_d53_8xb8-273e_voc0712.py'):
        assert name in names


def test_both_runtimes_bring_the_same_plugin_entries():
    """_base_/default_runtime.py (YOLOv1 configs) and _base_/plugin_runtime.py
    (configs on an mmdet parent) switch on the same plugin, runner and
    hooks, and every config ends up with them."""
    base = osp.join(CONFIG_ROOT, '_base_')
    ours = Config.fromfile(osp.join(base, 'default_runtime.py'))
    plugin = Config.fromfile(osp.join(base, 'plugin_runtime.py'))
    assert ours.custom_imports == plugin.custom_imports
    assert ours.runner_type == plugin.runner_type == 'CheckedRunner'
    assert ours.custom_hooks == plugin.plugin_hooks
    for path in CONFIGS:
        cfg = Config.fromfile(path)
        assert cfg.custom_imports == plugin.custom_imports, path
        assert cfg.runner_type == 'CheckedRunner', path
        hooks = [hook['type'] for hook in cfg.custom_hooks]
        assert hooks[-len(plugin.plugin_hooks):] == [
            hook['type'] for hook in plugin.plugin_hooks], path
        assert cfg.default_hooks.checkpoint.type == \
            'CrashSafeCheckpointHook', path


def tiny_data_root(cfg, default_root, tmp_path):
    """The shared tiny VOC2007 + VOC2012 tree, or, for configs that read
    other VOC-format sub-directories or classes (the digits demo), a tiny
    tree with those names."""
    subdirs, classes = set(), None
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for dataset in leaf_datasets(loader['dataset']):
            subdirs.add(dataset['ann_file'].split('/')[0])
            classes = (dataset.get('metainfo') or {}).get('classes', classes)
    if subdirs <= {'VOC2007', 'VOC2012'} and classes is None:
        return default_root
    root = str(tmp_path / 'data')
    make_tiny_voc(
        root, years=sorted(subdirs), classes=(classes or VOC_CLASSES)[:3])
    return root


@pytest.mark.parametrize(
    'config', CONFIGS, ids=[osp.relpath(p, CONFIG_ROOT) for p in CONFIGS])
def test_config_trains_one_step(config, tiny_voc_root, tmp_path):
    cfg = Config.fromfile(config)
    patch_cfg_for_tiny_voc(
        cfg,
        tiny_data_root(cfg, tiny_voc_root, tmp_path),
        str(tmp_path),
        image_size=(128, 128),
        batch_size=2,
        max_iters=1)
    runner = Runner.from_cfg(cfg)
    runner.train()

    hub = runner.message_hub
    loss = hub.get_scalar('train/loss').current()
    assert math.isfinite(loss) and loss > 0

    if 'slf' not in osp.basename(config):
        return
    weightings = [
        m for m in runner.model.modules() if isinstance(m, SLFWeighting)
    ]
    assert weightings, f'{config} is an SLF config without SLFWeighting'
    logged = {
        key: hub.get_scalar(key).current()
        for key in hub.log_scalars if 'slf_w_' in key
    }
    num_terms = sum(m.num_terms for m in weightings)
    assert len(logged) >= num_terms, logged
    for module in weightings:
        for term in module.terms:
            values = [v for k, v in logged.items()
                      if k.endswith(f'slf_w_{term}')]
            assert values, f'slf_w_{term} not logged: {sorted(logged)}'
            assert all(math.isfinite(v) and v >= 0 for v in values)
