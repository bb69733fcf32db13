# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Tuned fixed lambdas: a random search on a validation split.

The bar a learned weighting has to clear is not YOLO's hand-set lambdas but
the best fixed lambdas a modest search finds. The search here draws
settings log-uniformly around YOLO's ``(coord, pred, obj, noobj) =
(5, 1, 1, 0.5)`` (:func:`sample_lambdas`), trains each once on the demo's
``train.txt`` and ranks them by VOC mAP on ``val.txt``, both held out of
``trainval.txt`` (:func:`write_validation_split`); the test images are never
read. The winner is written as a strategy config (:mod:`.tuned_config`)
that the benchmark then trains on all of trainval and scores on test.
:func:`validation_config` alone (``tools/benchmark.py --num-val``) scores any
strategy on the same split, e.g. to choose a learning rate.

The validation images come from the trainval pool of source scans: they
show the same handwritten digits as training images, composited anew, while
the test images use scans held out of both. Validation mAP is therefore
optimistic, by the same amount for every setting, which leaves the ranking
its use.
"""
import copy
import math
import os
import os.path as osp
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config, ConfigDict

from mmdet_slf.engine.checkpoint.atomic_io import atomic_write

YOLO_LAMBDAS = (5.0, 1.0, 1.0, 0.5)  # coord, pred, obj, noobj
SIGNIFICANT_DIGITS = 3  # lambdas are rounded so a config shows them whole
TRAIN_FILE = 'train.txt'
VAL_FILE = 'val.txt'


def _read_ids(path: str) -> List[str]:
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _write_if_changed(path: str, ids: Sequence[str]) -> None:
    text = '\n'.join(ids) + '\n'
    if osp.isfile(path):
        with open(path) as f:
            if f.read() == text:
                return
    atomic_write(path, text.encode())  # concurrent writers never collide


def write_validation_split(ann_dir: str, num_val: int,
                           seed: int) -> Tuple[str, str]:
    """Split ``trainval.txt`` into ``train.txt`` and ``val.txt``.

    The names keep VOC's meaning: trainval is the disjoint union of train
    and val. ``num_val`` ids are drawn without replacement under ``seed``;
    both files list their ids in trainval's order. They are written to a
    folder of their own, ``val{num_val}-seed{seed}`` beside trainval.txt,
    so that calls with other sizes or seeds, concurrent ones included,
    never change each other's lists. ``test.txt`` is read only to check
    that it shares no id with trainval, and never written. A file that
    already holds the split is left untouched, so calls are idempotent.

    Args:
        ann_dir (str): The ``ImageSets/Main`` folder holding trainval.txt.
        num_val (int): Images held out for validation, 1 to
            ``len(trainval) - 1``.
        seed (int): Seed of the draw.

    Returns:
        tuple[str, str]: The paths of train.txt and val.txt.
    """
    trainval = _read_ids(osp.join(ann_dir, 'trainval.txt'))
    repeated = sorted({i for i in trainval if trainval.count(i) > 1})
    if repeated:
        raise ValueError(f'trainval.txt of {ann_dir} lists {repeated[:5]} '
                         'more than once; a split by position could put one '
                         'image in both train and val')
    if not 1 <= num_val < len(trainval):
        raise ValueError(f'num_val must be in [1, {len(trainval) - 1}] '
                         f'(trainval.txt of {ann_dir} has {len(trainval)} '
                         f'images), got {num_val}')
    test_path = osp.join(ann_dir, 'test.txt')
    if osp.isfile(test_path):
        shared = set(trainval) & set(_read_ids(test_path))
        if shared:
            raise ValueError(f'trainval.txt and test.txt of {ann_dir} share '
                             f'{len(shared)} ids (e.g. {min(shared)}); a '
                             'validation split of trainval would hold test '
                             'images')
    rng = np.random.default_rng(seed)
    held_out = set(rng.permutation(len(trainval))[:num_val].tolist())
    val = [image_id for i, image_id in enumerate(trainval) if i in held_out]
    train = [
        image_id for i, image_id in enumerate(trainval) if i not in held_out
    ]
    split_dir = osp.join(ann_dir, f'val{num_val}-seed{seed}')
    os.makedirs(split_dir, exist_ok=True)
    paths = osp.join(split_dir, TRAIN_FILE), osp.join(split_dir, VAL_FILE)
    for path, ids in zip(paths, (train, val)):
        _write_if_changed(path, ids)
    return paths


def prepare_validation_split(cfg: Config, num_val: int,
                             seed: int) -> Tuple[str, str]:
    """Make the config's demo set where it is missing, then split it.

    Args:
        cfg (Config): A strategy config; its ``demo_data`` (when present)
            gives the parameters of the digits set, its training
            dataset's ``data_root`` and ``ann_file`` the trainval list.
        num_val (int): See :func:`write_validation_split`.
        seed (int): See :func:`write_validation_split`.

    Returns:
        tuple[str, str]: The paths of train.txt and val.txt.
    """
    dataset = cfg.train_dataloader.dataset
    if 'demo_data' in cfg:
        from mmdet_slf.demo_data import make_digits_voc

        # Reuses a complete set made with the same parameters.
        make_digits_voc(
            root=dataset.data_root,
            subset=dataset.data_prefix.sub_data_root.strip('/'),
            progress=False,
            **cfg.demo_data)
    ann_dir = osp.join(dataset.data_root, osp.dirname(dataset.ann_file))
    return write_validation_split(ann_dir, num_val, seed)


def _round(value: float, direction: Optional[str] = None) -> float:
    """``value`` at :data:`SIGNIFICANT_DIGITS` significant digits: the
    nearest, or the next one up (``ROUND_CEILING``) or down
    (``ROUND_FLOOR``)."""
    if direction is None:
        return float(f'{value:.{SIGNIFICANT_DIGITS}g}')
    exact = Decimal(repr(float(value)))  # the shortest decimal of the float
    step = Decimal(1).scaleb(exact.adjusted() - SIGNIFICANT_DIGITS + 1)
    return float(exact.quantize(step, rounding=direction))


def sample_lambdas(base: Sequence[float] = YOLO_LAMBDAS,
                   num_settings: int = 8,
                   spread: float = 4.0,
                   seed: int = 0) -> List[List[float]]:
    """Draw lambda settings log-uniformly around ``base``.

    Every lambda of every setting is drawn independently:
    ``lambda_ij = base_j * spread ** u_ij`` with ``u_ij ~ U(-1, 1)``, so
    ``ln(lambda_ij / base_j)`` is uniform on ``[-ln spread, ln spread]``
    (mean 0, variance ``ln(spread)^2 / 3``) and ``lambda_ij`` lies in
    ``[base_j / spread, base_j * spread]`` with median ``base_j``. The
    draws fill the settings in order, so the first ``n`` settings of a
    larger search under the same seed are the ``n`` of a smaller one. Each
    lambda is rounded to 3 significant digits (a shift of at most 0.005 in
    its log) and then kept within the bounds, themselves rounded inward to
    3 significant digits (``1/3`` to ``0.334``), so that every lambda is the
    value a config shows, and trains, and lies within the bounds.

    Args:
        base (Sequence[float]): The centre, one positive value per term.
            Defaults to YOLO's (5, 1, 1, 0.5).
        num_settings (int): Settings to draw. Defaults to 8.
        spread (float): The factor, > 1, bounding each lambda around its
            base. Defaults to 4.0.
        seed (int): Seed of the draws. Defaults to 0.

    Returns:
        list[list[float]]: ``num_settings`` settings of ``len(base)``
        lambdas.
    """
    base = np.asarray(base, dtype=np.float64)
    if base.ndim != 1 or base.size == 0 or not (base > 0).all():
        raise ValueError(f'base must be a non-empty sequence of positive '
                         f'lambdas, got {base.tolist()}')
    if num_settings < 1:
        raise ValueError(f'num_settings must be >= 1, got {num_settings}')
    if not spread > 1:
        raise ValueError(f'spread must be > 1, got {spread}')
    rng = np.random.default_rng(seed)
    unit = rng.uniform(-1.0, 1.0, size=(num_settings, base.size))
    lambdas = base * spread**unit  # [num_settings, num_terms]
    rounded = [[_round(value) for value in row] for row in lambdas]
    low = [_round(value, ROUND_CEILING) for value in base / spread]
    high = [_round(value, ROUND_FLOOR) for value in base * spread]
    if any(a > b for a, b in zip(low, high)):
        raise ValueError(f'spread {spread} leaves no lambda of '
                         f'{SIGNIFICANT_DIGITS} significant digits around '
                         f'{base.tolist()}; use a wider spread')
    return np.clip(rounded, low, high).tolist()


def tuning_config(cfg: Config, lambdas: Sequence[float],
                  data_split: Sequence[str]) -> Config:
    """The config of one setting of the search.

    The strategy config with a :class:`FixedWeighting` of ``lambdas``,
    trained on the train list and validated and tested on the val list, so
    that the mAP it logs is validation mAP.

    Args:
        cfg (Config): The strategy config the search starts from (e.g.
            ``configs/demo/benchmark/fixed.py``).
        lambdas (Sequence[float]): One weight per loss term.
        data_split (Sequence[str]): The train and val lists, as
            :func:`write_validation_split` returns them.

    Returns:
        Config: A new config; ``cfg`` is not changed.
    """
    weighting = cfg.model.bbox_head.get('weighting', {})
    old = weighting.get('weights') or weighting.get('prior') or \
        weighting.get('init_weights')
    if old is not None and len(old) != len(lambdas):
        raise ValueError(f'lambdas must give one weight per term '
                         f'({len(old)}), got {list(lambdas)}')
    cfg = validation_config(cfg, data_split)
    cfg.model.bbox_head.weighting = ConfigDict(
        type='FixedWeighting', weights=[float(v) for v in lambdas])
    cfg.strategy_name = f'Fixed {format_lambdas(lambdas)}'
    return cfg


def validation_config(cfg: Config, data_split: Sequence[str]) -> Config:
    """The config trained on the train list and validated and tested on the
    val list, so that every mAP it logs is validation mAP.

    The val list holds ids of the training dataset's trainval set, so the
    validation (and test) dataset reads them where the training dataset
    reads its images: its ``data_root`` and ``data_prefix`` are the training
    dataset's, whatever the strategy's val dataset set. A config that
    points only the training dataset at another set (``--cfg-options
    train_dataloader.dataset.data_root=...``) is therefore validated on
    that set's held-out images, never on images of the set the val dataset
    named (some of them its test images). Copying them, rather than
    refusing when they differ, is what cannot go wrong: the val ids can
    only be read from the set they were drawn from.

    Args:
        cfg (Config): A strategy config.
        data_split (Sequence[str]): The train and val lists, as
            :func:`write_validation_split` returns them.

    Returns:
        Config: A new config; ``cfg`` is not changed.
    """
    train_file, val_file = data_split
    cfg = copy.deepcopy(cfg)
    train_set = cfg.train_dataloader.dataset
    # Absolute: a relative ann_file would be read below data_root.
    train_set.ann_file = osp.abspath(train_file)
    val_set = cfg.val_dataloader.dataset
    val_set.ann_file = osp.abspath(val_file)
    for key in ('data_root', 'data_prefix'):
        if key in train_set:
            val_set[key] = copy.deepcopy(train_set[key])
        else:
            val_set.pop(key, None)
    cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    return cfg


def format_lambdas(lambdas: Sequence[float]) -> str:
    """``(5, 1, 1, 0.5)``: the lambdas as a config name shows them."""
    return '(' + ', '.join(f'{value:g}' for value in lambdas) + ')'


def select_best(results: Sequence[dict]) -> int:
    """Index of the result with the highest ``mAP`` (the first on a tie);
    results without a finite mAP are passed over."""
    scores = [result.get('mAP', math.nan) for result in results]
    finite = [i for i, score in enumerate(scores) if math.isfinite(score)]
    if not finite:
        raise ValueError(f'no setting has a finite validation mAP: {scores}')
    return max(finite, key=lambda i: (scores[i], -i))


def summarize_search(settings: Sequence[Sequence[float]],
                     results: Sequence[dict],
                     terms: Sequence[str],
                     **meta) -> dict:
    """The record of a search: every setting with its validation mAP and
    minutes, the best setting, and the total cost.

    Args:
        settings (Sequence[Sequence[float]]): The lambdas of each setting.
        results (Sequence[dict]): The saved run of each setting (``mAP``,
            ``train_minutes``), in the same order.
        terms (Sequence[str]): The names of the loss terms.
        **meta: Kept as they are (seed, spread, split sizes, command...).

    Returns:
        dict: ``settings`` (``lambdas``, ``mAP``, ``train_minutes`` each),
        ``terms``, ``best``, ``lambdas`` (the best's), ``num_runs``,
        ``train_minutes`` and ``meta``'s keys.
    """
    best = select_best(results)
    rows = [
        dict(lambdas=list(lambdas), mAP=result['mAP'],
             train_minutes=result['train_minutes'])
        for lambdas, result in zip(settings, results)
    ]
    return dict(
        meta,
        terms=list(terms),
        settings=rows,
        best=best,
        lambdas=list(settings[best]),
        num_runs=len(rows),
        train_minutes=float(sum(row['train_minutes'] for row in rows)))


def format_table(search: dict) -> List[str]:
    """The settings as Markdown table lines, the best one marked."""
    head = ['setting'] + search['terms'] + ['val mAP', 'minutes']
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    for index, row in enumerate(search['settings']):
        mark = ' (best)' if index == search['best'] else ''
        cells = [f'{index}{mark}'] + [f'{v:g}' for v in row['lambdas']]
        cells += [f'{row["mAP"]:.4f}', f'{row["train_minutes"]:.1f}']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines
