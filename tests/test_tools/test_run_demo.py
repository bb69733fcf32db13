# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""tools/run_demo.py on a tiny run (16 training images, 4 iterations): the
console holds progress bars and the summary but no config dump, log lines
or deprecation notices; those are in the log file; the pictures exist."""
import glob
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, refusal

TOOL = osp.join(REPO_ROOT, 'tools', 'run_demo.py')


def tiny_options(data_root):
    options = [
        'demo_data.num_trainval=16', 'demo_data.num_test=8',
        'train_dataloader.batch_size=4', 'train_cfg.max_iters=4',
        'train_cfg.val_interval=2', 'default_hooks.logger.interval=1'
    ]
    for split in ('train', 'val', 'test'):
        options += [
            f'{split}_dataloader.dataset.data_root={data_root}/',
            f'{split}_dataloader.num_workers=0',
            f'{split}_dataloader.persistent_workers=False'
        ]
    return options


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('run_demo')
    work_dir = str(tmp / 'work')
    env = dict(os.environ, OMP_NUM_THREADS='2')
    proc = subprocess.run(
        [sys.executable, TOOL, '--work-dir', work_dir, '--fps-images', '5',
         '--seed', '3', '--cfg-options',
         *tiny_options(str(tmp / 'VOCdevkit'))],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    console = proc.stdout + proc.stderr
    assert proc.returncode == 0, console[-4000:]
    return work_dir, proc.stdout, console


def test_console_has_bars_and_summary(demo_run):
    work_dir, stdout, console = demo_run
    for text in ('digits demo', 'train: 100%', 'test: 100%',
                 'val at iteration 2: pascal_voc/mAP',
                 'val at iteration 4: pascal_voc/mAP'):
        assert text in console, text
    summary = stdout[stdout.index('summary'):]
    assert 'fast-yolo-slf_digits.py (SLF), seed 3, 4 iterations' in summary
    assert re.search(r'\[demo\] mAP +[0-9.]+ +\(VOC07 11-point, IoU 0.5, 8 '
                     r'test images\)', summary)
    fps = re.search(r'FPS +SLF ([0-9.]+), fixed lambdas ([0-9.]+)', summary)
    ratio = re.search(r'FPS ratio +SLF / fixed ([0-9.]+) \+- [0-9.]+',
                      summary)
    # the ratio is SLF's FPS over fixed's (both printed to 0.1 FPS)
    slf_fps, fixed_fps = float(fps.group(1)), float(fps.group(2))
    assert float(ratio.group(1)) == pytest.approx(
        slf_fps / fixed_fps, abs=0.002 + 0.06 / fixed_fps)
    assert re.search(r'time +data .*, train .*, eval .*, total ', summary)
    for name in ('detections', 'class_ap', 'map_curve', 'slf_weights'):
        path = osp.join(work_dir, f'{name}.png')
        assert path in summary and osp.getsize(path) > 0, name


def test_console_has_no_config_dump_or_noise(demo_run):
    _, _, console = demo_run
    for text in ('Config:', 'model = dict(', 'System environment',
                 'Iter(train)', 'Iter(val)', 'deprecat', 'prefix is not set',
                 'Reach the end of the dataloader'):
        assert text not in console, text


def test_log_file_keeps_everything(demo_run):
    work_dir, stdout, _ = demo_run
    [log_file] = glob.glob(osp.join(work_dir, 'slf', '*', '*.log'))
    assert log_file in stdout
    with open(log_file) as f:
        log = f.read()
    assert 'Config:' in log and 'model = dict(' in log
    for index in range(1, 5):
        assert f'Iter(train) [{index}/4]' in log
    assert 'deprecated' in log
    # The summary reports the metric the test loop logged.
    logged = re.findall(r'Iter\(test\).*pascal_voc/mAP: ([0-9.]+)', log)
    printed = re.search(r'\[demo\] mAP +([0-9.]+)', stdout).group(1)
    assert logged and float(logged[-1]) == pytest.approx(float(printed),
                                                         abs=1e-4)


def test_map_curve_has_the_validation_iterations(demo_run):
    work_dir, _, _ = demo_run
    [scalars] = glob.glob(
        osp.join(work_dir, 'slf', '*', 'vis_data', 'scalars.json'))
    with open(scalars) as f:
        records = [json.loads(line) for line in f]
    assert [r['step'] for r in records if 'pascal_voc/mAP' in r] == [2, 4]


def test_config_choice_and_defaults():
    spec = importlib.util.spec_from_file_location('run_demo', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = tool.parse_args([])
    assert (args.config, args.seed) == ('slf', 0)
    assert args.work_dir == 'work_dirs/demo'
    args = tool.parse_args(['--config', 'fixed', '--seed', '2'])
    assert (args.config, args.seed) == ('fixed', 2)
    assert args.work_dir == 'work_dirs/demo-fixed'
    assert tool.CONFIGS['fixed'].endswith('configs/demo/fast-yolo_digits.py')
    with pytest.raises(SystemExit):
        tool.parse_args(['--config', 'other'])


@pytest.mark.parametrize('count', ['0', '-2'])
def test_num_pictures_must_be_positive(count, capsys):
    # 0 crashed after training; a negative count dropped pictures silently
    spec = importlib.util.spec_from_file_location('run_demo', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert f'--num-pictures must be >= 1, got {count}' in refusal(
        tool.parse_args, ['--num-pictures', count], capsys)


@pytest.mark.parametrize('images', ['0', '3', '12'])
def test_fps_images_must_fill_the_timing_rounds(images, capsys):
    """5 interleaved rounds time the same number of images each: a count
    they cannot share is refused, not silently rounded."""
    spec = importlib.util.spec_from_file_location('run_demo', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.parse_args(['--fps-images', '10']).fps_images == 10
    assert f'--fps-images must be a multiple of 5 (the timing rounds) and ' \
        f'>= 5, got {images}' in refusal(tool.parse_args,
                                         ['--fps-images', images], capsys)


@pytest.mark.parametrize('argv,message', [
    (['--score-thr', '1.5'], '--score-thr must be in [0, 1]'),
    (['--score-thr', '-0.1'], '--score-thr must be in [0, 1]'),
    (['--score-thr', 'nan'], '--score-thr must be in [0, 1]'),
    (['--seed', '-1'], '--seed must be in [0, 2**31)'),
    (['--seed', str(2**31)], '--seed must be in [0, 2**31)'),
])
def test_a_threshold_or_seed_out_of_range_is_refused_before_training(
        argv, message, capsys):
    """A threshold above 1 trained for minutes and drew no box."""
    spec = importlib.util.spec_from_file_location('run_demo', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert message in refusal(tool.parse_args, argv, capsys)
    for good in (['--score-thr', '0'], ['--score-thr', '1'],
                 ['--seed', str(2**31 - 1)]):
        tool.parse_args(good)


def test_a_run_without_logged_weights_says_why_it_has_no_weight_plot(
        tmp_path, capsys):
    """A run shorter than one logging interval logs no slf_w_ scalars: the
    weight plot is skipped with the reason, and drawn from the records
    where they are."""
    spec = importlib.util.spec_from_file_location('run_demo', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    path = str(tmp_path / 'slf_weights.png')
    assert not tool.draw_weights([{'pascal_voc/mAP': 0.1, 'step': 4}], path)
    assert not osp.exists(path)
    assert "slf_weights.png not written: no slf_w_<term> scalars to plot " \
        "(found no slf_ keys); SLFLoggerHook logs the weights once per " \
        "logging interval" in capsys.readouterr().out
    records = [dict(step=step, slf_w_coord=5.0, slf_w_pred=1.0)
               for step in (1, 2)]
    assert tool.draw_weights(records, path) and osp.getsize(path) > 0
    assert 'not written' not in capsys.readouterr().out
