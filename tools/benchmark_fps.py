# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Inference speed (FPS) of a detector at batch size 1, or with ``--train``
the time of its training step.

    python tools/benchmark_fps.py CONFIG [CHECKPOINT] --device cuda \\
        --num-iters 500 --warmup 50 [--fuse-conv-bn] [--fp16] [--dataset] \\
        [--compare OTHER_CONFIG [--compare-checkpoint CKPT | --same-weights]]
    python tools/benchmark_fps.py CONFIG --train [--batch-size N] [--fp16] \\
        --compare OTHER_CONFIG --same-weights --device cuda

Each iteration times ``model.test_step`` on one image: preprocessing on the
device, the forward pass and the post-processing (decoding, NMS), as
mmdet's ``tools/analysis_tools/benchmark.py`` does; reading and decoding the
image file is not timed. Inputs are random images of the test pipeline's
resize scale, or real test images with ``--dataset``. With ``--compare`` the
two models run alternately in one loop, so drifts of clock speed and load
hit both alike, and the FPS ratio is printed with its noise estimate.
Without a checkpoint the weights are random. They change the speed where
a score threshold decides how many boxes reach NMS (random scores pass a
low threshold such as YOLO's ``score_thr=0.001`` all at once), so two
models are compared on the same weights: ``--same-weights`` gives the
second model the first one's wherever names and shapes match, so both keep
the same boxes for NMS, or each gets its checkpoint (a checkpoint for one
model only is refused). ``--fp16``
runs the network under ``torch.autocast`` with float16 and decodes and
suppresses boxes in float32, as mmdet 2.x's ``force_fp32`` did (mmcv's NMS
kernels take float32 only).

With ``--train`` each iteration times ``model.train_step``: preprocessing,
forward, loss, backward and the optimizer update of the config's
``optim_wrapper`` (``AmpOptimWrapper`` with ``--fp16``) at its base
learning rate (no parameter scheduler runs), on a batch of random images
with 1 to 4 random boxes each. The weights come from the config's
initialisers, minus the pretrained ones. The loss weighting of an SLF
model, decision network included, is part of that step, so the ratio is
what SLF adds to training. A config may be a file or ``mmdet::PATH`` (a
config shipped with mmdet), so an SLF config can be timed against the mmdet
detector it inherits from.

``--profile N`` then runs N more iterations of each model under
``torch.profiler`` and prints, per iteration, each model's operator calls,
device kernels and self times, and the operators in which the second model
differs most from the first: where the extra time of a step goes (more
kernels, slower ones, or host work such as an optimizer's loop over
parameter groups). With ``--train`` it also counts, in one loss forward
of each model, the host syncs (reads of device values, blocking copies)
and the operators issued after the last one, which on a GPU run while the
device idles. The JSON gets them under ``profile``.

``--count-ops`` counts the operators one more step of each model
dispatches, and those in which the two differ (JSON: ``operators``). The
count is exact and repeatable (a training step's optimizer update
dispatches fewer operators on CUDA, where torch's optimizers use their
``foreach`` kernels by default); where a step is host-bound (small
batches on a GPU), what a weighting adds to it is mostly this count times
the host's cost per operator.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmdet_slf  # noqa: E402,F401  (registers modules, safe checkpoints)
import torch  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402

from mmdet_slf.benchmarking.speed import (  # noqa: E402
    build_model, copy_shared_weights, float32_post_processing,
    inference_step, input_streams, load_cfg, training_step)
from mmdet_slf.slf import BaseWeighting  # noqa: E402
from mmdet_slf.utils.arguments import (CfgOptionsAction,  # noqa: E402
                                       check_device, check_out_file)
from mmdet_slf.benchmarking.step_operators import (  # noqa: E402
    loss_host_syncs, operator_counts, profile_models)
from mmdet_slf.utils.paths import (checkpoint_missing,  # noqa: E402
                                   config_missing)
from mmdet_slf.utils.timing import (Timing,  # noqa: E402
                                    device_synchronizer,
                                    interleaved_timing,
                                    paired_time_ratio, rate_ratio)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Benchmark inference FPS')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file')
    parser.add_argument('--compare', help='second config, timed alternately')
    parser.add_argument('--compare-checkpoint', help='its checkpoint')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu',
        help='cpu, cuda or cuda:N')
    parser.add_argument('--num-iters', type=int, default=200,
                        help='timed iterations per model (>= 2 with '
                        '--compare)')
    parser.add_argument('--warmup', type=int, default=20,
                        help='untimed iterations per model first (>= 1)')
    parser.add_argument('--fuse-conv-bn', action='store_true',
                        help='fold BN layers into the preceding convs')
    parser.add_argument(
        '--fp16', action='store_true',
        help='network under torch.autocast (float16); decoding and NMS '
        'in float32')
    parser.add_argument(
        '--same-weights', action='store_true',
        help='copy the first model\'s weights into the second wherever '
        'names and shapes match (with --compare)')
    parser.add_argument('--dataset', action='store_true',
                        help='real test images instead of random ones')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='random image size; default: the test resize '
                        '(not with --dataset)')
    parser.add_argument('--threads', type=int,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument(
        '--train', action='store_true',
        help='time model.train_step on random images with random boxes '
        'instead of inference; --fp16 trains with AmpOptimWrapper')
    parser.add_argument(
        '--batch-size', type=int,
        help='images per training step with --train (default: the '
        'config\'s train_dataloader.batch_size)')
    parser.add_argument(
        '--profile', type=int, default=0, metavar='N',
        help='after the timing, profile N more iterations of each model '
        '(torch.profiler) and report the operators in which the two models '
        'differ most')
    parser.add_argument(
        '--log-reads', action='store_true',
        help='with --train, read every value train_step returns with '
        '.item() after each step, as mmengine\'s RuntimeInfoHook does in a '
        'training run (one host sync per key on a GPU), and the '
        'weightings\' diagnostics in one copy, as SLFLoggerHook does where '
        'the config has it')
    parser.add_argument(
        '--count-ops', action='store_true',
        help='after the timing, count the operators one timed step of each '
        'model dispatches (a training step with --train, else an inference '
        'call; exact, the same on any device) and the ones in which the two '
        'differ')
    parser.add_argument('--out', help='write the results to this JSON file')
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptionsAction,
        help='overrides applied to every config, "key=value" pairs')
    args = parser.parse_args(argv)
    if args.num_iters < 1 or args.warmup < 1 or args.profile < 0:
        parser.error('--num-iters and --warmup must be >= 1 (the first '
                     'calls build caches and pick kernels, so they are not '
                     'timed) and --profile >= 0, got '
                     f'{args.num_iters}, {args.warmup} and {args.profile}')
    if args.compare and args.num_iters < 2:
        parser.error('--compare needs --num-iters >= 2: the ratio\'s '
                     f'interval is over the rounds, got {args.num_iters}')
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    check_device(parser, args.device)
    if args.dataset and args.shape is not None:
        parser.error('--dataset reads real test images at the test '
                     'pipeline\'s size; --shape sets the size of random '
                     'ones: pass one')
    if args.compare and (args.checkpoint is None) != (
            args.compare_checkpoint is None) and not args.same_weights:
        parser.error(
            'a checkpoint for one model only would time loaded weights '
            'against random ones (the scores decide how many boxes reach '
            'NMS): pass CHECKPOINT with --compare-checkpoint for the second '
            'model, or CHECKPOINT with --same-weights to copy it into the '
            f'second, got CHECKPOINT {args.checkpoint} and '
            f'--compare-checkpoint {args.compare_checkpoint}')
    if args.train and (args.fuse_conv_bn or args.dataset):
        parser.error('--train times a training step on random boxes; it '
                     'takes neither --fuse-conv-bn nor --dataset')
    if args.train and args.fp16 and args.device.startswith('cpu'):
        parser.error('--train --fp16 trains with AmpOptimWrapper, which '
                     'needs a GPU (--device cuda)')
    if (args.compare_checkpoint or args.same_weights) and not args.compare:
        parser.error('--compare-checkpoint and --same-weights need --compare')
    if args.compare_checkpoint and args.same_weights:
        parser.error('--same-weights would overwrite the weights of '
                     '--compare-checkpoint with the first model\'s; pass one')
    if args.log_reads and not args.train:
        parser.error('--log-reads needs --train')
    if args.shape is not None and min(args.shape) < (16 if args.train
                                                     else 1):
        parser.error('--shape H W must be >= 1 each, and >= 16 with --train '
                     f'(its random boxes are 16 pixels a side or more), got '
                     f'{" ".join(map(str, args.shape))}')
    if args.batch_size is not None and (not args.train
                                        or args.batch_size < 1):
        parser.error('--batch-size needs --train and must be >= 1, got '
                     f'{args.batch_size}')
    if args.out is not None:
        # found before the timing, not when its results are written
        check_out_file(parser, args.out, '--out',
                       'name the JSON file to write')
    for key, path in (('config', args.config), ('--compare', args.compare)):
        if path is not None and config_missing(path):
            parser.error(f'{key}: config file {path} does not exist')
    for key, path in (('checkpoint', args.checkpoint),
                      ('--compare-checkpoint', args.compare_checkpoint)):
        if path is not None and checkpoint_missing(path):
            parser.error(f'{key}: checkpoint file {path} does not exist')
    return args


def summarise(name, timing, model):
    weighting = sum(
        p.numel() for m in model.modules() if isinstance(m, BaseWeighting)
        for p in m.parameters())
    return dict(
        config=name,
        **timing.summary(),
        params=sum(p.numel() for p in model.parameters()),
        weighting_params=weighting)


def two_model_ratios(timings: Dict[str, Timing], train: bool) -> dict:
    """The second model against the first, printed and returned: the ratio
    of rates with two standard errors, and the ratio paired by round with
    its 95% interval. ``train``: as step-time ratios (second / first, above
    1 when the second is slower); otherwise as FPS ratios (below 1 then)."""
    out = {}
    # the ratio with two standard errors from the per-iteration
    # spread: how far apart the speeds may be by noise alone
    ratio, ratio_2se = rate_ratio(timings['0'], timings['1'])
    if train:
        # the step time ratio is the inverse, with the same relative
        # error
        step_ratio, step_2se = 1 / ratio, ratio_2se / ratio**2
        print(f'step time ratio (second / first): {step_ratio:.3f} '
              f'+- {step_2se:.3f} (2 standard errors)')
        out.update(step_ratio=step_ratio, step_ratio_2se=step_2se)
    else:
        print(f'FPS ratio (second / first): {ratio:.3f} '
              f'+- {ratio_2se:.3f} (2 standard errors)')
    out.update(ratio=ratio, ratio_2se=ratio_2se)
    # Both models get the same batch in a round, so the per-round
    # ratios pair up: a heavy batch or a clock dip slows both.
    paired = paired_time_ratio(timings['0'], timings['1'])
    if train:
        print(f'step time ratio, paired by round: {paired["ratio"]:.3f} '
              f'[{paired["ci_low"]:.3f}, {paired["ci_high"]:.3f}] (95% '
              f't-interval over {paired["n"]} rounds)')
        out.update(step_ratio_paired=paired['ratio'],
                   step_ratio_paired_ci=[paired['ci_low'],
                                         paired['ci_high']])
    else:
        print(f'FPS ratio, paired by round: {1 / paired["ratio"]:.3f} '
              f'[{1 / paired["ci_high"]:.3f}, '
              f'{1 / paired["ci_low"]:.3f}] (95% t-interval over '
              f'{paired["n"]} rounds)')
        out.update(ratio_paired=1 / paired['ratio'],
                   ratio_paired_ci=[1 / paired['ci_high'],
                                    1 / paired['ci_low']])
    return out


def main(argv=None):
    args = parse_args(argv)
    register_all_modules(init_default_scope=True)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    runs = [(args.config, args.checkpoint)]
    if args.compare:
        runs.append((args.compare, args.compare_checkpoint))
    cfgs = [load_cfg(path, args.cfg_options) for path, _ in runs]
    models = [
        build_model(cfg, checkpoint, args.device, args.fuse_conv_bn,
                    train=args.train)
        for cfg, (_, checkpoint) in zip(cfgs, runs)
    ]
    if args.fp16 and not args.train:
        for model in models:
            float32_post_processing(model, args.device.split(':')[0])
    streams, batch_size = input_streams(
        cfgs, train=args.train, shape=args.shape,
        batch_size=args.batch_size, dataset=args.dataset)
    if args.same_weights and len(models) == 2:
        copied = copy_shared_weights(models[0], models[1])
        print(f'same weights: {copied} of '
              f'{len(models[1].state_dict())} tensors of the second model '
              'copied from the first')
    # One timed iteration per model and round, the order rotating every
    # round so neither model always runs second; the warm-up iterations
    # run the same way untimed, and making or loading an image is not timed.
    keys = [str(index) for index in range(len(runs))]
    steps = {
        key: training_step(model, cfg, args.fp16, args.log_reads)
        if args.train else inference_step(model, args.device, args.fp16)
        for key, model, cfg in zip(keys, models, cfgs)
    }
    timings = interleaved_timing(
        steps,
        rounds=args.num_iters,
        calls_per_round=1,
        warmup=args.warmup,
        prepare={key: stream.__next__
                 for key, stream in zip(keys, streams)},
        synchronize=device_synchronizer(torch.device(args.device)))

    results = [
        summarise(path, timings[key], model)
        for (path, _), key, model in zip(runs, keys, models)
    ]
    device = torch.cuda.get_device_name(args.device) if \
        args.device.startswith('cuda') else f'cpu ({torch.get_num_threads()}'\
        ' threads)'
    if args.train:
        dtype = 'float16 (AmpOptimWrapper)' if args.fp16 else 'float32'
        print(f'device: {device}, training step, batch {batch_size}, '
              f'{dtype}, {args.num_iters} timed steps after {args.warmup} '
              'warm-up' + (', with the runner\'s reads of the returned '
                           'values' if args.log_reads else ''))
    else:
        dtype = 'float16 (autocast)' if args.fp16 else 'float32'
        print(f'device: {device}, batch 1, {dtype}, {args.num_iters} timed '
              f'iterations after {args.warmup} warm-up, '
              f'fuse_conv_bn={args.fuse_conv_bn}')
    for result in results:
        if args.train:
            result['step_ms'] = result['mean_ms'] * batch_size
            print(f'{result["config"]}: {result["step_ms"]:.2f} ms per '
                  f'step ({result["fps"]:.2f} images/s; '
                  f'{result["params"] / 1e6:.2f} M params, '
                  f'{result["weighting_params"]} in loss weighting)')
            continue
        print(f'{result["config"]}: FPS {result["fps"]:.2f} '
              f'(mean {result["mean_ms"]:.2f} ms, median '
              f'{result["median_ms"]:.2f} ms, std {result["std_ms"]:.2f} '
              f'ms; {result["params"] / 1e6:.2f} M params, '
              f'{result["weighting_params"]} in loss weighting, unused at '
              'inference)')
    summary = dict(device=device, mode='train' if args.train else 'test',
                   dtype=dtype, batch_size=batch_size,
                   num_iters=args.num_iters, warmup=args.warmup,
                   fuse_conv_bn=args.fuse_conv_bn,
                   same_weights=bool(args.same_weights and len(runs) == 2),
                   log_reads=args.log_reads,
                   results=results)
    if len(results) == 2:
        summary.update(two_model_ratios(timings, args.train))
    write_summary(summary, args.out)
    if args.profile:
        # The timing is written first: a profiler that fails (one without
        # device tracing, say) costs the profile, not the timing.
        try:
            summary['profile'] = profile_models(
                steps, {key: stream.__next__
                        for key, stream in zip(keys, streams)},
                args.profile, torch.device(args.device))
            if args.train:
                summary['profile']['loss_host_syncs'] = loss_host_syncs(
                    dict(zip(keys, models)),
                    {key: next(stream)
                     for key, stream in zip(keys, streams)})
        except Exception as error:  # noqa: BLE001 (recorded, not hidden)
            summary['profile_error'] = f'{type(error).__name__}: {error}'
            print(f'profile failed: {summary["profile_error"]}',
                  file=sys.stderr)
        write_summary(summary, args.out)
    if args.count_ops:
        summary['operators'] = operator_counts(
            steps, {key: next(stream) for key, stream in zip(keys, streams)})
        write_summary(summary, args.out)


def write_summary(summary, out):
    if out:
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        with open(out, 'w') as f:
            json.dump(summary, f, indent=2)


if __name__ == '__main__':
    main()
