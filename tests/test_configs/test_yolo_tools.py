# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""End to end: tools/train.py on configs/yolo_slf_voc.py with tiny VOC data
prints VOC mAP, tools/test.py on its checkpoint prints the same, and
tools/benchmark_fps.py compares the baseline and SLF models."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT, make_tiny_voc, small_yolo_cfg

import mmdet_slf  # noqa: F401
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules

# Every override that shrinks the paper's model and schedule for a CPU test:
# 128 px input (2x2 map at stride 64), 1/8 of the filters, a 64-wide FC.
SMALL_MODEL = [
    'model.bbox_head.input_size=128',
    'model.backbone.widen_factor=0.125',
    'model.bbox_head.in_channels=128',
    'model.bbox_head.fc_channels=64',
    # Keep every surviving box (49 per class and image): after 8 iterations
    # the top 100 rarely hit one of the 3 test objects, and a metric of 0
    # would make "test.py reproduces it" trivially true.
    'model.test_cfg.max_per_img=2000',
]


def data_options(root):
    options = []
    for index in (0, 1):  # VOC2007 and VOC2012 trainval
        prefix = f'train_dataloader.dataset.datasets.{index}'
        options += [
            f'{prefix}.data_root={root}',
            f'{prefix}.pipeline.4.scale=(128,128)',  # the Resize step
        ]
    for split in ('val', 'test'):
        options += [
            f'{split}_dataloader.dataset.data_root={root}',
            f'{split}_dataloader.dataset.pipeline.1.scale=(128,128)',
            f'{split}_dataloader.num_workers=0',
            f'{split}_dataloader.persistent_workers=False',
        ]
    return options + [
        'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
    ]


def run(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS='2')
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Train 2 epochs (8 iterations) with evaluation after each."""
    tmp = tmp_path_factory.mktemp('yolo_tools')
    root = str(tmp / 'VOCdevkit')
    make_tiny_voc(root)
    work_dir = str(tmp / 'work')
    output = run([
        'tools/train.py', 'configs/yolo_slf_voc.py', '--work-dir', work_dir,
        '--cfg-options', *SMALL_MODEL, *data_options(root),
        'train_cfg.max_epochs=2', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1', 'randomness.seed=0'
    ], REPO_ROOT)
    return root, work_dir, output


def test_train_prints_voc_map_and_test_reproduces_it(trained):
    root, work_dir, output = trained
    # one "Epoch(val)" line per epoch with the VOC metric
    val_maps = re.findall(r'Epoch\(val\).*?pascal_voc/mAP: ([0-9.]+)',
                          output)
    assert len(val_maps) == 2, output[-3000:]
    assert 'slf_w_coord' in output and 'slf_w_noobj' in output
    checkpoint = osp.join(work_dir, 'epoch_2.pth')
    assert osp.exists(checkpoint)

    test_output = run([
        'tools/test.py', 'configs/yolo_slf_voc.py', checkpoint,
        '--work-dir', osp.join(work_dir, 'test'), '--cfg-options',
        *SMALL_MODEL, *data_options(root)
    ], REPO_ROOT)
    printed = re.findall(r"'pascal_voc/mAP': ([0-9.]+)", test_output)
    assert printed, test_output[-3000:]
    # the same weights on the same images give the same metric
    assert float(printed[-1]) == pytest.approx(float(val_maps[-1]), abs=1e-4)
    assert 0.0 < float(printed[-1]) <= 1.0


def test_fps_tool_compares_baseline_and_slf(trained):
    _, work_dir, _ = trained
    out = osp.join(work_dir, 'fps.json')
    output = run([
        'tools/benchmark_fps.py', 'configs/fast-yolo_voc.py', '--compare',
        'configs/fast-yolo_slf_voc.py', '--device', 'cpu', '--num-iters',
        '20', '--warmup', '3', '--threads', '1', '--fuse-conv-bn', '--shape',
        '128', '128', '--same-weights', '--out', out, '--cfg-options',
        *SMALL_MODEL
    ], REPO_ROOT)
    # the detector's tensors copied; the SLF model's weighting keeps its own
    copied, total = map(int, re.search(
        r'same weights: (\d+) of (\d+) tensors', output).groups())
    assert 0 < copied < total
    fps = [float(v) for v in re.findall(r': FPS ([0-9.]+)', output)]
    assert len(fps) == 2 and all(v > 0 for v in fps), output[-2000:]
    ratio = float(re.search(r'FPS ratio \(second / first\): ([0-9.]+)',
                            output).group(1))
    assert ratio == pytest.approx(fps[1] / fps[0], rel=1e-2)
    with open(out) as f:
        results = json.load(f)['results']
    # same network at inference; only the SLF model owns weighting params
    assert results[0]['params'] + results[1]['weighting_params'] == \
        results[1]['params']
    assert results[0]['weighting_params'] == 0
    # identical work on the same weights: any gap is timing noise
    assert 0.5 < ratio < 2.0


def test_decision_network_is_not_run_at_inference():
    register_all_modules()
    cfg = small_yolo_cfg('fast-yolo_slf_voc.py')
    model = MODELS.build(cfg.model).eval()
    weighting = model.bbox_head.weighting
    calls = []
    # On the decision network itself: an inference path that calls
    # weighting.weigh() directly would pass a hook on weighting.forward.
    weighting.decision_net.register_forward_hook(
        lambda *args: calls.append(1))
    state = {k: v.clone() for k, v in weighting.state_dict().items()}
    sample = DetDataSample(metainfo=dict(
        img_shape=(128, 128), ori_shape=(128, 128), scale_factor=(1., 1.)))
    with torch.no_grad():
        results = model.test_step(
            dict(inputs=[torch.randint(0, 256, (3, 128, 128),
                                       dtype=torch.uint8)],
                 data_samples=[sample]))
    assert calls == [] and len(results) == 1
    assert 'bboxes' in results[0].pred_instances
    # nothing of the weighting moved (its counter, running means)
    for key, value in weighting.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_test_tool_prints_numbers_rounded_and_other_values_as_they_are():
    """A metric may return a list or a string (a per-class table, say):
    the printed dict rounds the numbers only, where float() of the rest
    raised after the metrics had been computed."""
    import importlib.util
    import numpy as np
    spec = importlib.util.spec_from_file_location(
        'mmdet_test_tool', osp.join(REPO_ROOT, 'tools', 'test.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    metrics = {'pascal_voc/mAP': 0.123456, 'pascal_voc/AP50': np.float32(
        0.5), 'count': 3, 'per_class': [0.1, 0.2], 'note': 'n/a',
               'flag': True}
    printed = tool.printable_metrics(metrics)
    assert printed == {
        'pascal_voc/mAP': 0.1235, 'pascal_voc/AP50': 0.5, 'count': 3,
        'per_class': [0.1, 0.2], 'note': 'n/a', 'flag': True}
    assert type(printed['flag']) is bool  # True == 1.0 would pass above
