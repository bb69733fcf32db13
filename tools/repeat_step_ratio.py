# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The training-step (or inference) time ratio of two configs over several
processes, with an A/A control.

One run of ``tools/benchmark_fps.py --train`` pairs the two models round by
round, and its interval describes that process only. On a CPU, two configs
that do the same work have differed by up to 3% between processes, more
than such an interval. This tool runs ``--processes`` processes of CONFIG
against COMPARE, alternating with as many of CONFIG against itself (the A/A
control, whose true ratio is 1), and reports for each set the geometric
mean of the per-process paired ratios with a t-interval over processes:

    python tools/repeat_step_ratio.py configs/demo/benchmark/fixed.py \\
        configs/demo/benchmark/slf-scale-free-expected.py --processes 6 \\
        --num-iters 60 --warmup 10 --target 1.02 \\
        --out work_dirs/step-ratio/summary.json

With ``--inference`` each process times ``model.test_step`` at batch 1
instead (``benchmark_fps.py`` without ``--train``), and the ratio is the time
per image, the inverse of the FPS ratio. SLF runs nothing at test time, so
its ratio to Fixed should hold 1 like the control's:

    python tools/repeat_step_ratio.py configs/demo/benchmark/fixed.py \
        configs/demo/benchmark/slf-scale-free-expected.py --inference \
        --processes 6 --num-iters 200 --warmup 20 \
        --out work_dirs/fps-ratio/summary.json

Options it does not know (``--threads``, ``--batch-size``, ``--cfg-options
...``) go to every ``benchmark_fps.py`` run. A second run with the two
configs swapped, and as many processes, cancels a bias of the slot a
config is timed in; ``--combine`` pools the two runs' summaries:

    python tools/repeat_step_ratio.py --combine RUN_A/summary.json \
        RUN_B/summary.json --target 1.02 [--out pooled.json]

It inverts the second run's ratios, so that both are COMPARE over CONFIG
of the first, and pools both runs' controls. The verdict against
``--target`` is ``met`` when the interval's upper end is at most the
target, ``missed`` when its lower end is above it, and ``neither`` else; it
is reported as not decisive when the control's interval leaves out 1.
"""
import argparse
import json
import math
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_slf.utils.arguments import check_out_file  # noqa: E402
from mmdet_slf.utils.paths import config_missing  # noqa: E402
from mmdet_slf.utils.timing import geometric_mean_interval  # noqa: E402

BENCHMARK = osp.join(osp.dirname(osp.abspath(__file__)), 'benchmark_fps.py')
RUN_DEFAULTS = dict(processes=6, num_iters=60, warmup=10, device='cpu')


def verdict(summary: Dict[str, float], target: float,
            control: Dict[str, float]) -> str:
    """``met``, ``missed`` or ``neither`` for ``ratio <= target``; ``not
    decisive`` when the control's interval leaves out 1."""
    if not control['ci_low'] <= 1.0 <= control['ci_high']:
        return 'not decisive'
    if summary['ci_high'] <= target:
        return 'met'
    if summary['ci_low'] > target:
        return 'missed'
    return 'neither'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Time ratio of two configs over several '
        'benchmark_fps.py processes (training step, or inference with '
        '--inference), with an A/A control')
    parser.add_argument('config', nargs='?', help='the reference config')
    parser.add_argument('compare', nargs='?',
                        help='the config timed against it')
    parser.add_argument(
        '--combine', nargs=2, metavar=('RUN_A', 'RUN_B'),
        help='pool the summaries of two runs with the configs swapped '
        'instead of running anything')
    # Run options default to None, so that --combine can tell them given.
    parser.add_argument('--processes', type=int,
                        help=f'processes of each kind (default '
                        f'{RUN_DEFAULTS["processes"]})')
    parser.add_argument('--num-iters', type=int,
                        help=f'default {RUN_DEFAULTS["num_iters"]}')
    parser.add_argument('--warmup', type=int,
                        help=f'default {RUN_DEFAULTS["warmup"]}')
    parser.add_argument('--device',
                        help=f'default {RUN_DEFAULTS["device"]}')
    parser.add_argument(
        '--inference', action='store_true',
        help='time inference at batch 1 instead of the training step; '
        'the ratio is then the time per image (1 / the FPS ratio)')
    parser.add_argument('--target', type=float, default=1.02,
                        help='the ratio to decide on (default 1.02)')
    parser.add_argument(
        '--out', help='summary JSON; each process\'s JSON goes beside it, '
        'named after it (summary_compare_0.json for summary.json)')
    args, passthrough = parser.parse_known_args(argv)
    if not (args.target > 0 and math.isfinite(args.target)):
        parser.error(f'--target must be a finite ratio > 0, got '
                     f'{args.target}')
    if args.combine:
        given = [f'--{key.replace("_", "-")}' for key in RUN_DEFAULTS
                 if getattr(args, key) is not None]
        given += ['--inference'] if args.inference else []
        if args.config or args.compare or passthrough or given:
            parser.error('--combine takes two summaries and no configs or '
                         'run options (it reads them from the summaries), '
                         f'got {args.config, args.compare} and '
                         f'{given + passthrough}')
        for path in args.combine:
            if not osp.isfile(path):
                parser.error(f'--combine: summary {path} does not exist')
        if args.out is not None:
            check_out_file(parser, args.out, '--out',
                           'name the summary JSON to write')
        return args, passthrough
    for key, value in RUN_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if not (args.config and args.compare and args.out):
        parser.error('CONFIG, COMPARE and --out are needed (or --combine)')
    # the summary is written after every process has run
    check_out_file(parser, args.out, '--out', 'name the summary JSON to '
                   "write (each process's JSON goes beside it)")
    if args.processes < 2:
        parser.error('--processes must be >= 2: an interval over processes '
                     f'needs two, got {args.processes}')
    if args.num_iters < 2 or args.warmup < 1:
        parser.error('--num-iters must be >= 2 and --warmup >= 1, as '
                     'benchmark_fps.py --compare takes them, got '
                     f'{args.num_iters} and {args.warmup}')
    # benchmark_fps.py's argparse also takes a prefix of --train (--tr)
    if args.inference and any(len(item) > 3 and '--train'.startswith(item)
                              for item in passthrough):
        parser.error('--inference times test_step; a --train passed '
                     f'through to benchmark_fps.py contradicts it, got '
                     f'{passthrough}')
    for path in (args.config, args.compare):
        if config_missing(path):
            parser.error(f'config file {path} does not exist')
    return args, passthrough


def run_one(args, passthrough: List[str], other: str, out: str) -> float:
    """One ``benchmark_fps.py`` process; its paired time ratio (of the
    training step, or with ``--inference`` of one image)."""
    mode = [] if args.inference else ['--train']
    command = [
        sys.executable, BENCHMARK, args.config, '--compare', other,
        '--same-weights', *mode, '--device', args.device, '--num-iters',
        str(args.num_iters), '--warmup', str(args.warmup), '--out', out,
        *passthrough
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f'{" ".join(command)} failed with code '
                           f'{result.returncode}:\n{result.stderr[-3000:]}')
    with open(out) as f:
        summary = json.load(f)
    if args.inference:
        # benchmark_fps reports the FPS ratio; its inverse is the time's.
        return 1.0 / float(summary['ratio_paired'])
    return float(summary['step_ratio_paired'])


def combine(first: dict, second: dict, target: float) -> dict:
    """Pool two runs whose configs are swapped: the ratios of ``second``
    are inverted, so that all are ``first['compare']`` over
    ``first['config']``, and its controls too, so that the pooled control
    estimates the slot bias the pooled ratio keeps. Runs that
    differ in anything else they record (mode, device, iterations, warm-up,
    options passed through, the number of processes) are refused: with
    more processes in one run the pool would weight that run's slot bias
    more, and a bias common to both would no longer cancel.

    Args:
        first (dict), second (dict): Summaries :func:`main` wrote.
        target (float): The ratio to decide on.

    A bias of the second slot that is the same in both runs cancels in
    the pool; one that differs between them, ``b_1`` and ``b_2``, leaves
    ``sqrt(b_1 / b_2)`` in it. Each run's controls estimate its own bias,
    so ``slot_bias_left`` gives that factor (with the Welch p-value of the
    two runs' controls differing) and ``corrected`` the pooled ratio
    divided by it (its interval scaled alike, the factor's own uncertainty
    left out). The verdict reads the pooled ratio, as planned, and is
    "not decisive" when the pooled control leaves out 1: that control, its
    second run's ratios inverted like the compare ratios, estimates the
    same ``sqrt(b_1 / b_2)``. (Pooled without the inversion it would
    estimate ``sqrt(b_1 b_2)``, a bias the pool cancels, and miss the one
    it keeps.)

    Returns:
        dict: ``ratios`` (pooled), ``summary`` and ``control`` (geometric
        means with their intervals), ``slot_bias_left``, ``corrected``,
        ``verdict`` (:func:`verdict`).
    """
    if (second['config'], second['compare']) != (first['compare'],
                                                 first['config']):
        raise ValueError(
            'the second run must swap the first run\'s configs, got '
            f'{first["config"]} / {first["compare"]} and '
            f'{second["config"]} / {second["compare"]}')
    counts = [(len(run['ratios']['compare']), len(run['ratios']['control']))
              for run in (first, second)]
    if len({count for pair in counts for count in pair}) != 1:
        raise ValueError(
            'the two runs must have as many processes each, compare and '
            'control alike, so that the pool weights their slot biases '
            f'equally, got (compare, control) {counts[0]} and {counts[1]}')
    ratios = dict(
        compare=first['ratios']['compare'] +
        [1 / value for value in second['ratios']['compare']],
        control=first['ratios']['control'] +
        [1 / value for value in second['ratios']['control']])
    summary = geometric_mean_interval(ratios['compare'])
    control = geometric_mean_interval(ratios['control'])
    if first.get('mode', 'train') != second.get('mode', 'train'):
        raise ValueError(
            'the two runs must time the same thing, got '
            f'{first.get("mode", "train")} and {second.get("mode", "train")}')
    differ = {key: (first.get(key), second.get(key))
              for key in ('device', 'num_iters', 'warmup', 'passthrough')
              if first.get(key) != second.get(key)}
    if differ:
        raise ValueError(f'the two runs must differ only in the order of '
                         f'the configs, got (first, second) {differ}')
    left = slot_bias_left(first['ratios']['control'],
                          second['ratios']['control'])
    corrected = {key: summary[key] / left['ratio']
                 for key in ('ratio', 'ci_low', 'ci_high')}
    return dict(config=first['config'], compare=first['compare'],
                mode=first.get('mode', 'train'),
                ratios=ratios, summary=summary, control=control,
                slot_bias_left=left, corrected=corrected,
                target=target, verdict=verdict(summary, target, control))


def slot_bias_left(first: List[float], second: List[float]) -> dict:
    """``sqrt(b_1 / b_2)`` from the two runs' control ratios (geometric
    means), and the Welch t-test p-value of their logs differing."""
    from scipy.stats import ttest_ind
    logs = [[math.log(value) for value in side] for side in (first, second)]
    means = [sum(side) / len(side) for side in logs]
    p_value = float(ttest_ind(*logs, equal_var=False).pvalue) \
        if min(map(len, logs)) > 1 else math.nan
    return dict(ratio=math.exp((means[0] - means[1]) / 2), p=p_value)


def read_summary(path: str) -> dict:
    """A summary :func:`main` wrote, or SystemExit naming the file and what
    it lacks."""
    with open(path) as f:
        try:
            summary = json.load(f)
        except ValueError as error:
            raise SystemExit(f'--combine: {path} is not JSON ({error})')
    ratios = summary.get('ratios') if isinstance(summary, dict) else None
    if not (isinstance(summary, dict) and 'config' in summary
            and 'compare' in summary and isinstance(ratios, dict)
            and all(isinstance(ratios.get(kind), list) and ratios[kind]
                    for kind in ('compare', 'control'))):
        raise SystemExit(
            f'--combine: {path} is not a summary of this tool (it needs '
            'config, compare and ratios with compare and control lists)')
    return summary


def main_combine(args) -> dict:
    summaries = [read_summary(path) for path in args.combine]
    try:
        result = combine(*summaries, args.target)
    except ValueError as error:
        raise SystemExit(f'--combine {" ".join(args.combine)}: {error}')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
    for name, stats in (('compare / config, both runs', result['summary']),
                        ('controls of both runs', result['control'])):
        print(f'{name}: {stats["ratio"]:.4f} [{stats["ci_low"]:.4f}, '
              f'{stats["ci_high"]:.4f}] (95% t-interval over '
              f'{stats["n"]} processes)')
    left, fixed = result['slot_bias_left'], result['corrected']
    print(f'slot bias left in the pool: {left["ratio"]:.4f} (the runs\' '
          f'controls differ with Welch p = {left["p"]:.3g}); divided out: '
          f'{fixed["ratio"]:.4f} [{fixed["ci_low"]:.4f}, '
          f'{fixed["ci_high"]:.4f}]')
    print(f'ratio <= {args.target}: {result["verdict"]}')
    return result


def main(argv=None):
    args, passthrough = parse_args(argv)
    if args.combine:
        return main_combine(args)
    run_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(run_dir, exist_ok=True)
    # named after the summary, so that two runs in one folder keep theirs
    stem = osp.splitext(osp.basename(args.out))[0]
    ratios = dict(compare=[], control=[])
    for index in range(args.processes):
        # alternate, so that a drift of the machine hits both sets alike
        for kind, other in (('compare', args.compare),
                            ('control', args.config)):
            out = osp.join(run_dir, f'{stem}_{kind}_{index}.json')
            ratios[kind].append(run_one(args, passthrough, other, out))
            print(f'{kind} {index}: {ratios[kind][-1]:.4f}', flush=True)
    compare = geometric_mean_interval(ratios['compare'])
    control = geometric_mean_interval(ratios['control'])
    result = dict(config=args.config, compare=args.compare,
                  mode='inference' if args.inference else 'train',
                  device=args.device, num_iters=args.num_iters,
                  warmup=args.warmup, passthrough=passthrough,
                  ratios=ratios, summary=compare, control=control,
                  target=args.target,
                  verdict=verdict(compare, args.target, control))
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=1)
    for name, stats in (('compare / config', compare),
                        ('control (config / config)', control)):
        print(f'{name}: {stats["ratio"]:.4f} [{stats["ci_low"]:.4f}, '
              f'{stats["ci_high"]:.4f}] (95% t-interval over '
              f'{stats["n"]} processes)')
    print(f'ratio <= {args.target}: {result["verdict"]}')
    return result


if __name__ == '__main__':
    main()
