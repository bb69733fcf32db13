# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Checks that a work dir's saved runs belong to the call that finds them.

A finished run is skipped as done and paired with the runs trained now, so
a saved run made under other conditions would silently enter the table.
Each check below compares what a saved ``result.json`` records with what
the current call would train, and stops with the work dir, the run and
both values named:

- the images it was scored on (:func:`check_split`): test or a validation
  split, so no page mixes the two;
- its training budget (:func:`check_budget`);
- the fingerprint of the set it read (:func:`check_data`);
- the digest of its strategy's config (:func:`check_configs`).

Results saved before a field was recorded pass the check of that field:
nothing says what they were made with.
"""
import os.path as osp
from typing import Dict, Optional

from mmengine.config import Config

from .environment import data_fingerprint

Saved = Dict[str, Dict[int, dict]]  # {strategy key: {seed: result}}


def evaluation_split(num_val: Optional[int], split_seed: int) -> str:
    """What runs are scored on, as their results record it: ``'test'``, or
    the validation split of ``num_val`` images drawn under
    ``split_seed``."""
    if num_val is None:
        return 'test'
    return f'val ({num_val} of trainval, split seed {split_seed})'


def check_split(work_dir: str, done: Saved, split: str, hint: str) -> None:
    """Refuse saved runs scored on other images than ``split``.

    Args:
        work_dir (str): The work dir, for the message.
        done (dict): Its saved runs, as ``runs.load_results`` gives them.
        split (str): What this call scores on (:func:`evaluation_split`).
        hint (str): What the user should do instead, for the message.
    """
    for key, runs in done.items():
        for seed, saved in runs.items():
            # results from before the split was recorded were all on test
            if saved.get('eval_split', 'test') != split:
                raise SystemExit(
                    f'{work_dir} holds {key} seed {seed} scored on '
                    f"{saved.get('eval_split', 'test')}, not on {split}: "
                    f'{hint}')


def check_budget(work_dir: str, done: Saved, budgets: Dict[str,
                                                           int]) -> None:
    """Refuse saved runs trained for another number of iterations than
    ``budgets[key]``, what this call trains their strategy for; such a run
    would be paired with runs of the other budget. Strategies missing from
    ``budgets`` are not checked."""
    for key, runs in done.items():
        if key not in budgets:
            continue
        for seed, saved in runs.items():
            if saved.get('max_iters', budgets[key]) != budgets[key]:
                raise SystemExit(
                    f'{work_dir} holds {key} seed {seed} trained for '
                    f"{saved['max_iters']} iterations, not {budgets[key]}: "
                    'give --max-iters as for the saved runs, or another '
                    '--work-dir')


def dataset_dir(cfg: Config) -> str:
    """The folder of the set a config trains on (``.../VOCdevkit/DIGITS``)."""
    dataset = cfg.train_dataloader.dataset
    return osp.join(dataset.data_root, dataset.data_prefix.sub_data_root)


def check_data(work_dir: str, done: Saved, set_dir: str) -> None:
    """Refuse saved runs that read another set of images than the one in
    ``set_dir`` now (regenerated, or made by other package versions). The
    set is fingerprinted only when some saved run recorded a fingerprint."""
    saved_sets = {(key, seed): saved['data'] for key, runs in done.items()
                  for seed, saved in runs.items() if saved.get('data')}
    if not saved_sets:
        return
    current = data_fingerprint(set_dir)
    for (key, seed), fingerprint in saved_sets.items():
        if fingerprint != current:
            raise SystemExit(
                f'{work_dir} holds {key} seed {seed} trained on the demo set '
                f'with fingerprint {fingerprint}, but the set on disk has '
                f'{current} (regenerated, or made by other package '
                'versions): give these runs another --work-dir')


def check_configs(work_dir: str, done: Saved, digests: Dict[str, str],
                  config_dir: str) -> list:
    """Refuse saved runs trained from another version of their strategy's
    config than the one on disk, whose ``runs.config_digest`` is
    ``digests[key]`` (new lambdas written by ``tune_fixed_lambdas.py
    --write-config``, another learning rate): such a run would be skipped
    as done, and the page would pool two settings under one name.

    Returns:
        list[str]: The runs saved before the digest was recorded
        (``'<key> seed <s>'``), which cannot be checked.
    """
    unchecked = []
    for key, digest in digests.items():
        for seed, saved in done.get(key, {}).items():
            if 'config_digest' not in saved:
                unchecked.append(f'{key} seed {seed}')
            elif saved['config_digest'] != digest:
                raise SystemExit(
                    f'{work_dir} holds {key} seed {seed} trained from a '
                    f"config with digest {saved['config_digest']}, but "
                    f'{config_dir}/{key}.py now gives {digest}: the config '
                    'changed since; give the new runs another --work-dir '
                    f'(or delete runs/{key} to retrain)')
    return unchecked
