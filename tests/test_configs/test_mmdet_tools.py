# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The demo config trains alike under mmdet's own tools/train.py (the one
``mim train mmdet`` runs) and ours: the config brings the plugin, its runner
and its hooks, so nothing depends on which script starts the run."""
import json
import os
import os.path as osp
import subprocess
import sys

import mmdet
import pytest
from conftest import REPO_ROOT, make_tiny_voc, patch_cfg_for_tiny_voc
from mmengine.config import Config

DEMO_CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'fast-yolo_digits.py')
MMDET_TRAIN = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools',
                       'train.py')
OUR_TRAIN = osp.join(REPO_ROOT, 'tools', 'train.py')
NUM_ITERS = 3


def train(script: str, config: str, work_dir: str, *options: str,
          returncode: int = 0) -> str:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    command = [sys.executable, script, config, '--work-dir', work_dir]
    if options:
        command += ['--cfg-options', *options]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == returncode, output[-4000:]
    return output


def logged_scalars(work_dir: str) -> list:
    """Every line of the run's ``vis_data/scalars.json``."""
    for root, _, files in os.walk(work_dir):
        if 'scalars.json' in files and root.endswith('vis_data'):
            with open(osp.join(root, 'scalars.json')) as f:
                return [json.loads(line) for line in f if line.strip()]
    raise FileNotFoundError(f'no vis_data/scalars.json under {work_dir}')


@pytest.mark.skipif(not osp.isfile(MMDET_TRAIN),
                    reason="mmdet's package ships no .mim/tools/train.py")
def test_demo_config_trains_alike_under_mmdet_tools(tmp_path):
    classes = Config.fromfile(DEMO_CONFIG).classes
    root = str(tmp_path / 'data')
    make_tiny_voc(root, years=('DIGITS', ), classes=classes[:3])
    cfg = Config.fromfile(DEMO_CONFIG)
    patch_cfg_for_tiny_voc(cfg, root, str(tmp_path / 'unused'),
                           image_size=(128, 128), batch_size=2,
                           max_iters=NUM_ITERS)
    cfg.randomness = dict(seed=0)
    config = str(tmp_path / 'demo.py')
    cfg.dump(config)

    runs = {}
    for name, script in (('mmdet', MMDET_TRAIN), ('ours', OUR_TRAIN)):
        work_dir = str(tmp_path / name)
        output = train(script, config, work_dir)
        # The config's hooks ran under either script (mmengine lists them).
        for hook in ('DatasetCheckHook', 'IterSeedHook', 'SLFLoggerHook'):
            assert hook in output, (name, hook)
        runs[name] = logged_scalars(work_dir)
        # So did its runner: CheckedRunner's start-up check names the
        # missing data root.
        output = train(script, config, work_dir + '_missing',
                       'train_dataloader.dataset.data_root=/nowhere',
                       returncode=1)
        assert 'train_dataloader: data_root "/nowhere" does not exist' in \
            output, (name, output[-2000:])

    assert len(runs['ours']) == NUM_ITERS
    for theirs, ours in zip(runs['mmdet'], runs['ours']):
        assert theirs['iter'] == ours['iter']
        losses = sorted(key for key in ours if key.startswith('loss'))
        assert len(losses) == 5  # loss and the four YOLO terms
        assert {key: theirs[key] for key in losses} == \
            {key: ours[key] for key in losses}
