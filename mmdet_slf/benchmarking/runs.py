# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Strategy configs, paired seeds and saved results of the benchmark.

A strategy is a config file under ``configs/demo/benchmark/`` (files whose
name starts with ``_`` are bases, not strategies); its ``strategy_name`` is
the name shown in the report. Runs are *paired by seed*: for seed ``s`` every
strategy starts from the same detector weights (drawn once from the
reference strategy's model under seed ``s`` and saved, without the
weighting's own parameters, to ``init/seed<s>.pth``) and sees the same data
order (``randomness.seed = s`` drives the sampler and the per-iteration
streams). The strategies therefore differ only in the weighting.

Each finished run writes ``runs/<strategy>/seed<s>/result.json``; the report
merges whatever results exist, so the table can be built over several calls.
"""
import copy
import glob
import hashlib
import io
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config

from mmdet_slf.engine.checkpoint.atomic_io import atomic_write

RESULT_FILE = 'result.json'
WEIGHTING_KEY = '.weighting.'


def find_strategies(config_dir: str) -> Dict[str, str]:
    """``{strategy key: config path}`` for every strategy config in a folder.

    The key is the file name without ``.py``; files starting with ``_`` are
    shared bases and are skipped.
    """
    paths = sorted(glob.glob(osp.join(config_dir, '*.py')))
    strategies = {
        osp.splitext(osp.basename(path))[0]: path
        for path in paths if not osp.basename(path).startswith('_')
    }
    if not strategies:
        raise FileNotFoundError(f'no strategy configs (*.py not starting '
                                f'with "_") in {config_dir}')
    return strategies


def strategy_name(cfg: Config, key: str) -> str:
    """The display name of a strategy: ``strategy_name`` or its key."""
    return cfg.get('strategy_name', key)


def config_digest(cfg: Config) -> str:
    """A short hash of everything a config sets (its bases resolved), so a
    saved run can be matched with the config that would train it now.

    Keys are sorted, so the digest does not depend on the order of a
    file's lines; anything JSON cannot hold enters as its ``repr``. Two
    configs that differ in any setting, a comment excepted, differ here.
    """
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_dir(work_dir: str, key: str, seed: int) -> str:
    return osp.join(work_dir, 'runs', key, f'seed{seed}')


def init_checkpoint_path(work_dir: str, seed: int) -> str:
    return osp.join(work_dir, 'init', f'seed{seed}.pth')


def detector_state(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """The model's state without the weighting's parameters and buffers."""
    return {
        key: value.detach().clone()
        for key, value in model.state_dict().items()
        if WEIGHTING_KEY not in key
    }


def detector_digest(cfg: Config) -> str:
    """The :func:`config_digest` of ``cfg.model`` without its loss
    weighting (every ``weighting`` key), which the initial detector weights
    leave out: strategies that differ only in the weighting share them."""
    def strip(node):
        if isinstance(node, dict):
            return {key: strip(value) for key, value in node.items()
                    if key != 'weighting'}
        if isinstance(node, (list, tuple)):
            return [strip(value) for value in node]
        return node

    return config_digest(Config(dict(model=strip(cfg.model.to_dict()))))


def make_init_checkpoint(reference_cfg: Config, seed: int,
                         path: str) -> str:
    """Draw the initial detector weights of ``seed`` once and save them.

    The weights come from the reference strategy's model, initialised as the
    runner would initialise it (``init_weights``) under ``seed``. An
    existing file is kept, so every strategy of a seed, in this call or a
    later one, starts from the same weights. The file records the digest of
    the detector's config (:func:`detector_digest`), and one drawn for
    another detector is refused (files from before the digest was recorded
    are taken as they are); so is one whose layer names or shapes differ
    from the model the reference builds now (its code changed).
    """
    digest = detector_digest(reference_cfg)
    if osp.exists(path):
        saved = torch.load(path, map_location='cpu', weights_only=True)
        meta = saved.get('meta', {})
        if meta.get('detector_digest', digest) != digest:
            raise ValueError(
                f'{path} holds the initial weights of another detector '
                f'(digest {meta["detector_digest"]}, the reference\'s model '
                f'now gives {digest}): its layers would not match; delete '
                'the init folder and the runs made from it, or use another '
                'work dir')
        model = _build_detector(reference_cfg, seed, init=False)
        _check_layers(path, saved['state_dict'], detector_state(model))
        return path
    model = _build_detector(reference_cfg, seed)
    buffer = io.BytesIO()
    torch.save(dict(state_dict=detector_state(model),
                    meta=dict(seed=seed, detector_digest=digest)), buffer)
    atomic_write(path, buffer.getvalue())  # calls may draw the same seed
    return path


def _build_detector(cfg: Config, seed: int,
                    init: bool = True) -> torch.nn.Module:
    """``cfg.model`` initialised as the runner would under ``seed``
    (``init=False``: as built, for its layer names and shapes only). The
    random states of Python, numpy and torch are those of before the call:
    drawing a seed's weights leaves the caller's stream where it was."""
    import random

    import numpy as np
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.runner import set_random_seed
    register_all_modules(init_default_scope=True)
    states = random.getstate(), np.random.get_state()
    devices = range(torch.cuda.device_count()) \
        if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            set_random_seed(seed)
            model = MODELS.build(copy.deepcopy(cfg.model))
            if init:
                model.init_weights()
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
    return model


def _check_layers(path: str, saved: Dict[str, torch.Tensor],
                  expected: Dict[str, torch.Tensor]) -> None:
    """Refuse saved weights whose names or shapes differ from the model's:
    the runner loads them non-strictly, so such layers would stay random
    (a change to the model's code that leaves its config alone)."""
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    shapes = sorted(key for key in set(saved) & set(expected)
                    if saved[key].shape != expected[key].shape)
    if missing or unexpected or shapes:
        raise ValueError(
            f'{path} does not fit the reference\'s model: missing '
            f'{missing[:3]}, unexpected {unexpected[:3]}, other shapes '
            f'{shapes[:3]} ({len(missing)}, {len(unexpected)} and '
            f'{len(shapes)} in all); delete the init folder and the runs '
            'made from it, or use another work dir')


def run_config(cfg: Config, seed: int, work_dir: str, init_path: str,
               max_iters: Optional[int] = None) -> Config:
    """The config of one benchmark run: the strategy's config with the
    seed's data order and initial detector weights.

    Args:
        cfg (Config): The strategy's config.
        seed (int): The paired seed.
        work_dir (str): Where the run writes.
        init_path (str): The seed's initial detector weights.
        max_iters (int, optional): Override the strategy's budget (the
            schedule is stretched or shrunk to it). Defaults to None.
    """
    cfg = copy.deepcopy(cfg)
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = work_dir
    # Weights only: the weighting starts from its own initialisation and the
    # optimizer, schedule and iteration count from zero.
    cfg.load_from = init_path
    cfg.resume = False
    if max_iters is not None:
        old = cfg.train_cfg.max_iters
        cfg.train_cfg.max_iters = max_iters
        cfg.train_cfg.val_interval = max(1, round(
            cfg.train_cfg.val_interval * max_iters / old))
        for scheduler in cfg.param_scheduler:
            begin = round(scheduler.get('begin', 0) * max_iters / old)
            end = round(scheduler.get('end', old) * max_iters / old)
            scheduler['begin'] = min(begin, max_iters - 1)
            scheduler['end'] = max(min(end, max_iters), scheduler['begin'] + 1)
        cfg.default_hooks.checkpoint.interval = max_iters
    return cfg


def load_scalars(work_dir: str) -> List[dict]:
    """Every record of the run's ``vis_data/scalars.json`` (newest log)."""
    files = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        return []
    with open(files[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def summarize_run(records: List[dict],
                  terms: List[str],
                  map_key: str = 'pascal_voc/mAP',
                  metric_by_epoch: bool = False) -> dict:
    """mAP curve, final mAP and the mean logged weight of every term.

    Validation records carry ``map_key``. With ``metric_by_epoch=False``
    (``LoggerHook(log_metric_by_epoch=False)``, as the demo configs log) a
    validation record's ``step`` is the iteration it ran at. With True its
    ``step`` is an epoch counter, and the curve takes the iteration of the
    last training record logged before it instead (up to one logging
    interval early).
    """
    curve, last_iter = [], 0
    sums = {term: 0.0 for term in terms}
    count = 0
    for record in records:
        if map_key in record:
            step = last_iter if metric_by_epoch else int(record['step'])
            curve.append((step, float(record[map_key])))
            continue
        if 'iter' in record or 'loss' in record:
            last_iter = int(record.get('iter', record.get('step', 0)))
            if all(f'slf_w_{term}' in record for term in terms):
                for term in terms:
                    sums[term] += float(record[f'slf_w_{term}'])
                count += 1
    mean_weights = {term: sums[term] / count
                    for term in terms} if count else {}
    return dict(
        mAP=curve[-1][1] if curve else float('nan'),
        curve=curve,
        mean_weights=mean_weights)


def save_result(path: str, result: dict) -> None:
    atomic_write(path, json.dumps(result, indent=1).encode())


def load_results(work_dir: str) -> Dict[str, Dict[int, dict]]:
    """``{strategy key: {seed: result}}`` of every finished run."""
    results: Dict[str, Dict[int, dict]] = {}
    pattern = osp.join(work_dir, 'runs', '*', 'seed*', RESULT_FILE)
    for path in sorted(glob.glob(pattern)):
        try:
            with open(path) as f:
                result = json.load(f)
        except json.JSONDecodeError as error:
            raise ValueError(
                f'{path} is not valid JSON ({error}): the run was cut off '
                'while saving or the file was edited; delete its folder to '
                'train it again') from None
        folder = osp.basename(osp.dirname(path))
        if not isinstance(result, dict) or f'seed{result.get("seed")}' \
                != folder:
            seed = result.get('seed') if isinstance(result, dict) else None
            raise ValueError(
                f'{path} records seed {seed!r} but lies in {folder}: a '
                'result moved or copied by hand would replace that seed\'s '
                'run; put it back in its own seed folder')
        key = osp.basename(osp.dirname(osp.dirname(path)))
        if result.get('strategy', key) != key:
            raise ValueError(
                f'{path} records strategy {result["strategy"]!r} but lies in '
                f'runs/{key}: a result copied by hand would count as '
                f'{key}\'s run; put it back in runs/{result["strategy"]}')
        results.setdefault(key, {})[int(result['seed'])] = result
    return results


def paired_seeds(results: Dict[str, Dict[int, dict]], key: str,
                 reference: str) -> List[int]:
    """Seeds finished by both a strategy and the reference, sorted."""
    return sorted(
        set(results.get(key, {})) & set(results.get(reference, {})))


def select_results(results: Dict[str, Dict[int, dict]],
                   seeds: Optional[Sequence[int]] = None,
                   keys: Optional[Sequence[str]] = None,
                   reference: Optional[str] = None
                   ) -> Dict[str, Dict[int, dict]]:
    """The runs of the given seeds and strategies (None: all of them); the
    reference is kept with the strategies. Strategies left without a run
    are dropped."""
    if keys is not None:
        keys = set(keys) | ({reference} if reference else set())
    selected = {}
    for key, runs in results.items():
        if keys is not None and key not in keys:
            continue
        runs = {seed: run for seed, run in runs.items()
                if seeds is None or seed in seeds}
        if runs:
            selected[key] = runs
    return selected


def forget_global_instances() -> None:
    """Drop mmengine's process-wide loggers, visualizers and message hubs.

    ``ManagerMixin`` keeps one instance per name and per class (the runner's
    ``DetLocalVisualizer`` is not in ``Visualizer._instance_dict``); a new
    Runner would otherwise write into the previous run's files.
    """
    from mmengine.utils import ManagerMixin
    pending = [ManagerMixin]
    while pending:
        cls = pending.pop()
        cls._instance_dict.clear()
        pending.extend(cls.__subclasses__())
