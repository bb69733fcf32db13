# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Compare every loss-weighting strategy on the demo, with the same budget.

For each strategy and seed: train the demo Fast YOLO for ``--iters``
iterations and evaluate VOC mAP (11-point) on the demo test split. Then, in
one process and interleaved (so machine noise cancels in the ratios):
training step time of every strategy relative to ``FixedWeighting``, and
inference FPS with the same detector weights loaded into every model.
Writes ``results.json``, ``map.png``, ``weights.png`` under the work dir and
``docs/results.md``.

    python tools/benchmark.py --seeds 0 1 2 --iters 600
"""
import argparse
import copy
import datetime
import glob
import json
import os
import os.path as osp
import platform
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmdet_slf  # noqa: E402,F401
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.visualization import Visualizer  # noqa: E402

from mmdet_slf.demo_data import make_digits_voc  # noqa: E402
from mmdet_slf.utils.timing import (inference_fps,  # noqa: E402
                                    train_step_seconds)
from mmdet_slf.visualization import (plot_map_bars,  # noqa: E402
                                     plot_weight_trajectories)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BASE_CONFIG = osp.join(REPO_ROOT, 'configs/demo/fast-yolo_digits.py')
TERMS = ['coord', 'pred', 'obj', 'noobj']
LAMBDAS = [5.0, 1.0, 1.0, 0.5]

# Weighting configs compared; everything else is the demo config.
STRATEGIES = {
    'Fixed':
    dict(type='FixedWeighting', terms=TERMS, weights=LAMBDAS),
    'SLF (faithful)':
    dict(type='SLFWeighting', terms=TERMS, prior=None, prior_init=False,
         scale=1.0, kl_weight=0.0, entropy_weight=0.0,
         detach_features=False),
    'SLF (default)':
    dict(type='SLFWeighting', terms=TERMS, prior=LAMBDAS, num_samples=4,
         kl_weight=5.0),
    'Uncertainty':
    dict(type='UncertaintyWeighting', terms=TERMS, init_weights=LAMBDAS),
    'DWA':
    dict(type='DWAWeighting', terms=TERMS, temperature=2.0, scale=7.5),
    'Random':
    dict(type='RandomWeighting', terms=TERMS, scale=7.5),
}


def parse_args():
    parser = argparse.ArgumentParser(description='Benchmark the weightings')
    parser.add_argument('--config', default=BASE_CONFIG)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument(
        '--iters', type=int, default=600,
        help='training iterations per run (the same for every strategy)')
    parser.add_argument(
        '--strategies', nargs='+', default=list(STRATEGIES),
        choices=list(STRATEGIES))
    parser.add_argument('--work-dir', default='work_dirs/benchmark')
    parser.add_argument('--out', default=osp.join(REPO_ROOT,
                                                  'docs/results.md'))
    parser.add_argument(
        '--report-only', action='store_true',
        help='rewrite the report from WORK_DIR/results.json')
    parser.add_argument(
        '--timing-rounds', type=int, default=6,
        help='rounds of the interleaved step-time and FPS measurement')
    return parser.parse_args()


def strategy_cfg(base: Config, name: str, seed: int, iters: int,
                 work_dir: str) -> Config:
    cfg = copy.deepcopy(base)
    cfg.model.bbox_head.weighting = copy.deepcopy(STRATEGIES[name])
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = work_dir
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    # Warm-up takes the config's share of the demo schedule, at most a fifth
    # of the budget; the cosine decay ends with the budget.
    warmup = min(200, max(1, iters // 5))
    for scheduler in cfg.param_scheduler:
        if scheduler.get('type') == 'LinearLR':
            scheduler['end'] = warmup
        if scheduler.get('type') == 'CosineAnnealingLR':
            scheduler['begin'] = warmup
            scheduler['end'] = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = max(1, iters // 10)
    if name == 'Fixed':
        cfg.optim_wrapper.pop('paramwise_cfg', None)
    return cfg


def slug(name: str) -> str:
    return name.lower().replace(' ', '_').replace('(', '').replace(')', '')


def train_all(args, base: Config) -> dict:
    results = {}
    for seed in args.seeds:
        for name in args.strategies:
            work_dir = osp.join(args.work_dir, f'{slug(name)}_seed{seed}')
            done = osp.join(work_dir, 'result.json')
            if osp.exists(done):  # resumable: a finished run is kept
                with open(done) as f:
                    results.setdefault(name, []).append(json.load(f))
                continue
            cfg = strategy_cfg(base, name, seed, args.iters, work_dir)
            start = time.time()
            runner = Runner.from_cfg(cfg)
            runner.train()
            metrics = runner.test()
            record = dict(
                seed=seed, work_dir=work_dir,
                mAP=float(metrics['pascal_voc/mAP']),
                minutes=(time.time() - start) / 60)
            with open(done, 'w') as f:
                json.dump(record, f)
            results.setdefault(name, []).append(record)
            print(f'[benchmark] {name} seed {seed}: mAP {record["mAP"]:.4f}'
                  f' ({record["minutes"]:.1f} min)', flush=True)
            # The logger and the visualizer are process-wide instances that
            # a new Runner would reuse (writing into the first run's
            # scalars.json): drop them between runs.
            MMLogger._instance_dict.clear()
            Visualizer._instance_dict.clear()
    return results


def timing(args, base: Config, results: dict) -> dict:
    """Interleaved step-time and FPS ratios against Fixed."""
    from mmdet.registry import MODELS
    cfg = strategy_cfg(base, 'Fixed', args.seeds[0], args.iters,
                       osp.join(args.work_dir, 'timing'))
    runner = Runner.from_cfg(cfg)
    train_loader = runner.build_dataloader(
        dict(cfg.train_dataloader, num_workers=0, persistent_workers=False))
    batches = []
    for batch in train_loader:
        batches.append(batch)
        if len(batches) == 4:
            break
    test_loader = runner.build_dataloader(
        dict(cfg.test_dataloader, batch_size=1, num_workers=0,
             persistent_workers=False))
    test_batches = []
    for batch in test_loader:
        test_batches.append(batch)
        if len(test_batches) == 20:
            break
    fixed_ckpt = osp.join(results['Fixed'][0]['work_dir'],
                          f'iter_{args.iters}.pth')
    trained = torch.load(fixed_ckpt, map_location='cpu',
                         weights_only=True)['state_dict']

    runs, models = {}, {}
    from mmengine.optim import build_optim_wrapper
    for name in args.strategies:
        scfg = strategy_cfg(base, name, 0, args.iters, cfg.work_dir)
        model = MODELS.build(scfg.model)
        model.init_weights()
        optim_wrapper = build_optim_wrapper(model, scfg.optim_wrapper)
        runs[name] = (model, optim_wrapper)
        inference_model = MODELS.build(scfg.model)
        inference_model.load_state_dict(
            {k: v for k, v in trained.items() if '.weighting.' not in k},
            strict=False)
        models[name] = inference_model
    step = train_step_seconds(runs, batches, rounds=args.timing_rounds,
                              calls_per_round=3, warmup=2)
    fps = inference_fps(models, test_batches, rounds=args.timing_rounds,
                        calls_per_round=20, warmup=5)
    return dict(step_seconds=step, fps=fps)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return (f'{cpu}, {os.cpu_count()} cores, torch {torch.__version__} '
            f'({torch.get_num_threads()} threads), Python '
            f'{platform.python_version()}, {platform.system()}')


def write_report(args, results: dict, times: dict, out: str) -> None:
    report_dir = osp.join(osp.dirname(out), 'results')
    os.makedirs(report_dir, exist_ok=True)
    map_png = osp.join(report_dir, 'map.png')
    weights_png = osp.join(report_dir, 'weights.png')
    plot_map_bars({k: [r['mAP'] for r in v] for k, v in results.items()},
                  map_png)
    # One run per strategy: the first seed whose run logged scalars.
    trajectories = {}
    for name, runs in results.items():
        for run in runs:
            files = sorted(glob.glob(osp.join(run['work_dir'], '*', 'vis_data',
                                              'scalars.json')))
            if files:
                trajectories[name] = files[-1]
                break
    plot_weight_trajectories(trajectories, weights_png)
    fixed_step = times['step_seconds']['Fixed']
    fixed_fps = times['fps']['Fixed']
    rows = []
    for name in args.strategies:
        maps = np.array([r['mAP'] for r in results[name]])
        rows.append(
            f'| {name} | {maps.mean():.4f} | {maps.std(ddof=1) if len(maps) > 1 else 0:.4f} | '
            f'{", ".join(f"{m:.3f}" for m in maps)} | '
            f'{times["step_seconds"][name] / fixed_step:.3f} | '
            f'{times["fps"][name] / fixed_fps:.3f} |')
    command = 'python tools/benchmark.py ' + ' '.join(sys.argv[1:])
    text = BENCHMARK_TEMPLATE.format(
        date=datetime.date.today().isoformat(),
        command=command.strip(),
        machine=machine(),
        iters=args.iters,
        seeds=', '.join(map(str, args.seeds)),
        rows='\n'.join(rows),
        fixed_step=fixed_step,
        fixed_fps=fixed_fps,
        map_png=osp.relpath(map_png, osp.dirname(out)),
        weights_png=osp.relpath(weights_png, osp.dirname(out)))
    with open(out, 'w') as f:
        f.write(text)
    print(text)


BENCHMARK_TEMPLATE = """# Benchmark: loss-weighting strategies on the digits demo

Generated by `tools/benchmark.py` on {date}.

- Command: `{command}`
- Machine: {machine}
- Budget: {iters} training iterations per run (demo Fast YOLO, batch and
  schedule of `configs/demo/fast-yolo_digits.py`, cosine schedule shortened
  to the budget), seeds {seeds}; mAP is VOC mAP@0.5, 11-point, on the 300
  demo test images.
- Step time and FPS are measured in one process, interleaved round by round
  (ratios to Fixed; absolute Fixed values: {fixed_step:.3f} s per training
  step, {fixed_fps:.1f} FPS at batch 1). FPS uses the same detector weights
  in every model, so it measures only what the strategy adds at test time.

| Strategy | mAP mean | mAP std | per seed | step time / Fixed | FPS / Fixed |
|---|---|---|---|---|---|
{rows}

![mAP per strategy]({map_png})

![Weight trajectories]({weights_png})
"""


def main():
    args = parse_args()
    if args.report_only:
        with open(osp.join(args.work_dir, 'results.json')) as f:
            saved = json.load(f)
        write_report(args, saved['results'], saved['timing'], args.out)
        return
    base = Config.fromfile(args.config)
    dataset = base.train_dataloader.dataset
    make_digits_voc(root=dataset.data_root,
                    subset=dataset.data_prefix.sub_data_root.strip('/'),
                    progress=True, **base.get('demo_data', {}))
    if 'Fixed' not in args.strategies:
        args.strategies.insert(0, 'Fixed')
    results = train_all(args, base)
    times = timing(args, base, results)
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(results=results, timing=times), f, indent=2)
    write_report(args, results, times, args.out)


if __name__ == '__main__':
    main()
