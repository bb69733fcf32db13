# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The embedded CPU demo, end to end (``make demo``).

1. writes the handwritten-digits VOC set under ``data/`` (skipped if there);
2. trains Fast YOLO + SLF (``configs/demo/fast-yolo-slf_digits.py``), or the
   fixed-lambda model with ``--config fixed``;
3. evaluates VOC mAP (11-point) on the demo test split;
4. measures inference FPS at batch 1, interleaved, of the trained model and
   of the other config carrying the same detector weights (the decision
   network is not used at test time, so the ratio should be 1.00);
5. draws the pictures: ``detections.png`` (ground truth beside the
   predictions), ``class_ap.png`` (AP per class), ``map_curve.png`` (mAP
   during training) and ``slf_weights.png`` (weight trajectories).

The console shows progress bars and a summary; the full log (config,
environment, every logged iteration, third-party warnings) goes to the log
file in the work dir.
"""
import argparse
import logging
import os.path as osp
import sys
import time
import warnings

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)


class WarningsToLogFile:
    """Python warnings go to the run's log file, not the console; those
    raised by this repository's own code also stay on the console.
    Warnings before the log file exists are kept and written once it is
    there."""

    def __init__(self) -> None:
        self.pending = []
        self.logger = None
        self.console = warnings.showwarning

    def showwarning(self, message, category, filename, lineno, file=None,
                    line=None) -> None:
        text = warnings.formatwarning(message, category, filename, lineno,
                                      line).rstrip()
        own = osp.abspath(filename).startswith(REPO_ROOT + osp.sep) and \
            'site-packages' not in filename
        if own:
            self.console(message, category, filename, lineno, file, line)
        if self.logger is None:
            self.pending.append(text)
        else:
            self._to_file(text)

    def attach(self, logger: logging.Logger) -> None:
        self.logger = logger
        for text in self.pending:
            self._to_file(text)
        self.pending.clear()

    def _to_file(self, text: str) -> None:
        record = self.logger.makeRecord(self.logger.name, logging.WARNING,
                                        __file__, 0, text, None, None)
        for handler in self.logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)


WARNINGS = WarningsToLogFile()
if __name__ == '__main__':  # this tool's console only, not an importer's
    warnings.showwarning = WARNINGS.showwarning

import mmdet_slf  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.fileio import load  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmdet_slf.demo_data import make_digits_voc  # noqa: E402
from mmdet_slf.utils.arguments import (CfgOptionsAction,  # noqa: E402
                                       check_work_dir)
from mmdet_slf.utils.timing import (inference_timings,  # noqa: E402
                                    rate_ratio)
from mmdet_slf.visualization import (  # noqa: E402
    class_average_precision, draw_comparison_grid, load_scalars,
    plot_class_ap, plot_map_curve, plot_slf_weights)

CONFIGS = dict(
    slf=osp.join(REPO_ROOT, 'configs/demo/fast-yolo-slf_digits.py'),
    fixed=osp.join(REPO_ROOT, 'configs/demo/fast-yolo_digits.py'))
LABELS = dict(slf='SLF', fixed='fixed lambdas')
MAP_KEY = 'pascal_voc/mAP'
FPS_ROUNDS = 5  # interleaved rounds of the FPS comparison
# Logged warnings kept off the console (they stay in the log file): notices
# of upstream deprecations, and mmengine's note that DumpDetResults, which
# saves the test predictions for the pictures, has no metric prefix.
CONSOLE_NOISE = ('deprecat', 'the prefix is not set in metric class',
                 # the iteration-based loop restarts its loader every epoch
                 'reach the end of the dataloader')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Run the CPU demo')
    parser.add_argument(
        '--config', choices=sorted(CONFIGS), default='slf',
        help='which demo config to train; the other one gets its detector '
        'weights for the FPS comparison. Defaults to slf')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the detector init and the data order')
    parser.add_argument(
        '--work-dir',
        help='pictures go here, the run to WORK_DIR/<config>. Defaults to '
        'work_dirs/demo (slf) or work_dirs/demo-fixed (fixed)')
    parser.add_argument(
        '--fps-images', type=int, default=100,
        help='timed images per model for the FPS measurement, in '
        f'{FPS_ROUNDS} interleaved rounds (a multiple of {FPS_ROUNDS})')
    parser.add_argument('--num-pictures', type=int, default=8,
                        help='test images in detections.png')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='lowest score drawn in detections.png')
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptionsAction,
        help='override settings of the demo config (both models)')
    args = parser.parse_args(argv)
    if args.fps_images < FPS_ROUNDS or args.fps_images % FPS_ROUNDS:
        parser.error(f'--fps-images must be a multiple of {FPS_ROUNDS} '
                     f'(the timing rounds) and >= {FPS_ROUNDS}, got '
                     f'{args.fps_images}')
    if args.num_pictures < 1:
        parser.error(f'--num-pictures must be >= 1, got {args.num_pictures}')
    if not 0 <= args.score_thr <= 1:
        parser.error('--score-thr must be in [0, 1] (detection scores are '
                     f'probabilities), got {args.score_thr}')
    if not 0 <= args.seed < 2**31:
        parser.error('--seed must be in [0, 2**31) (numpy is seeded with '
                     'it plus the data worker\'s index, below 2**32), got '
                     f'{args.seed}')
    check_work_dir(parser, args.work_dir,
                   'the demo writes its runs and pictures into a folder')
    if args.work_dir is None:
        args.work_dir = 'work_dirs/demo' if args.config == 'slf' else \
            'work_dirs/demo-fixed'
    return args


def say(text: str = '') -> None:
    print(f'[demo] {text}' if text else '', flush=True)


def load_cfg(name: str, work_dir: str, options, seed: int) -> Config:
    cfg = Config.fromfile(CONFIGS[name])
    if options:
        cfg.merge_from_dict(options)
    cfg.work_dir = osp.join(work_dir, name)
    cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)
    return cfg


def shape_outputs(cfg: Config) -> None:
    """What the demo shows, not what it trains: progress bars on the
    console, the test predictions saved for the pictures
    (``test_predictions.pkl``), and validation scalars logged at their
    iteration (mmengine logs them at the epoch, 0, unless told) for the
    mAP curve."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(hook.get('type') == 'ProgressBarHook' for hook in hooks):
        hooks.append(dict(type='ProgressBarHook', metric_key=MAP_KEY))
    cfg.custom_hooks = hooks
    evaluator = cfg.test_evaluator
    metrics = list(evaluator) if isinstance(evaluator, (list, tuple)) else [
        evaluator
    ]
    metrics.append(
        dict(type='DumpDetResults',
             out_file_path=osp.join(cfg.work_dir, 'test_predictions.pkl')))
    cfg.test_evaluator = metrics
    if cfg.train_cfg.get('type') == 'IterBasedTrainLoop':
        cfg.default_hooks.logger.setdefault('log_metric_by_epoch', False)


def build_runner(cfg: Config) -> Runner:
    """The config's runner, with mmengine's console handler raised to
    WARNING: the config dump and the per-iteration lines go to the log file
    only, and so does :data:`CONSOLE_NOISE`."""
    from mmdet.registry import RUNNERS
    runner_type = cfg.get('runner_type', 'Runner')
    runner_cls = RUNNERS.get(runner_type)
    if runner_cls is None:
        raise KeyError(f'runner_type {runner_type} is not registered: is its '
                       'package in custom_imports?')

    class DemoRunner(runner_cls):

        def build_logger(self, *args, **kwargs):
            logger = super().build_logger(*args, **kwargs)
            for handler in logger.handlers:
                if not isinstance(handler, logging.FileHandler):
                    handler.setLevel(max(handler.level, logging.WARNING))
                    handler.addFilter(lambda record: not any(
                        text in record.getMessage().lower()
                        for text in CONSOLE_NOISE))
            WARNINGS.attach(logger)
            return logger

    return DemoRunner.from_cfg(cfg)


def make_data(cfg: Config) -> None:
    dataset = cfg.train_dataloader.dataset
    subset = dataset.data_prefix.sub_data_root.strip('/')
    summary = make_digits_voc(
        root=dataset.data_root, subset=subset, progress=True,
        **cfg.get('demo_data', {}))
    state = 'already there' if summary['skipped'] else 'written'
    say(f'data: {osp.join(dataset.data_root, subset)} {state} '
        f'({summary["splits"]["trainval"]["num_images"]} train, '
        f'{summary["splits"]["test"]["num_images"]} test images)')


def fps_comparison(runner: Runner, name: str, other_cfg: Config,
                   num_images: int) -> dict:
    """Timings of the trained model and of ``other_cfg``'s model carrying
    the same detector weights, measured interleaved on the same images."""
    from mmdet.registry import MODELS
    model = runner.model
    other = MODELS.build(other_cfg.model)
    state = {
        key: value
        for key, value in model.state_dict().items()
        if '.weighting.' not in key
    }
    missing, unexpected = other.load_state_dict(state, strict=False)
    missing = [key for key in missing if '.weighting.' not in key]
    if missing or unexpected:
        raise RuntimeError('the two demo configs differ in more than the '
                           f'weighting: missing {missing}, unexpected '
                           f'{unexpected}')
    other.to(next(model.parameters()).device)
    loader = runner.build_dataloader(
        dict(runner.cfg.test_dataloader, batch_size=1, num_workers=0,
             persistent_workers=False))
    batches = []
    for batch in loader:
        batches.append(batch)
        if len(batches) == 20:
            break
    other_name = 'fixed' if name == 'slf' else 'slf'
    return inference_timings(
        {name: model, other_name: other}, batches, rounds=FPS_ROUNDS,
        calls_per_round=num_images // FPS_ROUNDS, warmup=5)


def draw_pictures(runner: Runner, args, test_map: float) -> dict:
    """The four PNGs in ``args.work_dir``; returns their paths and the AP
    per class."""
    dataset = runner.test_dataloader.dataset
    classes = dataset.metainfo['classes']
    predictions = load(osp.join(runner.work_dir, 'test_predictions.pkl'))
    infos = {
        info['img_path']: info
        for info in (dataset.get_data_info(i) for i in range(len(dataset)))
    }
    ground_truth = [infos[p['img_path']] for p in predictions]
    metric = runner.cfg.test_evaluator[0]
    iou_thr = metric.get('iou_thrs', 0.5)
    iou_thr = iou_thr[0] if isinstance(iou_thr, (list, tuple)) else iou_thr
    per_class = class_average_precision(
        predictions, ground_truth, classes, iou_thr=iou_thr,
        eval_mode=metric.get('eval_mode', '11points'))  # VOCMetric's default
    pictures = {}
    pictures['detections'] = osp.join(args.work_dir, 'detections.png')
    shown = slice(0, args.num_pictures)
    _, counts = draw_comparison_grid(
        [p['img_path'] for p in predictions[shown]], predictions[shown],
        ground_truth[shown], classes, pictures['detections'],
        score_thr=args.score_thr, iou_thr=iou_thr)
    pictures['class_ap'] = osp.join(args.work_dir, 'class_ap.png')
    plot_class_ap({c['name']: c['ap'] for c in per_class['classes']},
                  pictures['class_ap'], mean_ap=per_class['mAP'],
                  title=f'AP per class on {len(predictions)} test images '
                  f'(IoU {iou_thr:g})')
    records = load_scalars(
        osp.join(runner.log_dir, 'vis_data', 'scalars.json'))
    steps = [r['step'] for r in records if MAP_KEY in r]
    if not steps or steps[-1] != runner.iter:
        records.append({MAP_KEY: test_map, 'step': runner.iter})
    pictures['map_curve'] = osp.join(args.work_dir, 'map_curve.png')
    plot_map_curve({LABELS[args.config]: records}, pictures['map_curve'])
    pictures['slf_weights'] = osp.join(args.work_dir, 'slf_weights.png')
    if not draw_weights(records, pictures['slf_weights']):
        del pictures['slf_weights']
    return dict(pictures=pictures, per_class=per_class, counts=counts)


def draw_weights(records: list, path: str) -> bool:
    """Plot the logged loss weights to ``path``; without any, say why no
    picture was written and return False."""
    try:
        plot_slf_weights(records, path)
    except KeyError as error:
        # SLFLoggerHook logs the weights every logging interval: a run
        # shorter than one interval, or a config without the hook, has none
        say(f'slf_weights.png not written: {error.args[0]}; SLFLoggerHook '
            'logs the weights once per logging interval')
        return False
    return True


def duration(seconds: float) -> str:
    minutes, seconds = divmod(seconds, 60)
    return f'{int(minutes)} min {seconds:04.1f} s' if minutes else \
        f'{seconds:.1f} s'


def summary(args, cfg, runner, test_map, num_test, timings, seconds,
            drawn) -> None:
    name = args.config
    other = 'fixed' if name == 'slf' else 'slf'
    ratio, two_se = rate_ratio(timings['fixed'], timings['slf'])
    counts = drawn['counts']
    say()
    say('=' * 27 + ' summary ' + '=' * 27)
    say(f'trained    {osp.relpath(CONFIGS[name], REPO_ROOT)} '
        f'({LABELS[name]}), seed {args.seed}, {runner.iter} iterations')
    say(f'mAP        {test_map:.4f}  (VOC07 11-point, IoU 0.5, {num_test} '
        'test images)')
    say('AP/class   ' + ' '.join(
        f'{c["name"]}:{c["ap"]:.2f}' for c in drawn['per_class']['classes']))
    say(f'FPS        {LABELS[name]} {timings[name].items_per_second:.1f}, '
        f'{LABELS[other]} {timings[other].items_per_second:.1f} '
        f'(batch 1, {torch.get_num_threads()} CPU threads, same weights, '
        'interleaved)')
    say(f'FPS ratio  SLF / fixed {ratio:.3f} +- {two_se:.3f} '
        '(2 standard errors)')
    say(f'time       data {duration(seconds["data"])}, train '
        f'{duration(seconds["train"])}, eval {duration(seconds["eval"])}, '
        f'total {duration(seconds["total"])}')
    shown = sum(c['num_shown'] for c in counts)
    say(f'pictures   {drawn["pictures"]["detections"]}  ({len(counts)} test '
        f'images: {sum(c["num_correct"] for c in counts)} of {shown} '
        f'predictions at score >= {args.score_thr:g} correct, '
        f'{sum(c["num_gts"] for c in counts)} objects)')
    for key, text in (('class_ap', 'AP per class'),
                      ('map_curve', 'mAP during training'),
                      ('slf_weights', 'loss weights during training')):
        if key in drawn['pictures']:
            say(f'           {drawn["pictures"][key]}  ({text})')
    log_file = osp.join(runner.log_dir, f'{runner.timestamp}.log')
    say(f'full log   {log_file}')
    last = osp.join(runner.work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            say(f'checkpoint {f.read().strip()}')


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    seconds = {}
    other = 'fixed' if args.config == 'slf' else 'slf'
    cfg = load_cfg(args.config, args.work_dir, args.cfg_options, args.seed)
    shape_outputs(cfg)
    say(f'Fast YOLO on handwritten digits, {LABELS[args.config]} '
        f'({osp.relpath(CONFIGS[args.config], REPO_ROOT)}), seed '
        f'{args.seed}, work dir {cfg.work_dir}')
    tick = time.perf_counter()
    make_data(cfg)
    seconds['data'] = time.perf_counter() - tick

    runner = build_runner(cfg)
    tick = time.perf_counter()
    runner.train()
    seconds['train'] = time.perf_counter() - tick
    tick = time.perf_counter()
    metrics = runner.test()
    seconds['eval'] = time.perf_counter() - tick
    test_map = float(metrics.get(MAP_KEY, float('nan')))
    num_test = len(runner.test_dataloader.dataset)

    say(f'timing inference: {LABELS[args.config]} and {LABELS[other]} '
        f'models, {args.fps_images} images each, interleaved')
    other_cfg = load_cfg(other, args.work_dir, args.cfg_options, args.seed)
    timings = fps_comparison(runner, args.config, other_cfg,
                             args.fps_images)
    say('drawing pictures')
    drawn = draw_pictures(runner, args, test_map)
    seconds['total'] = time.perf_counter() - start
    summary(args, cfg, runner, test_map, num_test, timings, seconds, drawn)
    return dict(mAP=test_map, timings=timings, seconds=seconds, **drawn)


if __name__ == '__main__':
    main()
