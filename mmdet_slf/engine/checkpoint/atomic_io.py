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
import functools
import glob
import hashlib
import os
import os.path as osp
import socket
import uuid
from typing import List, Union

from mmengine.fileio import LocalBackend, register_backend

ATOMIC_BACKEND = 'atomic_local'
# '.<name>.tmp-<pid>-<host>-<random>' (<host>: the host and its process-id
# namespace): hidden, and never matched by a checkpoint file name template
# such as 'iter_{}.pth'.
TEMP_INFIX = '.tmp-'


@functools.lru_cache(maxsize=None)
def _host_tag() -> str:
    """8 hex digits of the host's name and of the process-id namespace: a
    process id means something only there (a folder may be shared by
    several hosts, or by containers that share a host name)."""
    try:
        namespace = os.stat('/proc/self/ns/pid').st_ino
    except OSError:
        namespace = ''  # no /proc (macOS, Windows): the host name alone
    return hashlib.sha256(
        f'{socket.gethostname()}/{namespace}'.encode()).hexdigest()[:8]


def _process_alive(pid: int) -> bool:
    if os.name == 'nt':
        return True  # os.kill there ends the process: never ask
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # another user's process, or no such number: keep
    return True


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

    The bytes go to ``.<name>.tmp-<pid>-<host>-<random>`` in the same
    folder (a rename is atomic only within one file system), which is
    flushed and fsynced before it is renamed over ``filepath``. A failure
    before the rename removes the temporary file and leaves ``filepath`` as
    it was. A killed process leaves its temporary file; the next write of
    the same file on the same host deletes it once its process is gone
    (:func:`remove_dead_temporaries`), and
    :func:`remove_stale_temporaries` deletes every one in a folder.

    Args:
        filepath (str | PathLike): The file to write.
        data (bytes): Its new content.
    """
    filepath = osp.abspath(os.fspath(filepath))
    directory, name = osp.split(filepath)
    os.makedirs(directory, exist_ok=True)
    temporary = osp.join(
        directory, f'.{name}{TEMP_INFIX}{os.getpid()}-{_host_tag()}-'
        f'{uuid.uuid4().hex[:8]}')
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
    try:
        remove_dead_temporaries(filepath)
    except OSError:
        pass  # the write succeeded; a leftover that cannot go stays


def remove_dead_temporaries(filepath: str) -> List[str]:
    """Delete the temporary files of ``filepath`` whose writer ran on this
    host and is gone (killed during :func:`atomic_write`); returns them.
    Those of live processes, of other hosts or process-id namespaces, and
    of unknown form stay."""
    directory, name = osp.split(osp.abspath(os.fspath(filepath)))
    prefix, host = f'.{name}{TEMP_INFIX}', _host_tag()
    removed = []
    for path in glob.glob(osp.join(glob.escape(directory),
                                   glob.escape(prefix) + '*')):
        fields = osp.basename(path)[len(prefix):].split('-')
        if len(fields) != 3 or not (fields[0].isascii()
                                    and fields[0].isdigit()) \
                or fields[1] != host \
                or _process_alive(int(fields[0])):
            continue
        try:
            os.remove(path)
        except OSError:
            continue  # another writer removed it first, or it is not ours
        removed.append(path)
    return removed


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
