# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Pick the checkpoint an automatic resume starts from.

mmengine resumes from the file that ``<work_dir>/last_checkpoint`` names and
stops when it cannot be read, although the checkpoint before it is usually
intact. :func:`find_resume_checkpoint` walks back from the named file to the
newest readable one and reports every file it skipped and why.
"""
import os
import os.path as osp
import re
import zipfile
import zlib
from typing import List, Optional, Tuple

from .safe_load import CheckpointError, safe_torch_load

LAST_CHECKPOINT = 'last_checkpoint'


def read_last_checkpoint(work_dir: str) -> Optional[str]:
    """The path ``<work_dir>/last_checkpoint`` names, or None without one."""
    record = osp.join(work_dir, LAST_CHECKPOINT)
    if not osp.isfile(record):
        return None
    with open(record) as file:
        return file.read().strip() or None


def checkpoint_step(filename: str, filename_tmpl: str) -> Optional[int]:
    """The step in ``filename`` written by ``filename_tmpl.format(step)``.

    Args:
        filename (str): A file name or path.
        filename_tmpl (str): The checkpoint hook's template, e.g.
            'iter_{}.pth'.

    Returns:
        int, optional: The step, or None when the name does not fit.
    """
    parts = re.split(r'\{[^{}]*\}', filename_tmpl)
    if len(parts) != 2:
        return None
    pattern = re.escape(parts[0]) + r'(\d+)' + re.escape(parts[1])
    match = re.fullmatch(pattern, osp.basename(filename))
    return int(match.group(1)) if match else None


def older_checkpoints(latest: str, filename_tmpl: str) -> List[str]:
    """Checkpoints beside ``latest`` named by ``filename_tmpl``, newest
    first, all older than ``latest`` (all of them when ``latest``'s own name
    does not fit the template)."""
    directory = osp.dirname(latest)
    if not osp.isdir(directory):
        return []
    latest_step = checkpoint_step(latest, filename_tmpl)
    found = []
    for name in os.listdir(directory):
        step = checkpoint_step(name, filename_tmpl)
        path = osp.join(directory, name)
        if step is None or path == latest or not osp.isfile(path):
            continue
        if latest_step is None or step < latest_step:
            found.append((step, path))
    return [path for _, path in sorted(found, reverse=True)]


def checkpoint_problem(filename: str) -> Optional[str]:
    """Why ``filename`` cannot be resumed from, or None when it can.

    A checkpoint of ``torch.save`` is a zip archive: every record is checked
    against its CRC-32 (every byte is read, nothing is unpickled). Anything
    else goes through :func:`safe_torch_load`.

    Args:
        filename (str): The checkpoint.

    Returns:
        str, optional: The problem, e.g. 'the file is truncated or not a
        PyTorch checkpoint (...)'.
    """
    if not osp.isfile(filename):
        return 'the file does not exist'
    if zipfile.is_zipfile(filename):
        try:
            with zipfile.ZipFile(filename) as archive:
                broken = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError,
                zlib.error) as error:
            return f'the zip archive is damaged ({type(error).__name__}: ' \
                f'{error})'
        if broken is not None:
            return f'the zip archive is damaged (record {broken} fails ' \
                'its CRC-32 check)'
        return None
    try:
        safe_torch_load(filename)
    except CheckpointError as error:
        return error.reason
    return None


def find_resume_checkpoint(
        work_dir: str,
        filename_tmpl: str) -> Tuple[Optional[str], List[Tuple[str, str]]]:
    """The newest readable checkpoint to resume from, and what was skipped.

    Candidates are the file ``last_checkpoint`` names, then the older
    checkpoints beside it (:func:`older_checkpoints`), newest first. A
    checkpoint on other storage (a URI such as ``s3://...``, from a
    ``CheckpointHook`` with such an ``out_dir``) is returned unchecked, for
    that storage's loader to read as mmengine would.

    Args:
        work_dir (str): The run's work directory.
        filename_tmpl (str): The checkpoint hook's file name template.

    Returns:
        tuple: The path (None without ``last_checkpoint``: a fresh start,
        as in mmengine) and ``[(path, problem), ...]`` of the files skipped.

    Raises:
        CheckpointError: No candidate is readable; the message lists each
            with its problem.
    """
    latest = read_last_checkpoint(work_dir)
    if latest is None:
        return None, []
    if '://' in latest:
        return latest, []
    skipped = []
    for path in [latest] + older_checkpoints(latest, filename_tmpl):
        problem = checkpoint_problem(path)
        if problem is None:
            return path, skipped
        skipped.append((path, problem))
    tried = '\n'.join(f'  {path}: {problem}' for path, problem in skipped)
    raise CheckpointError(
        f'cannot resume automatically in {work_dir}: no readable checkpoint '
        f'(last_checkpoint names {latest}). Tried, newest first:\n{tried}\n'
        'Resume from a checkpoint you have elsewhere with --resume PATH, or '
        'start afresh in a new work_dir (or without --resume).')
