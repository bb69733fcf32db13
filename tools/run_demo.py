# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The embedded CPU demo, end to end (``make demo``).

1. writes the handwritten-digits VOC set under ``data/`` (skipped if there);
2. trains Fast YOLO + SLF (``configs/demo/fast-yolo-slf_digits.py``);
3. evaluates VOC mAP (11-point) on the demo test split;
4. measures inference FPS at batch 1, interleaved with the same weights
   loaded into the fixed-lambda model (the decision network is not used at
   test time, so the ratio should be 1.00);
5. writes ``slf_weights.png`` (weight trajectories) and
   ``detections.png`` (test images with their detections).
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmdet_slf  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmdet_slf.datasets import make_digits_voc  # noqa: E402
from mmdet_slf.utils.config_check import add_hooks  # noqa: E402
from mmdet_slf.utils.timing import inference_fps  # noqa: E402
from mmdet_slf.visualization import (draw_detection_grid,  # noqa: E402
                                     plot_slf_weights)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SLF_CONFIG = osp.join(REPO_ROOT, 'configs/demo/fast-yolo-slf_digits.py')
FIXED_CONFIG = osp.join(REPO_ROOT, 'configs/demo/fast-yolo_digits.py')


def parse_args():
    parser = argparse.ArgumentParser(description='Run the CPU demo')
    parser.add_argument('--config', default=SLF_CONFIG)
    parser.add_argument('--baseline-config', default=FIXED_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument(
        '--fps-images', type=int, default=100,
        help='timed images per model for the FPS measurement')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the demo config (both models)')
    return parser.parse_args()


def load_cfg(path: str, work_dir: str, options) -> Config:
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    cfg.work_dir = work_dir
    add_hooks(cfg, (dict(type='DatasetCheckHook'), dict(type='IterSeedHook')))
    return cfg


def make_data(cfg: Config) -> None:
    dataset = cfg.train_dataloader.dataset
    subset = dataset.data_prefix.sub_data_root.strip('/')
    summary = make_digits_voc(
        root=dataset.data_root, subset=subset, progress=True,
        **cfg.get('demo_data', {}))
    state = 'already there' if summary['skipped'] else \
        f'written in {summary["seconds"]:.1f} s'
    print(f'[demo] data: {dataset.data_root}{subset} {state}')


def fps_comparison(runner: Runner, baseline_cfg: Config,
                   num_images: int) -> dict:
    """FPS of the trained SLF model and of the fixed-lambda model carrying
    the same detector weights, measured interleaved."""
    from mmdet.registry import MODELS
    slf_model = runner.model
    baseline = MODELS.build(baseline_cfg.model)
    state = {
        key: value
        for key, value in slf_model.state_dict().items()
        if '.weighting.' not in key
    }
    missing, unexpected = baseline.load_state_dict(state, strict=False)
    missing = [key for key in missing if '.weighting.' not in key]
    assert not missing and not unexpected, (missing, unexpected)
    baseline.to(next(slf_model.parameters()).device)
    batches = []
    loader = runner.build_dataloader(
        dict(runner.cfg.test_dataloader, batch_size=1, num_workers=0,
             persistent_workers=False))
    for batch in loader:
        batches.append(batch)
        if len(batches) == 20:
            break
    rounds = 5
    fps = inference_fps(
        dict(slf=slf_model, fixed=baseline), batches, rounds=rounds,
        calls_per_round=max(1, num_images // rounds), warmup=5)
    return fps


def main():
    args = parse_args()
    start = time.time()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = load_cfg(args.config, osp.join(args.work_dir, 'slf'),
                   args.cfg_options)
    make_data(cfg)

    runner = Runner.from_cfg(cfg)
    runner.train()
    train_seconds = time.time() - start
    metrics = runner.test()
    ap50 = float(metrics.get('pascal_voc/mAP', float('nan')))

    baseline_cfg = load_cfg(args.baseline_config,
                            osp.join(args.work_dir, 'fixed'),
                            args.cfg_options)
    fps = fps_comparison(runner, baseline_cfg, args.fps_images)

    weights_png = osp.join(args.work_dir, 'slf_weights.png')
    plot_slf_weights(runner.work_dir, weights_png)
    detections_png = osp.join(args.work_dir, 'detections.png')
    runner.model.eval()
    loader = runner.build_dataloader(
        dict(runner.cfg.test_dataloader, batch_size=8, num_workers=0,
             persistent_workers=False))
    batch = next(iter(loader))
    with torch.no_grad():
        results = runner.model.test_step(batch)
    draw_detection_grid([s.img_path for s in results], results,
                        runner.cfg.train_dataloader.dataset.metainfo.classes,
                        detections_png)

    total = time.time() - start
    print('\n[demo] ====================== summary ======================')
    print(f'[demo] VOC mAP@0.5 (11-point) on the demo test split: '
          f'{ap50:.4f}')
    print(f'[demo] inference FPS (CPU, batch 1): SLF {fps["slf"]:.1f}, '
          f'fixed lambdas {fps["fixed"]:.1f}, ratio '
          f'{fps["slf"] / fps["fixed"]:.3f}')
    print(f'[demo] training + data: {train_seconds / 60:.1f} min, total '
          f'{total / 60:.1f} min')
    print(f'[demo] SLF weight trajectories: {weights_png}')
    print(f'[demo] detections on test images: {detections_png}')
    print(f'[demo] logs and checkpoint: {runner.work_dir}')


if __name__ == '__main__':
    main()
