# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""What each strategy of a benchmark did to each loss term.

Reads the runs saved by ``tools/benchmark.py`` and prints, per strategy, the
mean final mAP, the mAP lost after the best evaluation, each raw term at the
end of training (last ``--window`` iterations) and each term's share of the
weight relative to the fixed lambdas; then Spearman rank correlations of
those quantities with mAP over all runs. See
:mod:`mmdet_slf.benchmarking.terms` for how each number is read::

    python tools/analyze_terms.py --work-dir work_dirs/benchmark-1200 \
        --seeds 0 1 2 3 4 --exclude famo slf-joint slf-progress-k1
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_slf.benchmarking.runs import (load_results,  # noqa: E402
                                         select_results)
from mmdet_slf.benchmarking.terms import format_analysis, run_rows  # noqa
from mmdet_slf.benchmarking.tuning import YOLO_LAMBDAS  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/benchmark')
    parser.add_argument('--seeds', type=int, nargs='+',
                        help='seeds to read (default: every saved one)')
    parser.add_argument('--strategies', nargs='+',
                        help='strategies to read (default: every saved one)')
    parser.add_argument('--exclude', nargs='+', default=[],
                        help='strategies left out of the correlations, '
                        'e.g. the ones that never learned')
    parser.add_argument('--window', type=int, default=200,
                        help='iterations at the end averaged for the raw '
                        'terms')
    parser.add_argument('--prior', type=float, nargs='+',
                        default=list(YOLO_LAMBDAS),
                        help='the lambdas the shares are relative to')
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error(f'--window must be >= 1 iteration, got {args.window}')
    if not all(value > 0 for value in args.prior):
        parser.error(f'--prior must be positive lambdas, got {args.prior}')
    return args


def main(argv=None) -> str:
    args = parse_args(argv)
    saved = load_results(args.work_dir)
    unknown = sorted((set(args.strategies or []) | set(args.exclude))
                     - set(saved))
    if saved and unknown:
        raise SystemExit(f'no saved runs of {unknown} under '
                         f'{args.work_dir}/runs (saved: {sorted(saved)})')
    results = select_results(saved, args.seeds, args.strategies)
    if not results:
        raise SystemExit(f'no finished runs under {args.work_dir}/runs for '
                         f'seeds {args.seeds} and strategies '
                         f'{args.strategies}')
    terms = next(iter(next(iter(results.values())).values()))['terms']
    if len(args.prior) != len(terms):
        raise SystemExit(f'--prior needs one lambda per term {terms}, got '
                         f'{args.prior}')
    rows = run_rows(results, args.work_dir, args.prior, args.window, terms)
    text = '\n'.join(format_analysis(rows, terms, args.exclude))
    print(text)
    return text


if __name__ == '__main__':
    main()
