# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""N iterations in one run == N/2, resume, N/2 more: same weights (decision
network included), optimizer state and temperature-schedule position; an
automatic resume past a truncated latest checkpoint is just as exact."""
import glob
import os.path as osp
import random

import numpy as np
import pytest
import torch
from mmengine.config import Config
from reliability_helpers import (REPO_ROOT, read_log, run_tool,
                                 tiny_yolo_cfg)

from mmdet_slf.engine.checkpoint import safe_torch_load
from mmdet_slf.engine.hooks import seed_everything

# Iteration loop: 6 iterations (8 images / batch 2 crosses an epoch of the
# sampler), resumed mid-epoch after 3. Epoch loop (what the configs use):
# 2 epochs of 4 iterations, resumed after the first.
LOOPS = dict(iter=(6, 3), epoch=(2, 1))
ITERS_PER_EPOCH = 4


def train_with_tools(cfg, config_path, resume=False):
    """Run ``tools/train.py`` in this process (as a user would call it)."""
    cfg.dump(config_path)
    run_tool('train', [config_path] + (['--resume'] if resume else []))


def slf_cfg(data_root, work_dir, loop, length, interval):
    """``length`` iterations or epochs, a checkpoint every ``interval``."""
    cfg = tiny_yolo_cfg(data_root, work_dir, length)
    # A schedule whose position shows in the temperature (of Gumbel draws,
    # whose random stream a resume must continue too).
    cfg.model.bbox_head.weighting.update(
        estimator='gumbel',
        temperature_schedule=dict(type='exp', final=0.5, num_iters=10))
    if loop == 'epoch':
        cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=length,
                             val_interval=10**6)
    cfg.default_hooks.checkpoint = dict(
        type='CrashSafeCheckpointHook', interval=interval,
        by_epoch=loop == 'epoch')
    return cfg


@pytest.mark.parametrize('loop', list(LOOPS))
def test_resume_is_exact(tiny_voc_root, tmp_path, loop):
    total, half = LOOPS[loop]
    steps = total * (ITERS_PER_EPOCH if loop == 'epoch' else 1)
    half_steps = half * (ITERS_PER_EPOCH if loop == 'epoch' else 1)
    full_dir, split_dir = str(tmp_path / 'full'), str(tmp_path / 'split')
    train_with_tools(slf_cfg(tiny_voc_root, full_dir, loop, total, half),
                     str(tmp_path / 'full.py'))
    train_with_tools(slf_cfg(tiny_voc_root, split_dir, loop, half, half),
                     str(tmp_path / 'half.py'))
    first = safe_torch_load(osp.join(split_dir, f'{loop}_{half}.pth'))
    assert first['meta']['iter'] == half_steps
    train_with_tools(slf_cfg(tiny_voc_root, split_dir, loop, total, half),
                     str(tmp_path / 'rest.py'), resume=True)

    full = safe_torch_load(osp.join(full_dir, f'{loop}_{total}.pth'))
    resumed = safe_torch_load(osp.join(split_dir, f'{loop}_{total}.pth'))
    assert resumed['meta']['iter'] == full['meta']['iter'] == steps
    state, expected = resumed['state_dict'], full['state_dict']
    assert state.keys() == expected.keys()
    decision = [k for k in state if 'weighting.decision_net' in k]
    assert decision
    for key in state:
        torch.testing.assert_close(state[key], expected[key], rtol=0,
                                   atol=1e-7, msg=key)
    # The second half did train: the decision network's output layer moved.
    out_layer = 'bbox_head.weighting.decision_net.fc_out.weight'
    assert not torch.equal(first['state_dict'][out_layer], state[out_layer])
    # Temperature schedule position: one update per training step.
    counter = 'bbox_head.weighting.num_updates'
    assert int(first['state_dict'][counter]) == half_steps
    assert int(state[counter]) == int(expected[counter]) == steps
    # Optimizer state (momentum buffers) continues exactly as well.
    moments = resumed['optimizer']['state']
    assert moments.keys() == full['optimizer']['state'].keys()
    for index, entry in moments.items():
        torch.testing.assert_close(
            entry['momentum_buffer'],
            full['optimizer']['state'][index]['momentum_buffer'], rtol=0,
            atol=1e-7)


def test_auto_resume_past_a_truncated_latest_is_exact(tiny_voc_root,
                                                      tmp_path):
    """iter_3.pth truncated, iter_2.pth intact: ``--resume`` warns and
    continues from iter_2.pth, and its iter_3.pth is bit-equal to the one
    the uninterrupted run wrote before it was truncated."""
    work_dir = tmp_path / 'work'
    train_with_tools(slf_cfg(tiny_voc_root, str(work_dir), 'iter', 3, 1),
                     str(tmp_path / 'first.py'))
    latest = work_dir / 'iter_3.pth'
    expected = safe_torch_load(str(latest))
    latest.write_bytes(latest.read_bytes()[:100_000])

    train_with_tools(slf_cfg(tiny_voc_root, str(work_dir), 'iter', 3, 1),
                     str(tmp_path / 'auto.py'), resume=True)
    log = read_log(str(work_dir))
    assert f'auto-resume skips checkpoint {latest}: the file is truncated ' \
        'or not a PyTorch checkpoint' in log
    assert f'auto-resume continues from {work_dir}/iter_2.pth' in log
    resumed = safe_torch_load(str(latest))
    assert resumed['meta']['iter'] == expected['meta']['iter'] == 3
    assert resumed['state_dict'].keys() == expected['state_dict'].keys()
    for key, value in resumed['state_dict'].items():
        assert torch.equal(value, expected['state_dict'][key]), key
    for index, entry in resumed['optimizer']['state'].items():
        assert torch.equal(
            entry['momentum_buffer'],
            expected['optimizer']['state'][index]['momentum_buffer'])


@pytest.mark.parametrize('loop, workers', [('iter', 2), ('epoch', 0)])
def test_resume_without_a_configured_seed_is_exact(tiny_voc_root, tmp_path,
                                                   loop, workers):
    """No ``randomness.seed`` (as the shipped configs): the run draws its
    seed, the checkpoint keeps it, and the resumed run shuffles the images
    with it too, so it ends where the uninterrupted run ended."""
    total, half = LOOPS[loop]

    def cfg(work_dir):
        cfg = slf_cfg(tiny_voc_root, str(work_dir), loop, total, half)
        cfg.pop('randomness')
        loader = cfg.train_dataloader
        # workers restarted at the resume, as they are each epoch (with
        # persistent ones the augmentation draws differ: troubleshooting.md)
        loader.update(num_workers=workers, persistent_workers=False)
        return cfg

    full_dir, resumed_dir = tmp_path / 'full', tmp_path / 'resumed'
    train_with_tools(cfg(full_dir), str(tmp_path / 'full.py'))
    resumed_dir.mkdir()
    middle = resumed_dir / f'{loop}_{half}.pth'
    middle.write_bytes((full_dir / f'{loop}_{half}.pth').read_bytes())
    (resumed_dir / 'last_checkpoint').write_text(str(middle))
    train_with_tools(cfg(resumed_dir), str(tmp_path / 'resumed.py'),
                     resume=True)
    full = safe_torch_load(str(full_dir / f'{loop}_{total}.pth'))
    resumed = safe_torch_load(str(resumed_dir / f'{loop}_{total}.pth'))
    assert resumed['meta']['seed'] == full['meta']['seed']
    for key, value in resumed['state_dict'].items():
        assert torch.equal(value, full['state_dict'][key]), key


def test_seed_everything_is_a_function_of_the_triple():
    def draw():
        return torch.rand(3), np.random.rand(3), random.random()

    seed_everything(7, 2, 5)
    first = draw()
    torch.rand(10), np.random.rand(10)  # history in between
    seed_everything(7, 2, 5)
    again = draw()
    assert torch.equal(first[0], again[0])
    assert np.array_equal(first[1], again[1]) and first[2] == again[2]
    for other in ((7, 2, 6), (7, 1, 5), (8, 2, 5)):
        seed_everything(*other)
        assert not torch.equal(draw()[0], first[0]), other


CONFIG_ROOT = osp.join(REPO_ROOT, 'configs')
CONFIGS = [
    pytest.param(path, id=osp.relpath(path, CONFIG_ROOT)) for path in sorted(
        glob.glob(osp.join(CONFIG_ROOT, '**', '*.py'), recursive=True))
    if '_base_' not in osp.relpath(path, CONFIG_ROOT).split(osp.sep)
]


@pytest.mark.parametrize('config', CONFIGS)
def test_configs_switch_on_safe_checkpoints(config):
    """Safe loading and crash-safe saving come from the config, so mmdet's
    own tools/train.py saves and resumes alike."""
    cfg = Config.fromfile(config)
    assert 'mmdet_slf.engine.checkpoint.install_safe_loading' in \
        cfg.custom_imports['imports']
    assert cfg.default_hooks.checkpoint.type == 'CrashSafeCheckpointHook'
