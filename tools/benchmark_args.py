# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The command line of ``tools/benchmark.py`` (see its docstring): its
options, their defaults, and the checks that need no saved runs, made
before any training."""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_slf.utils.arguments import (check_out_file,  # noqa: E402
                                       check_work_dir)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(REPO_ROOT, 'configs/demo/benchmark')
REFERENCE = 'fixed'
TUNED = 'fixed-tuned'
DEFAULT_WORK_DIR = 'work_dirs/benchmark'
DEFAULT_SEEDS = [0, 1, 2, 3, 4]
DEFAULT_OUT = osp.join(REPO_ROOT, 'docs/results.md')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark the weighting strategies over paired seeds')
    parser.add_argument('--config-dir', default=CONFIG_DIR,
                        help='folder of strategy configs')
    parser.add_argument('--strategies', nargs='+', default=None,
                        help='strategy keys (config file names); default all')
    parser.add_argument('--seeds', type=int, nargs='+', default=None,
                        help=f'paired seeds to train (default '
                        f'{" ".join(map(str, DEFAULT_SEEDS))}); the page '
                        'covers these seeds, or every saved one when not '
                        'given')
    parser.add_argument('--reference', default=REFERENCE,
                        help='strategy the others are compared with')
    parser.add_argument('--tuned', default=TUNED,
                        help='the fixed lambdas found by '
                        'tools/tune_fixed_lambdas.py (verdict, target 2)')
    parser.add_argument('--max-iters', type=int, default=None,
                        help='override every strategy budget (debugging)')
    parser.add_argument('--work-dir', default=DEFAULT_WORK_DIR)
    parser.add_argument('--num-val', type=int, default=None,
                        help='train on trainval less this many held-out '
                        'images and score on them, not on the test images '
                        '(needs its own --work-dir)')
    parser.add_argument('--split-seed', type=int, default=0,
                        help='seed of the --num-val draw')
    parser.add_argument('--out', default=DEFAULT_OUT)
    parser.add_argument('--report-only', action='store_true',
                        help='only rewrite the report from saved runs (of '
                        'the --strategies given and the reference; default '
                        'all)')
    parser.add_argument('--archive', nargs='+', default=None,
                        help="with --report-only: read the runs from this "
                        "file (a page's runs.json) instead of --work-dir; "
                        'several files, or work dirs, give one page of their '
                        'runs')
    parser.add_argument('--timing', action='store_true',
                        help='measure step-time and FPS ratios (no training)')
    parser.add_argument('--timing-rounds', type=int, default=6)
    parser.add_argument('--no-report', action='store_true')
    args = parser.parse_args(argv)
    if args.max_iters is not None and args.max_iters < 1:
        parser.error(f'--max-iters must be >= 1, got {args.max_iters}')
    if args.num_val is not None and args.num_val < 1:
        parser.error(f'--num-val must be >= 1, got {args.num_val}')
    if not 0 <= args.split_seed < 2**32:
        parser.error(f'--split-seed must be in [0, 2**32) (numpy draws the '
                     f'split from it), got {args.split_seed}')
    negative = [seed for seed in args.seeds or () if seed < 0]
    if negative:
        parser.error(f'--seeds must be >= 0, got {negative}')
    if args.timing_rounds < 2:
        parser.error('--timing-rounds must be >= 2 (an interval needs two), '
                     f'got {args.timing_rounds}')
    for option, values in (('--seeds', args.seeds),
                           ('--strategies', args.strategies)):
        repeated = sorted({v for v in values or () if values.count(v) > 1})
        if repeated:
            parser.error(f'{option} lists {repeated} more than once; each '
                         'would be trained again')
    archives = [osp.abspath(path) for path in args.archive or ()]
    if len(set(archives)) < len(archives):
        parser.error(f'--archive names a file more than once: {args.archive}')
    if args.report_only and args.no_report:
        parser.error('--report-only with --no-report would do nothing')
    if args.archive is not None and not args.report_only:
        parser.error('--archive only feeds --report-only (runs are trained '
                     'into --work-dir)')
    if args.archive is not None and args.timing:
        parser.error('--timing measures into --work-dir, and a page written '
                     'from --archive takes its cost table from the archive; '
                     'measure with --timing alone, then write the page')
    check_work_dir(parser, args.work_dir, 'the work dir is the folder the '
                   'runs are trained into and the page is written from')
    if not args.no_report:
        # the page is written last, after every run it reports
        check_out_file(parser, args.out, '--out',
                       'name the Markdown page to write')
        if not osp.splitext(args.out)[1]:
            # docs/results.md keeps its figures and runs in docs/results/
            parser.error(f'--out must end in an extension, such as .md: the '
                         'page\'s figures go to the folder of its name '
                         f'without it, got {args.out!r}')
    return args
