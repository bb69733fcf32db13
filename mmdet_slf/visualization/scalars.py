# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Reading the scalars a run logged (``<run>/vis_data/scalars.json``)."""
import glob
import json
import os.path as osp
import warnings
from typing import Dict, List, Tuple, Union

import numpy as np

Records = List[dict]
Series = Dict[str, Tuple[np.ndarray, np.ndarray]]


def find_scalars_file(path: str, require: str = 'slf_') -> str:
    """The ``scalars.json`` to read for ``path``.

    ``path`` may be the json file itself, a run directory (``<timestamp>``,
    holding ``vis_data/scalars.json``) or a work dir; for a work dir the
    latest run whose scalars contain a key with ``require`` is chosen, so a
    later test-only run does not hide the training run.

    Args:
        path (str): File, run directory or work directory.
        require (str): Substring a key must contain. Defaults to 'slf_'.

    Returns:
        str: Path of the scalars file.
    """
    if osp.isfile(path):
        return path
    direct = osp.join(path, 'vis_data', 'scalars.json')
    if osp.isfile(direct):
        return direct
    candidates = sorted(
        glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')),
        key=lambda p: osp.basename(osp.dirname(osp.dirname(p))))
    if not candidates:
        raise FileNotFoundError(
            f'no vis_data/scalars.json under {path}: train with the default '
            "visualizer (vis_backends=[dict(type='LocalVisBackend')])")
    for candidate in reversed(candidates):
        if any(require in key for record in load_scalars(candidate)
               for key in record):
            return candidate
    if require == 'slf_':
        raise KeyError(f'no key containing "{require}" in {candidates}: add '
                       "custom_hooks=[dict(type='SLFLoggerHook')] to the "
                       'config')
    raise KeyError(f'no key containing "{require}" in {candidates}')


def load_scalars(path: str, require: str = 'slf_') -> Records:
    """Records of a ``scalars.json`` (one JSON object per line); ``path``
    and ``require`` as in :func:`find_scalars_file` except that a file is
    read as is."""
    if not osp.isfile(path):
        path = find_scalars_file(path, require)
    try:
        with open(path) as f:
            lines = [line for line in f if line.strip()]
    except UnicodeDecodeError as error:
        raise ValueError(f'{path} is not an mmengine scalars.json (one JSON '
                         f'record per line): not text ({error})') from None
    records = []
    for index, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if index == 0 or index < len(lines) - 1:
                raise ValueError(
                    f'{path} is not an mmengine scalars.json (one JSON '
                    f'record per line): line {index + 1}: {error}') from error
            # a run stopped while it wrote its last record
            warnings.warn(f'{path}: its last line is cut off ({error}); '
                          f'reading the {len(records)} records before it')
            continue
        if not isinstance(record, dict):
            raise ValueError(
                f'{path} is not an mmengine scalars.json (one JSON record '
                f'per line): line {index + 1} is a JSON '
                f'{type(record).__name__}, not an object')
        records.append(record)
    return records


def scalar_series(records: Records,
                  key: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one scalar in logging order; the step is
    ``step`` (validation lines of an iteration-based run carry the
    iteration there) or else ``iter``."""
    xs, ys = [], []
    for record in records:
        x = record.get('step', record.get('iter'))
        value = record.get(key)
        if x is None or not isinstance(value, (int, float)):
            continue
        xs.append(x)
        ys.append(value)
    return np.asarray(xs), np.asarray(ys, dtype=float)


def slf_series(records: Records) -> Series:
    """``{key: (iters, values)}`` of every scalar whose key contains
    ``slf_``, in logging order; x is ``iter`` (train lines) or ``step``."""
    series: Dict[str, Tuple[list, list]] = {}
    for record in records:
        x = record.get('iter', record.get('step'))
        if x is None:
            continue
        for key, value in record.items():
            if 'slf_' in key and isinstance(value, (int, float)):
                xs, ys = series.setdefault(key, ([], []))
                xs.append(x)
                ys.append(value)
    return {k: (np.asarray(xs), np.asarray(ys, dtype=float))
            for k, (xs, ys) in series.items()}


def as_series(source: Union[str, Records, Series]) -> Series:
    """:func:`slf_series` of a path or of records; a series as is."""
    if isinstance(source, str):
        return slf_series(load_scalars(source))
    if isinstance(source, dict):
        return source
    return slf_series(source)
