# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Tune the fixed lambdas on a validation split of the digits demo.

Draws ``--num-settings`` lambda settings log-uniformly within
x``--spread`` of the reference strategy's (YOLO's 5, 1, 1, 0.5), holds
``--num-val`` images of the demo's trainval set out as ``val.txt`` (the
rest is ``train.txt``, both in ``ImageSets/Main/val<N>-seed<seed>/``; the
test images are never read), trains every
setting once on train.txt at the strategy's budget, from the seed's initial
weights and data order as ``tools/benchmark.py`` trains a strategy, and
ranks the settings by the final VOC mAP on val.txt. Finished settings are
kept (``runs/setting<i>/seed<s>/result.json``, with the reference and the
digest of its config as ``--cfg-options`` made it) and skipped on the next
call, which refuses a work dir of another search before training anything:

    python tools/tune_fixed_lambdas.py --num-settings 8 --seed 0 \\
        --num-val 300 --work-dir work_dirs/tune_fixed --write-config

The table of settings, the best one and the total training minutes are
printed and saved to ``<work-dir>/tuning.json``; ``--write-config`` writes
the best setting as ``configs/demo/benchmark/fixed-tuned.py``, which
``tools/benchmark.py`` then trains on all of trainval and scores on test.
"""
import argparse
import math
import os.path as osp
import sys

TOOLS_DIR = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.dirname(TOOLS_DIR))
sys.path.insert(0, TOOLS_DIR)

from benchmark import (CONFIG_DIR, REFERENCE,  # noqa: E402
                       evaluation_split, load_strategy, train_one)

from mmdet_slf.benchmarking import tuned_config, tuning, workdir  # noqa: E402
from mmdet_slf.benchmarking.report import prior_weights  # noqa: E402
from mmdet_slf.benchmarking.runs import (config_digest,  # noqa: E402
                                         find_strategies, load_results,
                                         run_dir, save_result)
from mmdet_slf.utils.arguments import (CfgOptionsAction,  # noqa: E402
                                       check_out_file)

TUNED_CONFIG = osp.join(CONFIG_DIR, 'fixed-tuned.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Random search of fixed lambdas on a validation split')
    parser.add_argument('--num-settings', type=int, default=8)
    parser.add_argument('--seed', type=int, default=0,
                        help='seeds the lambdas, the validation split and '
                        'the training runs (initial weights, data order)')
    parser.add_argument('--spread', type=float, default=4.0,
                        help="each lambda lies within a factor spread of "
                        "the reference's")
    parser.add_argument('--num-val', type=int, default=300,
                        help='trainval images held out for validation')
    parser.add_argument('--work-dir', default='work_dirs/tune_fixed')
    parser.add_argument('--config-dir', default=CONFIG_DIR,
                        help='folder of strategy configs')
    parser.add_argument('--reference', default=REFERENCE,
                        help='strategy whose lambdas, model and schedule '
                        'the search starts from')
    parser.add_argument('--max-iters', type=int, default=None,
                        help="override the strategy's budget (debugging)")
    parser.add_argument('--write-config', action='store_true',
                        help='write the best setting as a strategy config')
    parser.add_argument('--config-out', default=None,
                        help='the config --write-config writes (default: '
                        'fixed-tuned.py of the default --config-dir)')
    parser.add_argument('--base-config', default=None,
                        help='the config the written config inherits '
                        "(default: the --reference strategy's, which the "
                        'search trained; --cfg-options are written into it)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help="override keys of the reference's config "
                        '(data, schedule); the initial weights come from '
                        'its model as it is')
    args = parser.parse_args(argv)
    if args.num_settings < 1 or args.num_val < 1:
        parser.error('--num-settings and --num-val must be >= 1, got '
                     f'{args.num_settings} and {args.num_val}')
    if not args.spread > 1:
        parser.error(f'--spread must be > 1, got {args.spread}')
    if args.seed < 0:
        parser.error(f'--seed must be >= 0 (numpy draws the lambdas and the '
                     f'split from it), got {args.seed}')
    if args.max_iters is not None and args.max_iters < 1:
        parser.error(f'--max-iters must be >= 1, got {args.max_iters}')
    # Checked before the search, which trains for hours: the config written
    # at its end inherits --base-config by its path.
    if args.base_config is not None and not args.write_config:
        parser.error('--base-config is the config the written config '
                     'inherits: it needs --write-config')
    if args.base_config is not None and not osp.isfile(args.base_config):
        parser.error(f'--base-config {args.base_config} does not exist (a '
                     'file; the written config inherits it by its path)')
    if args.config_out is not None and not args.write_config:
        parser.error('--config-out is the config --write-config writes: it '
                     'needs --write-config')
    if args.write_config:
        args.config_out = args.config_out or TUNED_CONFIG
        check_out_file(parser, args.config_out, '--config-out',
                       'name the config file to write')
    return args


def check_setting(args, key: str, saved: dict, lambdas, budget: int,
                  digest: str) -> None:
    """Refuse a saved setting that this search would not have trained: other
    lambdas or budget, another validation split, another reference or
    another config (``--cfg-options``); reusing it would rank lambdas
    trained under another setting."""
    if not (all(math.isclose(a, b) for a, b in zip(saved['prior'], lambdas))
            and saved['max_iters'] == budget):
        raise SystemExit(
            f'{args.work_dir} holds {key} trained with lambdas '
            f'{saved["prior"]} for {saved["max_iters"]} iterations, not '
            f'{lambdas} for {budget}: another search; use another '
            '--work-dir')
    split = saved.get('eval_split', evaluation_split(args))
    if split != evaluation_split(args):
        raise SystemExit(
            f'{args.work_dir} holds {key} scored on {split}, not on '
            f'{evaluation_split(args)}: another search; use another '
            '--work-dir')
    if 'reference' not in saved or 'config_digest' not in saved:
        raise SystemExit(
            f'{args.work_dir} holds {key} saved without the reference and '
            'config digest it was trained from (made before they were '
            f'recorded), so it cannot be checked against --reference '
            f'{args.reference} and these --cfg-options: use another '
            f'--work-dir (or delete {run_dir(args.work_dir, key, args.seed)} '
            'to train it again)')
    if saved['reference'] != args.reference:
        raise SystemExit(
            f'{args.work_dir} holds {key} trained from reference '
            f'{saved["reference"]!r}, not {args.reference!r}: another '
            'search; use another --work-dir')
    if saved['config_digest'] != digest:
        raise SystemExit(
            f'{args.work_dir} holds {key} trained from a config with digest '
            f'{saved["config_digest"]}, but {args.reference!r} with these '
            f'--cfg-options gives {digest} (other options, or its config '
            'changed): another search; use another --work-dir')


def train_setting(args, cfg, key: str, lambdas, data_split,
                  digest: str) -> dict:
    """Train one setting; its result records the reference and
    ``digest``, that of ``cfg``, the config it was made from."""
    result = train_one(tuning.tuning_config(cfg, lambdas, data_split), key,
                       args.seed, args, digest=digest)
    print(f'[tune] {key} {tuning.format_lambdas(lambdas)}: val mAP '
          f'{result["mAP"]:.4f} ({result["train_minutes"]:.2f} min)',
          flush=True)
    return result


def train_settings(args, cfg, settings, data_split) -> list:
    """The result of every setting: saved ones as they are, others
    trained now. Every saved setting is checked before any is trained, so
    a refused work dir is left as it was.

    ``cfg`` is the reference's config with the ``--cfg-options`` merged,
    before a setting's lambdas are put in; its :func:`config_digest` is
    saved with every setting.
    """
    done = load_results(args.work_dir)
    budget = args.max_iters if args.max_iters is not None \
        else cfg.train_cfg.max_iters
    digest = config_digest(cfg)
    keys = [f'setting{index}' for index in range(len(settings))]
    for key, lambdas in zip(keys, settings):
        saved = done.get(key, {}).get(args.seed)
        if saved is not None:
            check_setting(args, key, saved, lambdas, budget, digest)
    # a setting trained on a demo set made again since is another search
    workdir.check_data(args.work_dir, done, workdir.dataset_dir(cfg))
    results = []
    for key, lambdas in zip(keys, settings):
        result = done.get(key, {}).get(args.seed)
        if result is None:
            result = train_setting(args, cfg, key, lambdas, data_split,
                                   digest)
            check_setting(args, key, result, lambdas, budget, digest)
        results.append(result)
    return results


def main(argv=None):
    args = parse_args(argv)
    args.split_seed = args.seed  # one seed draws the split: train_one saves it
    try:
        strategies = find_strategies(args.config_dir)
    except FileNotFoundError as error:
        raise SystemExit(f'--config-dir: {error}')
    if args.reference not in strategies:
        raise SystemExit(f'reference {args.reference!r} has no config in '
                         f'{args.config_dir}')
    cfg = load_strategy(strategies[args.reference])
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.write_config:
        base_config = args.base_config or strategies[args.reference]
        if osp.abspath(args.config_out) in tuned_config.inherited_files(
                base_config):
            raise SystemExit(
                f'--config-out {args.config_out} is {base_config} or a '
                'config it inherits: the written config would inherit '
                'itself, and that file would be lost; name another '
                '--config-out')
        # before any training: options a config cannot carry are refused
        try:
            tuned_config.nest_options(args.cfg_options)
        except ValueError as error:
            raise SystemExit(str(error))
    base = prior_weights(cfg)
    if base is None:
        raise SystemExit(f'reference {args.reference!r} has no lambdas '
                         '(weights, prior or init_weights) to search around')
    settings = tuning.sample_lambdas(base, args.num_settings, args.spread,
                                     args.seed)
    try:
        data_split = tuning.prepare_validation_split(cfg, args.num_val,
                                                     args.seed)
    except ValueError as err:  # more --num-val than trainval has
        raise SystemExit(f'--num-val: {err}')
    results = train_settings(args, cfg, settings, data_split)
    with open(data_split[0]) as f:
        num_train = len(f.read().split())
    command = 'python tools/tune_fixed_lambdas.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    search = tuning.summarize_search(
        settings, results, results[0]['terms'],
        base=list(base), spread=args.spread, seed=args.seed,
        max_iters=results[0]['max_iters'], num_train=num_train,
        num_val=args.num_val, command=command.strip())
    save_result(osp.join(args.work_dir, 'tuning.json'), search)
    print('\n'.join(tuning.format_table(search)))
    print(f'[tune] best: setting {search["best"]} '
          f'{tuning.format_lambdas(search["lambdas"])}; cost '
          f'{search["num_runs"]} runs, {search["train_minutes"]:.1f} min',
          flush=True)
    if args.write_config:
        tuned_config.write_tuned_config(
            args.config_out, search,
            args.base_config or strategies[args.reference], search['command'],
            options=args.cfg_options)
        print(f'[tune] wrote {args.config_out}')
    return search


if __name__ == '__main__':
    main()
