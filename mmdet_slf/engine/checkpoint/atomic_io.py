# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Write files so that a reader sees the old content or the new, never a
part: write a temporary file in the same folder, flush and fsync it, rename
it over the target, fsync the folder.

mmengine's ``LocalBackend.put`` opens the target itself and writes into it,
so a process killed during ``save_checkpoint`` (a full disk, a pre-empted
node, ``kill -9``) leaves a truncated ``iter_<n>.pth`` that ``last_checkpoint``
may already name. :class:`AtomicLocalBackend` is that backend with atomic
``put`` and ``put_text``; :class:`CrashSafeCheckpointHook` saves through it.
"""
import glob
import os
import os.path as osp
import uuid
from typing import List, Union

from mmengine.fileio import LocalBackend, register_backend

ATOMIC_BACKEND = 'atomic_local'
# '.<name>.tmp-<pid>-<random>': hidden, and never matched by a checkpoint
# file name template such as 'iter_{}.pth'.
TEMP_INFIX = '.tmp-'


def fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable (no-op where folders cannot be
    opened, e.g. on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(filepath: Union[str, os.PathLike], data: bytes) -> None:
    """Replace ``filepath`` by ``data`` atomically.

    The bytes go to ``.<name>.tmp-<pid>-<random>`` in the same folder (a
    rename is atomic only within one file system), which is flushed and
    fsynced before it is renamed over ``filepath``. A failure before the
    rename removes the temporary file and leaves ``filepath`` as it was; a
    killed process leaves the temporary file, which
    :func:`remove_stale_temporaries` deletes.

    Args:
        filepath (str | PathLike): The file to write.
        data (bytes): Its new content.
    """
    filepath = osp.abspath(os.fspath(filepath))
    directory, name = osp.split(filepath)
    os.makedirs(directory, exist_ok=True)
    temporary = osp.join(
        directory,
        f'.{name}{TEMP_INFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}')
    # 0o666 minus the umask, as a plain open() would create it.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, 'wb') as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, filepath)
    except BaseException:
        if osp.exists(temporary):
            os.remove(temporary)
        raise
    fsync_dir(directory)


def stale_temporaries(directory: str) -> List[str]:
    """Temporary files of :func:`atomic_write` left in ``directory`` by a
    killed process."""
    return sorted(glob.glob(osp.join(glob.escape(directory),
                                     f'.*{TEMP_INFIX}*')))


def remove_stale_temporaries(directory: str) -> List[str]:
    """Delete what :func:`stale_temporaries` lists; returns the paths.

    Call it only while no other process writes into ``directory``.
    """
    removed = []
    for path in stale_temporaries(directory):
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


@register_backend(ATOMIC_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` and ``put_text`` replace the
    target atomically (:func:`atomic_write`).

    Selected by name, ``backend_args=dict(backend='atomic_local')``; no URI
    prefix maps to it, so nothing else changes backend.
    """

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        """Write ``obj`` to ``filepath`` atomically."""
        atomic_write(filepath, obj)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, os.PathLike],
                 encoding: str = 'utf-8') -> None:
        """Write the text ``obj`` to ``filepath`` atomically."""
        atomic_write(filepath, obj.encode(encoding))
