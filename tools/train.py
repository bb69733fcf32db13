# Copyright (c) OpenMMLab and mmdet-slf contributors.
# mmdetection 3.3's tools/train.py (Apache License 2.0), unchanged in what it
# does: a config runs the same here as under mmdet's own tools/train.py (a
# missing config or --resume file is named before anything is built). The
# plugin, its hooks and its runner (start-up checks, CPU --launcher pytorch)
# come from the config (custom_imports, custom_hooks, runner_type).
"""Train a detector: ``python tools/train.py CONFIG [--work-dir DIR] ...``."""
import argparse
import os
import os.path as osp

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmdet.utils import setup_cache_size_limit_of_dynamo

from mmdet_slf.utils.arguments import CfgOptionsAction, check_work_dir


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # When using PyTorch version >= 2.0.0, the `torch.distributed.launch`
    # will pass the `--local-rank` parameter to `tools/train.py` instead
    # of `--local_rank`.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    # Named here rather than in a traceback from deep inside mmengine.
    if not osp.isfile(args.config):
        parser.error(f'config file {args.config} does not exist')
    if args.resume not in (None, 'auto') and '://' not in args.resume \
            and not osp.isfile(osp.expanduser(args.resume)):
        parser.error(f'checkpoint file {args.resume} (--resume) does not '
                     'exist; --resume without a path resumes from the '
                     'latest checkpoint of the work dir')
    check_work_dir(parser, args.work_dir)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)

    return args


def main():
    args = parse_args()

    # Reduce the number of repeated compilations and improve
    # training speed.
    setup_cache_size_limit_of_dynamo()

    # load config
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        # update configs according to CLI args if args.work_dir is not None
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        # use config filename as default work_dir if cfg.work_dir is None
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    # enable automatic-mixed-precision training
    if args.amp is True:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    # enable automatically scaling LR
    if args.auto_scale_lr:
        auto_scale_lr = cfg.get('auto_scale_lr')
        if isinstance(auto_scale_lr, dict) and \
                'enable' in auto_scale_lr and \
                'base_batch_size' in auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:  # named, not a traceback (mmdet's message)
            raise SystemExit('--auto-scale-lr: can not find "auto_scale_lr" '
                             'or "auto_scale_lr.enable" or '
                             '"auto_scale_lr.base_batch_size" in your '
                             f'configuration file (auto_scale_lr = '
                             f'{auto_scale_lr!r})')

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    # build the runner from config
    if 'runner_type' not in cfg:
        # build the default runner
        runner = Runner.from_cfg(cfg)
    else:
        # build customized runner from the registry
        # if 'runner_type' is set in the cfg
        runner = RUNNERS.build(cfg)

    # start training
    runner.train()


if __name__ == '__main__':
    main()
