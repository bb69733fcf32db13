# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The runs behind a results page, kept in one small JSON file.

A work dir holds checkpoints and logs (tens of MB per run) and stays on the
machine that trained; a page's statistics need a few numbers per run. The
archive keeps, for every run, its ``result.json`` (seed, final mAP, the mAP
curve, mean weights, the environment it ran in) and the weights it logged
during training (the ``slf_*`` scalars of its training records, what the
weight figure draws), plus the work dir's ``timing.json`` when there is one.
:func:`tools/benchmark.py --report-only --archive FILE` writes a page from
it as from the work dir, so a committed page can be written again, and its
numbers checked, without the runs.

The file::

    {"format": "mmdet-slf benchmark runs", "version": 1,
     "work_dir": "work_dirs/benchmark",       # where the runs were made
     "timing": {...},                         # optional
     "runs": [{"strategy": "fixed", "seed": 0, "mAP": ..., ...,
               "weight_records": [{"iter": 50, "slf_w_coord": 5.0, ...}]}]}
"""
import json
from typing import Dict, List, Optional, Tuple

from mmdet_slf.engine.checkpoint.atomic_io import atomic_write
from .runs import load_scalars, run_dir

FORMAT = 'mmdet-slf benchmark runs'
VERSION = 1
# Machine-local paths: the run dir is rebuilt from the work dir and key.
LOCAL_FIELDS = ('work_dir', )


def weight_records(records: List[dict]) -> List[dict]:
    """The training records of a run cut to their iteration and ``slf_*``
    scalars (validation records carry no ``slf_`` key and are dropped)."""
    kept = []
    for record in records:
        scalars = {key: value for key, value in record.items()
                   if key.startswith('slf_')}
        if scalars and 'iter' in record:
            kept.append(dict(iter=record['iter'], **scalars))
    return kept


def attach_weight_records(results: Dict[str, Dict[int, dict]],
                          work_dir: str) -> None:
    """Give every run of a work dir its :func:`weight_records`, read from
    its logs (a run whose logs are gone gets none)."""
    for key, runs in results.items():
        for seed, result in runs.items():
            if 'weight_records' not in result:
                result['weight_records'] = weight_records(
                    load_scalars(run_dir(work_dir, key, seed)))


def write_archive(path: str, results: Dict[str, Dict[int, dict]],
                  work_dir: str, timing: Optional[dict] = None) -> None:
    """Write the runs (with their ``weight_records``) and ``timing`` to
    ``path``, sorted by strategy and seed, without machine-local paths."""
    entries = []
    for key in sorted(results):
        for seed in sorted(results[key]):
            entry = {name: value for name, value in results[key][seed].items()
                     if name not in LOCAL_FIELDS}
            entry['strategy'], entry['seed'] = key, seed
            entries.append(entry)
    head = dict(format=FORMAT, version=VERSION, work_dir=work_dir)
    if timing is not None:
        head['timing'] = timing
    # One run a line, so that a page's new runs show as lines in a diff.
    text = json.dumps(head)[:-1] + ', "runs": [\n' + ',\n'.join(
        json.dumps(entry, separators=(',', ':')) for entry in entries) + \
        '\n]}\n'
    atomic_write(path, text.encode())


def read_archive(
        path: str) -> Tuple[Dict[str, Dict[int, dict]], str, Optional[dict]]:
    """``(results, work_dir, timing)`` of an archive: the results as
    :func:`runs.load_results` gives them for a work dir."""
    with open(path) as f:
        try:
            archive = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f'{path} is not JSON: {err}') from err
    if not isinstance(archive, dict) or archive.get('format') != FORMAT:
        raise ValueError(f'{path} is not an archive of benchmark runs (no '
                         f'"format": "{FORMAT}")')
    if archive.get('version') != VERSION:
        raise ValueError(f'{path} is version {archive.get("version")} of '
                         f'the archive; this code reads version {VERSION}')
    missing = [name for name in ('runs', 'work_dir') if name not in archive]
    if missing:
        raise ValueError(f'{path} has no {" and no ".join(missing)}')
    results: Dict[str, Dict[int, dict]] = {}
    for index, entry in enumerate(archive['runs']):
        if not isinstance(entry, dict) or not {'strategy', 'seed'} <= set(
                entry):
            raise ValueError(f'{path}: run {index} names no strategy and '
                             f'seed: {entry!r}')
        key, seed = entry['strategy'], int(entry['seed'])
        if seed in results.get(key, {}):
            raise ValueError(f'{path} holds {key} seed {seed} twice')
        results.setdefault(key, {})[seed] = dict(entry)
    return results, archive['work_dir'], archive.get('timing')
