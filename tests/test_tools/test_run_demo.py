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
from types import SimpleNamespace

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
    # The ratio is SLF's FPS over fixed's. Both are printed rounded to 0.1
    # FPS, so each true rate is within 0.05 of its print, and the ratio of
    # the true rates, printed to 0.001, lies within these bounds (at 10
    # FPS, 10.049 and 9.951 both print 10.0 while the ratio is 1.010).
    slf_fps, fixed_fps = float(fps.group(1)), float(fps.group(2))
    low = (slf_fps - 0.05) / (fixed_fps + 0.05) - 0.0005
    high = (slf_fps + 0.05) / (fixed_fps - 0.05) + 0.0005
    assert low <= float(ratio.group(1)) <= high
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


def load_tool():
    spec = importlib.util.spec_from_file_location('run_demo', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_load_cfg_runs_each_config_in_its_own_dir_and_keeps_randomness():
    """``--seed`` sets ``randomness.seed`` beside the randomness options a
    user passed, and each config's run goes to WORK_DIR/<config>, so the
    fixed run does not write into the SLF one."""
    tool = load_tool()
    cfg = tool.load_cfg('fixed', 'wd',
                        dict(randomness=dict(diff_rank_seed=True)), 7)
    assert cfg.work_dir == osp.join('wd', 'fixed')
    assert cfg.randomness == dict(diff_rank_seed=True, seed=7)
    assert tool.load_cfg('slf', 'wd', None, 0).work_dir == \
        osp.join('wd', 'slf')


def test_shape_outputs_extends_a_list_of_test_metrics():
    """Two metrics in the config stay two metrics, followed by the dump of
    the predictions the pictures are drawn from; the progress bar hook is
    added once."""
    tool = load_tool()
    cfg = tool.load_cfg('slf', 'wd', None, 0)
    cfg.test_evaluator = [dict(type='VOCMetric', iou_thrs=0.5),
                          dict(type='VOCMetric', iou_thrs=0.75)]
    tool.shape_outputs(cfg)
    assert [m['type'] for m in cfg.test_evaluator] == \
        ['VOCMetric', 'VOCMetric', 'DumpDetResults']
    assert [m.get('iou_thrs') for m in cfg.test_evaluator[:2]] == [0.5, 0.75]
    assert cfg.test_evaluator[2]['out_file_path'] == \
        osp.join('wd', 'slf', 'test_predictions.pkl')
    assert [h['type'] for h in cfg.custom_hooks].count('ProgressBarHook') \
        == 1


class LoaderRunner:
    """What ``fps_comparison`` reads of a runner: its model, its test
    loader config, and a loader of 30 numbered batches."""

    def __init__(self, model):
        self.model = model
        self.cfg = SimpleNamespace(test_dataloader=dict(
            batch_size=8, num_workers=2, persistent_workers=True,
            dataset='test set'))
        self.loader_cfgs = []

    def build_dataloader(self, cfg):
        self.loader_cfgs.append(cfg)
        return iter(range(30))


def demo_model(tool, name):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    return MODELS.build(tool.load_cfg(name, 'wd', None, 0).model)


def test_fps_comparison_of_a_fixed_run_times_both_on_its_weights(
        monkeypatch):
    """Trained with ``--config fixed``, the SLF model has weighting tensors
    the trained one lacks: they are not an error. Both models are timed
    under their own names, with every detector tensor of the SLF model the
    trained one's; 10 images in 5 rounds are 2 calls per round, on the
    first 20 test batches loaded one image at a time."""
    tool = load_tool()
    torch = tool.torch
    torch.manual_seed(0)
    trained = demo_model(tool, 'fixed')
    seen = {}

    def timings(models, batches, **kwargs):
        seen.update(models=models, batches=batches, **kwargs)
        return 'timings'

    monkeypatch.setattr(tool, 'inference_timings', timings)
    runner = LoaderRunner(trained)
    assert tool.fps_comparison(runner, 'fixed',
                               tool.load_cfg('slf', 'wd', None, 0),
                               10) == 'timings'
    assert sorted(seen['models']) == ['fixed', 'slf']
    assert seen['models']['fixed'] is trained
    assert (seen['rounds'], seen['calls_per_round'], seen['warmup']) == \
        (5, 2, 5)
    assert seen['batches'] == list(range(20))
    assert runner.loader_cfgs == [dict(batch_size=1, num_workers=0,
                                       persistent_workers=False,
                                       dataset='test set')]
    slf = seen['models']['slf'].state_dict()
    assert any('.weighting.decision_net.' in key for key in slf)
    for key, value in trained.state_dict().items():
        assert torch.equal(slf[key], value), key


def test_fps_comparison_refuses_a_detector_tensor_the_other_lacks():
    """A detector tensor missing from the trained model (not one of the
    weighting's) means the configs differ in more than the weighting: the
    timing would compare different detectors, so it is refused by name."""
    tool = load_tool()
    full = demo_model(tool, 'slf')
    dropped = next(key for key in full.state_dict()
                   if '.weighting.' not in key)

    class Partial(tool.torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.inner = full

        def state_dict(self):
            state = dict(full.state_dict())
            del state[dropped]
            return state

    with pytest.raises(RuntimeError, match=re.escape(
            f"missing ['{dropped}'], unexpected []")):
        tool.fps_comparison(LoaderRunner(Partial()), 'slf',
                            tool.load_cfg('fixed', 'wd', None, 0), 10)


class PicturesDataset:

    metainfo = dict(classes=('0', '1'))

    def __len__(self):
        return 3

    def get_data_info(self, index):
        return dict(img_path=f'{index}.jpg', instances=[index])


@pytest.mark.parametrize('last_iter,appended', [(4, True), (2, False)])
def test_draw_pictures_passes_the_options_and_ends_the_curve_at_the_test(
        last_iter, appended, tmp_path, monkeypatch):
    """``--num-pictures 2`` draws the first two predictions beside their
    own ground truth, at ``--score-thr 0.6`` and the metric's IoU 0.75;
    the test mAP (0.7) closes the mAP curve at the last iteration unless
    a validation there already logged it."""
    tool = load_tool()
    calls = {}
    predictions = [dict(img_path=f'{i}.jpg') for i in (2, 0, 1)]
    monkeypatch.setattr(tool, 'load', lambda path: predictions)
    monkeypatch.setattr(tool, 'load_scalars', lambda path: [
        {tool.MAP_KEY: 0.2, 'step': 2}, {'loss': 1.0, 'step': 3}])

    def per_class(preds, gts, classes, iou_thr, eval_mode):
        calls['ap'] = (gts, iou_thr, eval_mode)
        return dict(classes=[dict(name='0', ap=0.5), dict(name='1', ap=0.3)],
                    mAP=0.4)

    def grid(images, dets, gts, classes, out_file, score_thr, iou_thr):
        calls['grid'] = (images, gts, score_thr, iou_thr)
        return None, 'counts'

    monkeypatch.setattr(tool, 'class_average_precision', per_class)
    monkeypatch.setattr(tool, 'draw_comparison_grid', grid)
    monkeypatch.setattr(tool, 'plot_class_ap', lambda *a, **k: None)
    monkeypatch.setattr(tool, 'plot_map_curve',
                        lambda runs, path: calls.update(curve=runs))
    monkeypatch.setattr(tool, 'draw_weights', lambda records, path: True)
    runner = SimpleNamespace(
        test_dataloader=SimpleNamespace(dataset=PicturesDataset()),
        work_dir=str(tmp_path), log_dir=str(tmp_path), iter=last_iter,
        cfg=SimpleNamespace(test_evaluator=[dict(
            type='VOCMetric', iou_thrs=[0.75], eval_mode='area')]))
    args = SimpleNamespace(work_dir='out', num_pictures=2, score_thr=0.6,
                           config='slf')
    drawn = tool.draw_pictures(runner, args, 0.7)
    gts = [dict(img_path=f'{i}.jpg', instances=[i]) for i in (2, 0, 1)]
    assert calls['ap'] == (gts, 0.75, 'area')
    assert calls['grid'] == (['2.jpg', '0.jpg'], gts[:2], 0.6, 0.75)
    [(label, records)] = calls['curve'].items()
    assert label == 'SLF'
    assert [(r['step'], r[tool.MAP_KEY]) for r in records
            if tool.MAP_KEY in r] == [(2, 0.2)] + [(4, 0.7)] * appended
    assert drawn['counts'] == 'counts'
    assert sorted(drawn['pictures']) == ['class_ap', 'detections',
                                         'map_curve', 'slf_weights']


def test_summary_prints_slf_fps_over_fixed_and_the_durations(
        tmp_path, capsys):
    """SLF at 10 images/s and the fixed model at 20 give the FPS ratio
    10 / 20 = 0.500 (no spread, so +- 0.000); 65 s read 1 min 05.0 s."""
    tool = load_tool()
    from mmdet_slf.utils.timing import Timing
    timings = dict(slf=Timing(seconds=[1.0, 1.0], items=[10, 10]),
                   fixed=Timing(seconds=[1.0, 1.0], items=[20, 20]))
    args = SimpleNamespace(config='slf', seed=3, score_thr=0.3)
    runner = SimpleNamespace(iter=4, log_dir=str(tmp_path), timestamp='t',
                             work_dir=str(tmp_path))
    drawn = dict(counts=[dict(num_shown=3, num_correct=2, num_gts=4)],
                 per_class=dict(classes=[dict(name='0', ap=0.5)]),
                 pictures=dict(detections='d.png'))
    tool.summary(args, None, runner, 0.25, 8, timings,
                 dict(data=1.0, train=65.0, eval=2.0, total=68.0), drawn)
    out = capsys.readouterr().out
    assert 'FPS        SLF 10.0, fixed lambdas 20.0' in out
    assert 'FPS ratio  SLF / fixed 0.500 +- 0.000' in out
    assert 'time       data 1.0 s, train 1 min 05.0 s, eval 2.0 s, ' \
        'total 1 min 08.0 s' in out
    assert '(1 test images: 2 of 3 predictions at score >= 0.3 correct, ' \
        '4 objects)' in out


def test_main_gives_both_models_the_options_and_seed(monkeypatch, tmp_path):
    """``--config fixed --seed 3 --cfg-options model.bbox_head.dropout=
    0.25`` (training faked): the trained config and the SLF one built for
    the FPS comparison both carry the option and the seed, each in its own
    run dir, and the test mAP is returned."""
    tool = load_tool()
    seen = {}

    class Runner:
        test_dataloader = SimpleNamespace(dataset=range(8))

        def train(self):
            seen['trained'] = True

        def test(self):
            return {tool.MAP_KEY: 0.25}

    def build_runner(cfg):
        seen['cfg'] = cfg
        return Runner()

    def fps(runner, name, other_cfg, num_images):
        seen['fps'] = (name, other_cfg, num_images)
        return 'timings'

    monkeypatch.setattr(tool, 'make_data', lambda cfg: None)
    monkeypatch.setattr(tool, 'build_runner', build_runner)
    monkeypatch.setattr(tool, 'fps_comparison', fps)
    monkeypatch.setattr(tool, 'draw_pictures',
                        lambda runner, args, test_map: dict(pictures={}))
    monkeypatch.setattr(tool, 'summary', lambda *args: None)
    work_dir = str(tmp_path)
    result = tool.main(['--config', 'fixed', '--seed', '3', '--work-dir',
                        work_dir, '--fps-images', '10', '--cfg-options',
                        'model.bbox_head.dropout=0.25'])
    name, other_cfg, num_images = seen['fps']
    assert (seen['trained'], name, num_images) == (True, 'fixed', 10)
    for cfg, run in ((seen['cfg'], 'fixed'), (other_cfg, 'slf')):
        assert cfg.model.bbox_head.dropout == 0.25
        assert cfg.randomness.seed == 3
        assert cfg.work_dir == osp.join(work_dir, run)
    assert other_cfg.model.bbox_head.weighting.type != \
        seen['cfg'].model.bbox_head.weighting.type
    assert (result['mAP'], result['timings']) == (0.25, 'timings')


def test_a_file_as_work_dir_is_refused_before_anything_runs(tmp_path,
                                                            capsys):
    """An existing file as --work-dir ended the demo in the runner with
    NotADirectoryError, after the data was made; a folder that does not
    exist yet is fine (the runs make it)."""
    tool = load_tool()
    afile = tmp_path / 'notes.txt'
    afile.write_text('')
    assert f'--work-dir {afile} is a file' in refusal(
        tool.parse_args, ['--work-dir', str(afile)], capsys)
    assert tool.parse_args(['--work-dir', str(tmp_path / 'new')]).work_dir \
        == str(tmp_path / 'new')
