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
numbers checked, without the runs. Given several archives (or work dirs),
the tool writes one page from the runs they keep together
(:func:`read_archives`), and that page's own archive holds them all.

The file::

    {"format": "mmdet-slf benchmark runs", "version": 1,
     "work_dir": "work_dirs/benchmark",       # where the runs were made
     "timing": {...},                         # optional
     "runs": [{"strategy": "fixed", "seed": 0, "mAP": ..., ...,
               "weight_records": [{"iter": 50, "slf_w_coord": 5.0, ...}]}]}

An archive put together from several names the work dirs of its runs in a
list (``"work_dir": ["work_dirs/a", "work_dirs/b"]``) and the archives it was
read from in ``"sources"``.
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmdet_slf.engine.checkpoint.atomic_io import atomic_write
from .runs import load_results, load_scalars, run_dir

FORMAT = 'mmdet-slf benchmark runs'
VERSION = 1
# Machine-local paths: the run dir is rebuilt from the work dir and key.
LOCAL_FIELDS = ('work_dir', )
# What a run gave: a strategy and seed kept by two archives is the same run
# when these agree (its minutes, environment and config digest may differ:
# a config edited in a way that changes no training gives another digest
# and the same run).
OUTCOME_FIELDS = ('mAP', 'curve', 'mean_weights', 'max_iters', 'eval_split',
                  'data')
# Runs are paired by seed only when they share these (one budget, the same
# images scored, the same demo set).
PAIRING_FIELDS = ('max_iters', 'eval_split', 'data')

Results = Dict[str, Dict[int, dict]]


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
                  work_dir: Union[str, List[str]],
                  timing: Optional[dict] = None,
                  sources: Optional[List[str]] = None) -> None:
    """Write the runs (with their ``weight_records``) and ``timing`` to
    ``path``, sorted by strategy and seed, without machine-local paths.
    ``work_dir`` is a list, and ``sources`` the archives read, for runs put
    together from several archives."""
    entries = []
    for key in sorted(results):
        for seed in sorted(results[key]):
            entry = {name: value for name, value in results[key][seed].items()
                     if name not in LOCAL_FIELDS}
            entry['strategy'], entry['seed'] = key, seed
            entries.append(entry)
    head = dict(format=FORMAT, version=VERSION, work_dir=work_dir)
    if sources:
        head['sources'] = list(sources)
    if timing is not None:
        head['timing'] = timing
    # One run a line, so that a page's new runs show as lines in a diff.
    text = json.dumps(head)[:-1] + ', "runs": [\n' + ',\n'.join(
        json.dumps(entry, separators=(',', ':')) for entry in entries) + \
        '\n]}\n'
    atomic_write(path, text.encode())


def read_archive(
    path: str
) -> Tuple[Dict[str, Dict[int, dict]], Union[str, List[str]], Optional[dict]]:
    """``(results, work_dir, timing)`` of an archive: the results as
    :func:`runs.load_results` gives them for a work dir, and the work dir
    its runs were made in (a list of them for an archive put together from
    several, see :func:`read_archives`)."""
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
    work_dir = archive['work_dir']
    if not (isinstance(work_dir, str) or isinstance(work_dir, list) and
            work_dir and all(isinstance(w, str) for w in work_dir)):
        raise ValueError(f'{path}: "work_dir" is neither a path nor a list '
                         f'of paths: {work_dir!r}')
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
    return results, work_dir, archive.get('timing')


def read_source(
    path: str
) -> Tuple[Results, Union[str, List[str]], Optional[dict], List[str]]:
    """``(results, work_dir, timing, sources)`` of an archive or of a work
    dir (a folder: its finished runs, with their logged weights, and its
    ``timing.json``). ``sources`` are the archives an archive was put
    together from, or ``[path]``."""
    if not osp.isdir(path):
        results, work_dir, timing = read_archive(path)
        with open(path) as f:
            return results, work_dir, timing, json.load(f).get(
                'sources') or [path]
    results = load_results(path)
    if not results:
        raise ValueError(f'{path} is a folder without finished runs '
                         '(runs/<strategy>/seed<s>/result.json)')
    attach_weight_records(results, path)
    timing = None
    if osp.exists(osp.join(path, 'timing.json')):
        with open(osp.join(path, 'timing.json')) as f:
            timing = json.load(f)
    return results, path, timing, [path]


def read_archives(
    paths: Sequence[str]
) -> Tuple[Results, List[str], Optional[dict], List[str]]:
    """``(results, work_dirs, timing, sources)``: the runs of ``paths``,
    archives or work dirs (:func:`read_source`), together, as one page shows
    them.

    A strategy and seed kept by two archives (a reference run again beside
    each new row, say) is taken once, from the first, when the two agree
    on every :data:`OUTCOME_FIELDS`; when they do not, they are two
    different runs and the archives are refused. Runs that cannot be
    paired by seed, of another budget, scored on other images or trained
    on another demo set (:data:`PAIRING_FIELDS`, where recorded), are
    refused too, as a work dir refuses them. At most one archive may bring
    a cost table. ``work_dirs`` are the work dirs of the runs, each once,
    and ``sources`` the paths read (for an archive put together from
    several, the paths it was read from)."""
    if not paths:
        raise ValueError('no archive given')
    results: Results = {}
    work_dirs: List[str] = []
    sources: List[str] = []
    timing, timing_from = None, None
    origin: Dict[Tuple[str, int], str] = {}
    for path in paths:
        runs, work_dir, its_timing, its_sources = read_source(path)
        for name in [work_dir] if isinstance(work_dir, str) else work_dir:
            if name not in work_dirs:
                work_dirs.append(name)
        sources += [s for s in its_sources if s not in sources]
        if its_timing is not None:
            if timing is not None:
                raise ValueError(
                    f'{timing_from} and {path} both hold a cost table '
                    '(--timing) and a page shows one; give the page one of '
                    'them')
            timing, timing_from = its_timing, path
        for key, by_seed in runs.items():
            for seed, run in by_seed.items():
                kept = results.get(key, {}).get(seed)
                if kept is None:
                    results.setdefault(key, {})[seed] = run
                    origin[key, seed] = path
                    continue
                differ = [name for name in OUTCOME_FIELDS
                          if _field(kept, name) != _field(run, name)]
                if differ:
                    raise ValueError(
                        f'{key} seed {seed} is in {origin[key, seed]} and in '
                        f'{path} with another {", ".join(differ)}: two '
                        'different runs of one strategy and seed; give one '
                        'of the archives, or another --strategies')
    if len(paths) > 1:  # one archive is one work dir's, as it was made
        _check_pairing(results, origin)
    return results, work_dirs, timing, sources


def _field(run: dict, name: str):
    """A run's ``name``; results from before the split was recorded were
    all scored on the test images."""
    return run.get(name, 'test' if name == 'eval_split' else None)


def _check_pairing(results: Results, origin: Dict[Tuple[str, int],
                                                  str]) -> None:
    """Refuse runs put together from several archives that a work dir
    would not have held together (see :func:`read_archives`)."""
    for name in PAIRING_FIELDS:
        seen: Dict[object, Tuple[str, int]] = {}
        for key in sorted(results):
            for seed, run in sorted(results[key].items()):
                if _field(run, name) is not None:
                    seen.setdefault(_field(run, name), (key, seed))
        if len(seen) > 1:
            (a, first), (b, second) = list(seen.items())[:2]
            raise ValueError(
                f'runs of different {name} cannot be paired by seed: '
                f'{first[0]} seed {first[1]} ({origin[first]}) has {a!r}, '
                f'{second[0]} seed {second[1]} ({origin[second]}) has {b!r}')
