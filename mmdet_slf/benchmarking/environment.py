# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Where a benchmark run was made: the record each result keeps, and the
results page's line on whether its runs share one environment."""
import hashlib
import os
import os.path as osp
import platform
from typing import Dict, List, Optional

import torch

# The packages whose version changes a run's numbers: the kernels (torch),
# the data (numpy, Pillow render the digits; OpenCV loads and resizes them)
# and the training loop.
ENVIRONMENT_PACKAGES = ('torch', 'numpy', 'opencv-python', 'pillow', 'mmcv',
                        'mmengine', 'mmdet')


def environment() -> Dict[str, Optional[str]]:
    """What a run's floating-point results depend on besides the code.

    Runs are bitwise reproducible in one environment, and a paired seed
    fixes the initial weights and the data order everywhere; but another
    CPU (its vector kernels round differently) or another version of these
    packages changes the rounding, and a training run amplifies it into a
    different mAP per seed. A result records its environment so that a
    page can say whether its runs come from one.

    Returns:
        dict: ``cpu``, ``threads`` and the version of each of
        :data:`ENVIRONMENT_PACKAGES` (None when not installed).
    """
    from importlib import metadata
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for package in ENVIRONMENT_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    # the vector instruction set ATen's kernels were dispatched to
    capability = torch.backends.cpu.get_cpu_capability()
    return dict(cpu=f'{cpu}, {capability}',
                threads=str(torch.get_num_threads()),
                **versions)


# What the digits generator writes and a run reads: the images, their
# boxes and the two image lists (a validation split adds lists of its own).
DATA_FILES = ('Annotations', 'JPEGImages', 'ImageSets/Main/trainval.txt',
              'ImageSets/Main/test.txt')


def data_fingerprint(subset_dir: str) -> str:
    """SHA-256 of a VOC-format set: every file of :data:`DATA_FILES` under
    ``subset_dir``, its path and its bytes, in sorted order.

    Two runs with the same seed, code and environment differ if they read
    different images: a set regenerated with another version of the
    rendering packages, or by other generator settings. A result records
    the fingerprint so that such runs are never paired.

    Args:
        subset_dir (str): The set's folder (``.../VOCdevkit/DIGITS``).

    Returns:
        str: The first 16 hex digits of the digest.
    """
    paths = []
    for entry in DATA_FILES:
        path = osp.join(subset_dir, entry)
        if osp.isdir(path):
            paths += [osp.join(entry, name) for name in os.listdir(path)]
        elif osp.isfile(path):
            paths.append(entry)
    if not paths:
        raise FileNotFoundError(
            f'no VOC-format set in {subset_dir}: none of {DATA_FILES}')
    digest = hashlib.sha256()
    for relative in sorted(paths):
        digest.update(relative.encode() + b'\0')
        with open(osp.join(subset_dir, relative), 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


def environments(results: Dict[str, Dict[int, dict]]) -> List[dict]:
    """The distinct recorded environments of ``results``, in first-seen
    order; runs saved before environments were recorded give none."""
    found: List[dict] = []
    for runs in results.values():
        for run in runs.values():
            recorded = run.get('environment')
            if recorded is not None and recorded not in found:
                found.append(recorded)
    return found


def describe_environment(recorded: dict) -> str:
    """One line: the CPU, threads and package versions of a run."""
    packages = ', '.join(f'{name} {version}'
                         for name, version in recorded.items()
                         if name not in ('cpu', 'threads') and version)
    return (f'{recorded.get("cpu")} ({recorded.get("threads")} threads), '
            f'{packages}')


def environment_note(results: Dict[str, Dict[int, dict]]) -> str:
    """The page's bullet on where its runs were made.

    A seed's numbers are bitwise reproducible in one environment, not
    necessarily across them (see :func:`environment`), so a page says
    whether its paired runs share one.
    """
    found = environments(results)
    sets = sorted({run['data'] for runs in results.values()
                   for run in runs.values() if run.get('data')})
    data = (f' **The runs read {len(sets)} different demo sets** '
            f'(fingerprints {", ".join(sets)}).') if len(sets) > 1 else ''
    total = sum(len(runs) for runs in results.values())
    unrecorded = sum(1 for runs in results.values() for run in runs.values()
                     if run.get('environment') is None)
    missing = (f' {unrecorded} of the {total} runs were saved without a '
               'record of their environment.') if unrecorded else ''
    missing += data
    if not found:
        return ('- Environment: not recorded (runs saved before results '
                f'recorded it).{data}')
    if len(found) == 1:
        return ('- Environment: every recorded run was made on '
                f'{describe_environment(found[0])}.{missing}')
    listed = '; '.join(f'({i}) {describe_environment(env)}'
                       for i, env in enumerate(found, 1))
    return (f'- **Environment: the runs come from {len(found)} '
            'environments**, so a seed\'s runs in different ones are paired '
            'in initial weights and data order but not rounded alike: '
            f'{listed}.{missing}')
