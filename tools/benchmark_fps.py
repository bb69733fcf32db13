# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Inference speed (FPS) of a detector at batch size 1.

    python tools/benchmark_fps.py CONFIG [CHECKPOINT] --device cuda \\
        --num-iters 500 --warmup 50 [--fuse-conv-bn] [--dataset] \\
        [--compare OTHER_CONFIG [--compare-checkpoint CKPT]]

Each iteration times ``model.test_step`` on one image: preprocessing on the
device, the forward pass and the post-processing (decoding, NMS), as
mmdet's ``tools/analysis_tools/benchmark.py`` does; reading and decoding the
image file is not timed. Inputs are random images of the test pipeline's
resize scale, or real test images with ``--dataset``. With ``--compare`` the
two models run alternately in one loop, so drifts of clock speed and load
hit both alike, and the FPS ratio is printed with its noise estimate.
Without a checkpoint the weights are random, which does not change speed.
"""
import argparse
import json
import math
import os.path as osp
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmdet_slf  # noqa: E402,F401  (registers modules, safe checkpoints)
import torch  # noqa: E402
from mmcv.cnn import fuse_conv_bn  # noqa: E402
from mmdet.registry import MODELS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.model.utils import revert_sync_batchnorm  # noqa: E402
from mmengine.runner import Runner, load_checkpoint  # noqa: E402

from mmdet_slf.slf import BaseWeighting  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description='Benchmark inference FPS')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file')
    parser.add_argument('--compare', help='second config, timed alternately')
    parser.add_argument('--compare-checkpoint', help='its checkpoint')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu',
        help='cpu, cuda or cuda:N')
    parser.add_argument('--num-iters', type=int, default=200,
                        help='timed iterations per model')
    parser.add_argument('--warmup', type=int, default=20,
                        help='untimed iterations per model first')
    parser.add_argument('--fuse-conv-bn', action='store_true',
                        help='fold BN layers into the preceding convs')
    parser.add_argument('--dataset', action='store_true',
                        help='real test images instead of random ones')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='random image size; default: the test resize')
    parser.add_argument('--threads', type=int,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--out', help='write the results to this JSON file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='overrides applied to every config, "key=value" pairs')
    args = parser.parse_args()
    if args.num_iters < 1 or args.warmup < 0:
        parser.error('--num-iters must be >= 1 and --warmup >= 0')
    return args


def load_cfg(path, options):
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def build_model(cfg, checkpoint, device, fuse):
    """Eval-mode model; weights from ``checkpoint`` or random (no
    ``init_weights``, so nothing is downloaded)."""
    model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    model = revert_sync_batchnorm(model)
    if fuse:
        model = fuse_conv_bn(model)
    return model.to(device).eval()


def test_resize_hw(cfg):
    """``(h, w)`` of the last Resize in the test pipeline."""
    pipeline = cfg.test_dataloader.dataset.get('pipeline', [])
    for step in reversed(pipeline):
        if step.get('type') in ('Resize', 'FixShapeResize') and \
                step.get('scale') is not None:
            w, h = step['scale']
            return (h, w)
        if step.get('type') == 'FixShapeResize':
            return (step['height'], step['width'])
    raise ValueError('no Resize with a scale in test_dataloader; '
                     'pass --shape H W')


def random_batches(shape, seed=0):
    """Endless random uint8 images with the meta a test pipeline gives."""
    generator = torch.Generator().manual_seed(seed)
    h, w = shape
    while True:
        image = torch.randint(0, 256, (3, h, w), generator=generator,
                              dtype=torch.uint8)
        sample = DetDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        yield dict(inputs=[image], data_samples=[sample])


def dataset_batches(cfg):
    loader_cfg = cfg.test_dataloader.copy()
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    while True:
        yield from Runner.build_dataloader(loader_cfg, seed=0)


def timed_step(model, batch, device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        model.test_step(batch)
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def summarise(name, times, model):
    mean = statistics.fmean(times)
    weighting = sum(
        p.numel() for m in model.modules() if isinstance(m, BaseWeighting)
        for p in m.parameters())
    return dict(
        config=name,
        fps=1.0 / mean,
        mean_ms=1e3 * mean,
        median_ms=1e3 * statistics.median(times),
        std_ms=1e3 * (statistics.stdev(times) if len(times) > 1 else 0.0),
        params=sum(p.numel() for p in model.parameters()),
        weighting_params=weighting)


def main():
    args = parse_args()
    register_all_modules(init_default_scope=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = [(args.config, args.checkpoint)]
    if args.compare:
        runs.append((args.compare, args.compare_checkpoint))
    models, streams = [], []
    for index, (path, checkpoint) in enumerate(runs):
        cfg = load_cfg(path, args.cfg_options)
        models.append(
            build_model(cfg, checkpoint, args.device, args.fuse_conv_bn))
        # every model sees the same images in the same order
        streams.append(
            dataset_batches(cfg) if args.dataset else random_batches(
                tuple(args.shape) if args.shape else test_resize_hw(cfg)))
    times = [[] for _ in runs]
    for step in range(args.warmup + args.num_iters):
        # alternate the order so neither model always runs second
        order = range(len(runs)) if step % 2 == 0 else reversed(
            range(len(runs)))
        for index in order:
            elapsed = timed_step(models[index], next(streams[index]),
                                 args.device)
            if step >= args.warmup:
                times[index].append(elapsed)

    results = [
        summarise(path, t, m) for (path, _), t, m in zip(runs, times, models)
    ]
    device = torch.cuda.get_device_name(args.device) if \
        args.device.startswith('cuda') else f'cpu ({torch.get_num_threads()}'\
        ' threads)'
    print(f'device: {device}, batch 1, {args.num_iters} timed iterations '
          f'after {args.warmup} warm-up, fuse_conv_bn={args.fuse_conv_bn}')
    for result in results:
        print(f'{result["config"]}: FPS {result["fps"]:.2f} '
              f'(mean {result["mean_ms"]:.2f} ms, median '
              f'{result["median_ms"]:.2f} ms, std {result["std_ms"]:.2f} '
              f'ms; {result["params"] / 1e6:.2f} M params, '
              f'{result["weighting_params"]} in loss weighting, unused at '
              'inference)')
    summary = dict(device=device, results=results)
    if len(results) == 2:
        first, second = results
        ratio = second['fps'] / first['fps']
        # standard error of a ratio of two means, from the per-iteration
        # spread: how far apart the FPS may be by noise alone
        rel = math.sqrt(
            sum((r['std_ms'] / r['mean_ms'])**2
                for r in results) / args.num_iters)
        print(f'FPS ratio (second / first): {ratio:.3f} '
              f'+- {2 * ratio * rel:.3f} (2 standard errors)')
        summary.update(ratio=ratio, ratio_2se=2 * ratio * rel)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(summary, f, indent=2)


if __name__ == '__main__':
    main()
