# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""tools/strip_weighting.py on a checkpoint of a real run with mmengine's
EMAHook: the averaged weights, which EMAHook swaps into ``state_dict``
when it saves, are the ones kept, and they load strictly into the fixed
config's model."""
import importlib.util
import os.path as osp

import torch
from mmengine.runner import Runner
from reliability_helpers import REPO_ROOT, tiny_yolo_cfg


def test_an_ema_run_keeps_the_averaged_weights(tiny_voc_root, tmp_path):
    work_dir = str(tmp_path / 'ema')
    cfg = tiny_yolo_cfg(tiny_voc_root, work_dir, 3)
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
        dict(type='EMAHook', momentum=0.5)
    ]
    slf_config = str(tmp_path / 'slf.py')
    cfg.dump(slf_config)
    fixed = tiny_yolo_cfg(tiny_voc_root, str(tmp_path / 'fixed'), 3,
                          config=osp.join(REPO_ROOT, 'configs',
                                          'fast-yolo_voc.py'))
    fixed_config = str(tmp_path / 'fixed.py')
    fixed.dump(fixed_config)
    Runner.from_cfg(cfg).train()
    checkpoint = torch.load(osp.join(work_dir, 'iter_3.pth'),
                            weights_only=False)
    averaged, raw = checkpoint['state_dict'], checkpoint['ema_state_dict']

    spec = importlib.util.spec_from_file_location(
        'strip_weighting_ema',
        osp.join(REPO_ROOT, 'tools', 'strip_weighting.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = str(tmp_path / 'stripped.pth')
    tool.main([slf_config, osp.join(work_dir, 'iter_3.pth'), out,
               '--baseline', fixed_config])
    kept = torch.load(out, weights_only=True)['state_dict']

    assert 'ema_state_dict' not in torch.load(out, weights_only=True)
    assert sorted(kept) == sorted(
        key for key in averaged if '.weighting.' not in key)
    moved = 0
    for key, value in kept.items():
        assert torch.equal(value, averaged[key]), key
        if value.is_floating_point() and not torch.equal(
                value, raw['module.' + key]):
            moved += 1  # the average is not the last step's weights
    assert moved > 0
    baseline = tool.build_model(fixed)
    baseline.load_state_dict(kept, strict=True)
