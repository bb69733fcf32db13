# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Rank the loss-weighting strategies on the digits demo over paired seeds.

Every config under ``configs/demo/benchmark/`` (not starting with ``_``) is a
strategy. For each strategy and seed the tool trains the strategy's config,
starting from the seed's shared initial detector weights with the seed's data
order, and evaluates VOC mAP (11-point) during and after training. Finished
runs are kept (``runs/<strategy>/seed<s>/result.json``) and skipped on the
next call, so the table grows over several calls (of one budget and one
demo set: a call whose ``--max-iters`` differs from the saved runs', or whose
demo set on disk has another fingerprint than the one they recorded, is
refused):

    python tools/benchmark.py --strategies fixed slf-joint --seeds 0 1 2 3 4
    python tools/benchmark.py --strategies famo --seeds 0 1 2 3 4
    python tools/benchmark.py --timing          # step-time and FPS ratios
    python tools/benchmark.py --report-only     # rewrite docs/results.md

A page written by this version keeps its runs beside its figures
(``docs/<page>/runs.json``: every run's result and logged weights, a few kB
a run; pages older than the archive, such as ``docs/results.md``, have
none), and ``--archive`` writes the page from that file instead of the
work dir, on any machine, with the options the page quotes:

    python tools/benchmark.py --report-only --strategies fixed dwa \
        --seeds 0 1 2 3 4 --work-dir work_dirs/benchmark-dwa \
        --out docs/results-dwa-window.md \
        --archive docs/results-dwa-window/runs.json

Several archives, or work dirs, give one page of the runs they keep
together (rows run again on different days, each beside its own reference
runs, or new rows beside a page's reference): a run kept twice must agree
in every outcome, and runs of another budget or demo set are refused
(``mmdet_slf.benchmarking.archive.read_archives``):

    python tools/benchmark.py --report-only --max-iters 1200 \
        --out docs/results-1200-kept.md \
        --archive docs/results-1200-rerun/runs.json \
                  docs/results-1200-dwa-window/runs.json

The page covers the seeds given with ``--seeds`` (every saved seed when not
given) and, with ``--report-only``, the strategies given with
``--strategies`` and the reference. More seeds for a few strategies thus
get their own page without changing the table made over the first five:

    python tools/benchmark.py --strategies fixed slf-x --seeds 5 6 7 8 9 \
        --no-report
    python tools/benchmark.py --report-only --seeds 0 1 2 3 4
    python tools/benchmark.py --report-only --strategies slf-x \
        --seeds 0 1 2 3 4 5 6 7 8 9 --out docs/results-10-seeds.md

With ``--num-val N`` every run trains on ``train.txt`` (trainval less ``N``
held-out images, drawn under ``--split-seed``) and is scored on those
images, ``val.txt``, so that strategies or settings can be chosen without
reading the test images (in their own ``--work-dir``). Both lists lie in
``ImageSets/Main/val<N>-seed<split seed>/``, one folder per split:

    python tools/benchmark.py --strategies fixed fixed-lr2x --seeds 0 1 \
        --num-val 300 --work-dir work_dirs/validation \
        --out docs/results-validation.md

The report gives per strategy the mean, std and 95% t-interval of mAP, the
paired difference to the reference (Fixed) with its 95% interval and the
two-sided paired t-test p-value, and the smallest weight share of a term
relative to the reference's lambdas (over the terms and the seeds);
``--timing`` measures training-step time and inference FPS of every
strategy in one process, interleaved, as ratios to the reference.
"""
import datetime
import json
import os
import os.path as osp
import platform
import sys
import time
from typing import Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmdet_slf  # noqa: E402,F401
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

from mmdet_slf.benchmarking import report, tuning, workdir  # noqa: E402
from mmdet_slf.benchmarking.archive import read_archives  # noqa: E402
from mmdet_slf.benchmarking.cost import measure_cost  # noqa: E402
from mmdet_slf.benchmarking.environment import (  # noqa: E402
    data_fingerprint, environment)
from mmdet_slf.benchmarking.runs import (config_digest,  # noqa: E402
                                         find_strategies,
                                         forget_global_instances,
                                         init_checkpoint_path, load_results,
                                         load_scalars,
                                         make_init_checkpoint, run_config,
                                         run_dir, save_result,
                                         strategy_name, summarize_run)

from benchmark_args import (CONFIG_DIR, DEFAULT_OUT,  # noqa: E402,F401
                            DEFAULT_SEEDS, DEFAULT_WORK_DIR, REFERENCE,
                            REPO_ROOT, TUNED, parse_args)


def load_strategy(path: str) -> Config:
    cfg = Config.fromfile(path)
    cfg.log_level = 'WARNING'  # console; the log file keeps everything
    return cfg


def train_one(cfg: Config, key: str, seed: int, args,
              digest: Optional[str] = None) -> dict:
    """Train one strategy for one seed and save its result, which records
    ``digest`` (the :func:`config_digest` of the config the run was made
    from, by which a later call recognises a changed config) when given."""
    from mmengine.runner import Runner
    work_dir = run_dir(args.work_dir, key, seed)
    reference_cfg = load_strategy(
        find_strategies(args.config_dir)[args.reference])
    init_path = make_init_checkpoint(
        reference_cfg, seed, init_checkpoint_path(args.work_dir, seed))
    run_cfg = run_config(cfg, seed, work_dir, init_path, args.max_iters)
    # Also before: a Runner built earlier in this process, not by this
    # function, left its visualizer, whose scalars would go to its files.
    forget_global_instances()
    start = time.time()
    runner = Runner.from_cfg(run_cfg)
    runner.train()
    minutes = (time.time() - start) / 60
    terms = list(runner.model.bbox_head.weighting.terms)
    # mmengine's LoggerHook logs validation metrics by epoch unless told
    logger = run_cfg.get('default_hooks', {}).get('logger') or {}
    summary = summarize_run(
        load_scalars(work_dir), terms,
        metric_by_epoch=logger.get('log_metric_by_epoch', True))
    if not summary['curve']:
        raise RuntimeError(
            f'{key} seed {seed} logged no validation mAP in {work_dir} '
            '(its scalars.json holds no pascal_voc/mAP): a run without a '
            'score is not saved; check val_interval and the val settings')
    result = dict(
        seed=seed,
        strategy=key,
        name=strategy_name(cfg, key),
        terms=terms,
        prior=report.prior_weights(cfg),
        max_iters=run_cfg.train_cfg.max_iters,
        train_minutes=minutes,
        work_dir=runner.work_dir,
        eval_split=evaluation_split(args),
        environment=environment(),
        data=data_fingerprint(workdir.dataset_dir(run_cfg)),
        **summary)
    # the strategy whose model gave the start weights
    result['reference'] = args.reference
    if digest is not None:
        result['config_digest'] = digest
    save_result(osp.join(work_dir, 'result.json'), result)
    forget_global_instances()
    return result


def evaluation_split(args) -> str:
    """What this call's runs are scored on, as their results record it."""
    return workdir.evaluation_split(args.num_val, args.split_seed)


def check_split(args, done: dict) -> None:
    """Refuse saved runs scored on other images than this call scores on,
    so no page or table mixes test and validation mAP."""
    hint = ('pass the --num-val and --split-seed they were trained with'
            if args.report_only else 'give these runs another --work-dir')
    where = args.work_dir if args.work_dir is not None else ' and '.join(
        args.archive)
    workdir.check_split(where, done, evaluation_split(args), hint)


def check_budget(args, strategies: dict, done: dict) -> None:
    """Refuse saved runs of another budget than this call's: ``--max-iters``,
    or each strategy's config. For a page, that is the budget its quoted
    commands give."""
    if args.max_iters is not None:
        budgets = dict.fromkeys(done, args.max_iters)
    else:
        budgets = {key: Config.fromfile(strategies[key]).train_cfg.max_iters
                   for key in done if key in strategies}
    where = args.work_dir if args.work_dir is not None else ' and '.join(
        args.archive)
    workdir.check_budget(where, done, budgets)


def check_configs(args, strategies: dict, done: dict) -> dict:
    """Refuse saved runs of any strategy on the page, trained now or not,
    whose config on disk changed since (new lambdas written by
    ``tune_fixed_lambdas.py --write-config``, say). Returns the digests
    of the configs on disk, by key."""
    keys = set(args.strategy_keys) | {key for key in done if key in
                                      strategies}
    digests = {key: config_digest(load_strategy(strategies[key]))
               for key in sorted(keys)}
    unchecked = workdir.check_configs(args.work_dir, done, digests,
                                      args.config_dir)
    if unchecked:
        print('[benchmark] saved without a config digest, so not checked '
              f'against the configs on disk: {", ".join(unchecked)}',
              flush=True)
    return digests


def train_all(args, strategies: dict, data_split=None) -> None:
    """Train every (strategy, seed) not yet saved; with ``data_split``
    (train and val lists, given exactly when ``--num-val`` is) on the train
    list, scored on the val list."""
    done = load_results(args.work_dir)
    check_split(args, done)
    check_budget(args, strategies, done)
    workdir.check_data(
        args.work_dir, done,
        workdir.dataset_dir(load_strategy(strategies[args.reference])))
    digests = check_configs(args, strategies, done)
    if (data_split is None) != (args.num_val is None):
        raise ValueError(f'--num-val {args.num_val} needs the train and val '
                         f'lists and only then, got data_split={data_split}')
    for seed in args.seeds:
        for key in args.strategy_keys:
            if seed in done.get(key, {}):
                continue
            cfg = load_strategy(strategies[key])
            if data_split is not None:
                cfg = tuning.validation_config(cfg, data_split)
            result = train_one(cfg, key, seed, args, digests[key])
            print(f'[benchmark] {key} seed {seed}: mAP {result["mAP"]:.4f} '
                  f'({result["train_minutes"]:.2f} min)', flush=True)


def timing(args, strategies: dict) -> dict:
    """Interleaved step-time and FPS of every strategy, same weights,
    written to the work dir's ``timing.json``."""
    reference_cfg = load_strategy(strategies[args.reference])
    init_path = make_init_checkpoint(
        reference_cfg, args.seeds[0],
        init_checkpoint_path(args.work_dir, args.seeds[0]))
    result = measure_cost(
        reference_cfg,
        {key: load_strategy(strategies[key]) for key in args.strategy_keys},
        init_path, args.seeds[0], osp.join(args.work_dir, 'timing'),
        rounds=args.timing_rounds)
    result.update(machine=machine(), date=datetime.date.today().isoformat(),
                  command=command_line())
    # One measurement of all the strategies asked for: ratios are only
    # meaningful within one interleaved run, so nothing is merged.
    with open(osp.join(args.work_dir, 'timing.json'), 'w') as f:
        json.dump(result, f, indent=1)
    return result


def machine() -> str:
    return (f'{environment()["cpu"]}, {os.cpu_count()} cores, torch '
            f'{torch.__version__} ({torch.get_num_threads()} threads), Python '
            f'{platform.python_version()}')


def command_line() -> str:
    return ('python tools/benchmark.py ' + ' '.join(sys.argv[1:])).strip()


def page_options(args) -> str:
    """The options, other than the defaults, that the page's commands
    need to reproduce it (another budget, work dir or page)."""
    options = ''
    if osp.abspath(args.config_dir) != osp.abspath(CONFIG_DIR):
        options += f' --config-dir {osp.relpath(args.config_dir, REPO_ROOT)}'
    if args.reference != REFERENCE:
        options += f' --reference {args.reference}'
    if args.tuned != TUNED:
        options += f' --tuned {args.tuned}'
    if args.max_iters is not None:
        options += f' --max-iters {args.max_iters}'
    if args.num_val is not None:
        options += f' --num-val {args.num_val}'
        if args.split_seed != 0:
            options += f' --split-seed {args.split_seed}'
    if args.work_dir not in (None, DEFAULT_WORK_DIR):
        options += f' --work-dir {args.work_dir}'
    if osp.abspath(args.out) != osp.abspath(DEFAULT_OUT):
        options += f' --out {osp.relpath(args.out, REPO_ROOT)}'
    return options


def main(argv=None):
    args = parse_args(argv)
    try:
        strategies = find_strategies(args.config_dir)
    except FileNotFoundError as error:
        raise SystemExit(f'--config-dir: {error}')
    keys = args.strategies or list(strategies)
    unknown = [key for key in keys if key not in strategies]
    if unknown:
        raise SystemExit(f'unknown strategies {unknown}; the configs in '
                         f'{args.config_dir} are {sorted(strategies)}')
    if args.reference not in strategies:
        raise SystemExit(f'reference {args.reference!r} has no config in '
                         f'{args.config_dir}')
    if args.tuned != TUNED and args.tuned not in strategies:
        # the page would say the tuned lambdas are not on it
        raise SystemExit(f'--tuned {args.tuned!r} has no config in '
                         f'{args.config_dir}')
    archived = None
    if args.archive is not None:
        try:
            archived, work_dirs, _, _ = read_archives(args.archive)
        except (OSError, ValueError) as err:
            raise SystemExit(f'--archive: {err}')
        # the page names the work dir its runs were made in (runs of
        # several work dirs: the page names them all and no --work-dir)
        args.work_dir = work_dirs[0] if len(work_dirs) == 1 else None
    if args.num_val is not None and args.work_dir is not None and \
            osp.abspath(args.work_dir) == osp.abspath(DEFAULT_WORK_DIR):
        raise SystemExit('--num-val runs are scored on a validation split; '
                         'give them their own --work-dir, away from the '
                         f'test runs in {DEFAULT_WORK_DIR}')
    if args.num_val is not None and args.timing:
        raise SystemExit('--timing trains nothing; --num-val does not apply')
    args.strategy_keys = keys
    page_seeds = args.seeds
    if args.seeds is None:
        args.seeds = DEFAULT_SEEDS
    if args.timing:
        if args.reference not in keys:
            keys.insert(0, args.reference)
        timing(args, strategies)
    elif not args.report_only:
        from mmdet_slf.demo_data import make_digits_voc
        cfg = load_strategy(strategies[args.reference])
        dataset = cfg.train_dataloader.dataset
        make_digits_voc(root=dataset.data_root,
                        subset=dataset.data_prefix.sub_data_root.strip('/'),
                        progress=False, **cfg.get('demo_data', {}))
        data_split = None
        if args.num_val is not None:
            data_split = tuning.prepare_validation_split(
                cfg, args.num_val, args.split_seed)
        train_all(args, strategies, data_split)
    if not args.no_report:
        saved = archived if archived is not None else load_results(
            args.work_dir)
        check_split(args, saved)
        check_budget(args, strategies, saved)
        if archived is None:  # an archive keeps a page as it was made
            check_configs(args, strategies, saved)
        try:
            report.write_report(
                args.work_dir, args.out, args.reference, strategies,
                tuned=args.tuned, options=page_options(args),
                seeds=page_seeds, evaluated_on=report.evaluated_on(
                    args.num_val, args.split_seed),
                keys=args.strategies if args.report_only else None,
                archive=args.archive)
        except (FileNotFoundError, ValueError) as error:
            # no runs, or none of the reference, for the page
            raise SystemExit(f'no page written: {error}')


if __name__ == '__main__':
    main()
