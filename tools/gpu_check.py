# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Helpers of ``tools/gpu_check.sh``: the CUDA build environment for mmcv
(in ``gpu_check_cuda.py``), the patch that mmcv 2.1.0 needs for current
PyTorch, the digits-set variants of the VOC configs, and (in
``gpu_check_report.py``) the parsing of each stage into one JSON report.

Each sub-command is small and independent; only ``cuda-env`` and
``make-config`` import torch or mmengine, so ``record`` and ``summary`` work
before anything is installed::

    python tools/gpu_check.py cuda-env --json env.json   # prints exports
    python tools/gpu_check.py patch-mmcv path/to/mmcv-2.1.0
    python tools/gpu_check.py make-config configs/yolo_slf_voc.py out.py \\
        --data-root data/VOCdevkit --iters 100
    python tools/gpu_check.py record --state DIR --name NAME --rc 0 ...
    python tools/gpu_check.py summary --state DIR --out report.json
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # loaded by path
from gpu_check_cuda import cmd_cuda_env  # noqa: E402
from gpu_check_report import cmd_record, cmd_summary  # noqa: E402

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# Configs of the paper's three YOLO rows, under the names they have had in
# this repository (the first one found is used).
CONFIGS = {
    'yolo': ['configs/yolo_voc.py',
             'configs/yolov1/yolov1_darknet24_1xb64-135e_voc0712.py'],
    'yolo_slf': ['configs/yolo_slf_voc.py',
                 'configs/yolov1/yolov1-slf_darknet24_1xb64-135e_voc0712.py'],
    'fast_yolo': ['configs/fast-yolo_voc.py',
                  'configs/yolov1/yolov1_darknet9_1xb64-135e_voc0712.py'],
    'fast_yolo_slf': [
        'configs/fast-yolo_slf_voc.py',
        'configs/yolov1/yolov1-slf_darknet9_1xb64-135e_voc0712.py'
    ],
    'yolo_vgg16': ['configs/yolo-vgg16_voc.py',
                   'configs/yolov1/yolov1_vgg16_1xb64-135e_voc0712.py'],
    'yolo_vgg16_slf': [
        'configs/yolo-vgg16_slf_voc.py',
        'configs/yolov1/yolov1-slf_vgg16_1xb64-135e_voc0712.py'
    ],
}


def find_config(key, root=REPO_ROOT):
    for path in CONFIGS[key]:
        if osp.isfile(osp.join(root, path)):
            return path
    raise FileNotFoundError(f'none of {CONFIGS[key]} under {root}')


# -------------------------------------------------------------- patch-mmcv
PKG_RESOURCES_IMPORT = ('from pkg_resources import DistributionNotFound, '
                        'get_distribution, parse_version')
PKG_RESOURCES_SHIM = '''try:
    from pkg_resources import (DistributionNotFound, get_distribution,
                               parse_version)
except ImportError:  # setuptools without pkg_resources
    from importlib.metadata import PackageNotFoundError as DistributionNotFound
    from importlib.metadata import distribution as get_distribution

    from packaging.version import parse as parse_version'''


def cmd_patch_mmcv(args):
    """The smallest changes mmcv 2.1.0 needs to build with current PyTorch:

    * ``THC/THCAtomics.cuh`` is gone from PyTorch's headers; it only
      included ``ATen/cuda/Atomic.cuh``, which is included instead.
    * ``setup.py`` imports ``pkg_resources``, absent from newer setuptools;
      fall back to ``importlib.metadata`` and ``packaging``.
    """
    root = args.source
    changed = []
    for path in glob.glob(
            osp.join(root, 'mmcv', 'ops', 'csrc', '**', '*'), recursive=True):
        if not osp.isfile(path) or not path.endswith(
                ('.cu', '.cuh', '.h', '.hpp', '.cpp')):
            continue
        with open(path, encoding='utf-8', errors='surrogateescape') as f:
            text = f.read()
        if '<THC/THCAtomics.cuh>' in text:
            text = text.replace('<THC/THCAtomics.cuh>',
                                '<ATen/cuda/Atomic.cuh>')
            with open(path, 'w', encoding='utf-8',
                      errors='surrogateescape') as f:
                f.write(text)
            changed.append(osp.relpath(path, root))
    setup_py = osp.join(root, 'setup.py')
    with open(setup_py) as f:
        text = f.read()
    if PKG_RESOURCES_IMPORT in text:
        text = text.replace(PKG_RESOURCES_IMPORT, PKG_RESOURCES_SHIM)
        with open(setup_py, 'w') as f:
            f.write(text)
        changed.append('setup.py')
    print(json.dumps(dict(patched=changed)))


# ------------------------------------------------------------- make-config
DIGITS_OVERRIDES = '''# {base} with the data switched to the digits demo
# set in VOC format (10 classes, made by tools/make_demo_data.py) and a
# {iters}-iteration schedule: model, loss weighting, optimizer and pipelines
# are those of the VOC config. Written by tools/gpu_check.py.
_base_ = {base_abs!r}

data_root = {data_root!r}
classes = ('0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
model = dict(bbox_head=dict(num_classes=len(classes)))
train_dataloader = dict(
    batch_size={batch_size},
    num_workers={workers},
    persistent_workers=True,
    dataset=dict(
        _delete_=True,
        type='VOCDataset',
        data_root=data_root,
        ann_file='{subset}/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='{subset}/'),
        metainfo=dict(classes=classes),
        filter_cfg=dict(filter_empty_gt=True, min_size=1),
        pipeline={{{{_base_.train_pipeline}}}}))
val_dataloader = dict(
    batch_size=8,
    num_workers={workers},
    dataset=dict(
        data_root=data_root,
        ann_file='{subset}/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='{subset}/'),
        metainfo=dict(classes=classes)))
test_dataloader = val_dataloader

train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters={iters},
    val_interval={never})  # evaluation is tools/test.py's job here
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end={warmup})
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval={log_interval}),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval={iters},
        max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size={log_interval})
randomness = dict(seed=0)
'''


def cmd_make_config(args):
    base = args.base if osp.isabs(args.base) else osp.join(
        REPO_ROOT, args.base)
    text = DIGITS_OVERRIDES.format(
        base=osp.relpath(base, REPO_ROOT),
        base_abs=osp.abspath(base),
        data_root=osp.abspath(args.data_root).rstrip('/') + '/',
        subset=args.subset,
        batch_size=args.batch_size,
        workers=args.workers,
        iters=args.iters,
        never=args.iters * 1000,
        warmup=max(1, min(20, args.iters // 5)),
        log_interval=args.log_interval)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(text)
    if args.check:
        from mmengine.config import Config
        cfg = Config.fromfile(args.out, import_custom_modules=False)
        assert cfg.train_dataloader.dataset.type == 'VOCDataset'
        assert cfg.model.bbox_head.num_classes == 10
        print(f'{args.out}: ok ({cfg.model.bbox_head.weighting.type})')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('cuda-env', help='print exports for the mmcv build')
    p.add_argument('--json', help='also write what was found here')
    p.add_argument('--lib-dir', default='/tmp/gpu_check/cudart',
                   help='where a libcudart.so link is made if needed')
    p.add_argument('--jobs', type=int, help='MAX_JOBS (default: all cores)')
    p.set_defaults(func=cmd_cuda_env)

    p = sub.add_parser('patch-mmcv', help='patch an unpacked mmcv 2.1.0')
    p.add_argument('source')
    p.set_defaults(func=cmd_patch_mmcv)

    p = sub.add_parser('make-config', help='VOC config on the digits set')
    p.add_argument('base', help='VOC config to inherit')
    p.add_argument('out', help='config file to write')
    p.add_argument('--data-root', required=True,
                   help='VOCdevkit made by tools/make_demo_data.py')
    p.add_argument('--subset', default='DIGITS')
    p.add_argument('--iters', type=int, default=100)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--workers', type=int, default=8)
    p.add_argument('--log-interval', type=int, default=10)
    p.add_argument('--check', action='store_true',
                   help='load the written config with mmengine')
    p.set_defaults(func=cmd_make_config)

    p = sub.add_parser('record', help='write one stage result')
    p.add_argument('--state', required=True)
    p.add_argument('--name', required=True)
    p.add_argument('--rc', type=int, default=0)
    p.add_argument('--seconds', type=float, default=0.0)
    p.add_argument('--command', default='')
    p.add_argument('--log')
    p.add_argument('--skipped', help='reason the stage did not run')
    p.add_argument('--parse', choices=['train', 'test', 'fps', 'json'])
    p.add_argument('--work-dir', help='run directory, or JSON to parse')
    p.add_argument('--expect-slf', action='store_true')
    p.set_defaults(func=cmd_record)

    p = sub.add_parser('summary', help='merge the stage results')
    p.add_argument('--state', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--order', help='comma-separated stage order')
    p.add_argument('--require', help='comma-separated stages that must have '
                   'a record (missing ones make the summary not ok)')
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser('config-path', help='path of a YOLO row config')
    p.add_argument('key', choices=sorted(CONFIGS))
    p.add_argument('--root', default=REPO_ROOT)
    p.set_defaults(func=cmd_config_path)
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    return args


def check_arguments(parser, args):
    """Refuse, by name, what would otherwise fail with a traceback or write
    a result that reads as fine."""
    if args.command == 'patch-mmcv' and not osp.isfile(
            osp.join(args.source, 'setup.py')):
        parser.error(f'patch-mmcv: {args.source} is not an unpacked mmcv '
                     'source (no setup.py in it)')
    if args.command == 'make-config':
        for option in ('iters', 'batch_size', 'log_interval'):
            if getattr(args, option) < 1:
                parser.error(f'--{option.replace("_", "-")} must be >= 1, '
                             f'got {getattr(args, option)}')
        if args.workers < 0:
            parser.error(f'--workers must be >= 0, got {args.workers}')
    if args.command in ('summary', 'config-path'):
        folder = args.state if args.command == 'summary' else args.root
        if not osp.isdir(folder):
            option = '--state' if args.command == 'summary' else '--root'
            parser.error(f'{option}: {folder} is not a folder')


def cmd_config_path(args):
    try:
        print(find_config(args.key, args.root))
    except FileNotFoundError as error:
        raise SystemExit(f'config-path {args.key}: {error}') from None


def main(argv=None):
    args = parse_args(argv)
    return args.func(args) or 0


if __name__ == '__main__':
    sys.exit(main())
