# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Safe checkpoint loading for mmengine 0.10.7 on torch >= 2.6.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses the
``HistoryBuffer`` and numpy objects that mmengine writes into every
checkpoint (``message_hub``), so ``resume=True`` and ``load_from`` fail. We
allow exactly those globals with ``torch.serialization.add_safe_globals``
and keep ``weights_only=True``: a checkpoint crafted to run code when
unpickled is still refused. The local-file loader of mmengine is replaced by
one that turns torch's errors into messages naming the file and the problem.

Nothing here changes mmengine or torch when imported: a config switches the
safe loader on by importing
:mod:`mmdet_slf.engine.checkpoint.install_safe_loading` (``custom_imports``),
or code calls :func:`enable_safe_loading`.
"""
import os.path as osp
import pickle
from typing import Callable, List, Optional

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded, with the reason and the fix.

    Args:
        message (str): The full message.
        reason (str, optional): The problem alone, without file name or fix
            (what auto-resume reports for a file it skips). Defaults to None
            (the message).
    """

    def __init__(self, message: str, reason: Optional[str] = None) -> None:
        super().__init__(message)
        self.reason = message if reason is None else reason


def mmengine_safe_globals() -> List[Callable]:
    """The globals mmengine 0.10.7 checkpoints need beyond torch's defaults.

    ``HistoryBuffer`` (message hub scalars) and the numpy pieces it pickles:
    arrays (``_reconstruct``, ``ndarray``, ``dtype`` and its per-type
    classes) and numpy scalars (``scalar``); ``OneCycleParamScheduler``,
    whose state holds its annealing function. Their methods come through
    :func:`history_buffer_getattr`, not the real ``getattr``.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.optim.scheduler.param_scheduler import \
        OneCycleParamScheduler
    try:  # numpy >= 2 moved the module; pickles name the one that wrote them
        from numpy._core import multiarray as core_multiarray
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as core_multiarray
    globals_ = [
        HistoryBuffer, OneCycleParamScheduler, core_multiarray._reconstruct,
        core_multiarray.scalar, np.ndarray, np.dtype
    ]
    for name in dir(np.dtypes):
        if name.endswith('DType'):
            globals_.append(getattr(np.dtypes, name))
    return globals_


def history_buffer_getattr(obj, name: str):
    """Stand-in for ``builtins.getattr`` during weights-only loads.

    ``HistoryBuffer`` pickles its statistics methods (``HistoryBuffer.min``
    and friends) as ``getattr(HistoryBuffer, 'min')``, and
    ``OneCycleParamScheduler`` its annealing function as
    ``getattr(OneCycleParamScheduler, '_annealing_cos')``. Allowing the real
    ``getattr`` would let a checkpoint reach any attribute of any allowed
    object, so only those exact look-ups are answered.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.optim.scheduler.param_scheduler import \
        OneCycleParamScheduler
    allowed = {'min', 'max', 'mean', 'current'}
    allowed.update(HistoryBuffer._statistics_methods)
    annealing = {'_annealing_cos', '_annealing_linear'}
    if isinstance(name, str) and (obj is HistoryBuffer and name in allowed or
                                  obj is OneCycleParamScheduler
                                  and name in annealing):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'checkpoint asks for getattr({obj!r}, {name!r}); only '
        f'HistoryBuffer statistics methods {sorted(allowed)} and '
        f'OneCycleParamScheduler {sorted(annealing)} are allowed')


def _numpy_aliases() -> List[tuple]:
    """``(global, name)`` pairs for the pre-2.0 ``numpy.core`` spellings."""
    try:
        from numpy._core import multiarray as core_multiarray
    except ImportError:  # pragma: no cover - numpy 1.x names them natively
        return []
    return [(core_multiarray._reconstruct,
             'numpy.core.multiarray._reconstruct'),
            (core_multiarray.scalar, 'numpy.core.multiarray.scalar')]


def enable_safe_loading() -> None:
    """Allow mmengine's checkpoint globals in weights-only loads and make
    :func:`load_from_local` mmengine's loader of local files.

    Both are process-wide, which is why ``import mmdet_slf`` does not do it:
    the project's configs import
    :mod:`mmdet_slf.engine.checkpoint.install_safe_loading`, which calls
    this. Idempotent.
    """
    if safe_loading_enabled():
        return
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(
            mmengine_safe_globals() + _numpy_aliases() +
            [(history_buffer_getattr, 'builtins.getattr')])
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', force=True)(load_from_local)


def safe_loading_enabled() -> bool:
    """Whether mmengine loads local checkpoints with :func:`load_from_local`.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    return CheckpointLoader._schemes.get('') is load_from_local


def safe_torch_load(filename: str,
                    map_location: Optional[str] = 'cpu') -> dict:
    """``torch.load(weights_only=True)`` with errors that name the problem.

    Args:
        filename (str): Path of the checkpoint.
        map_location (str, optional): As in ``torch.load``.
            Defaults to 'cpu'.

    Returns:
        dict: The checkpoint.

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointError: The file is truncated or not a checkpoint, or it
            holds objects that would run code when unpickled.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename} does not exist')
    try:
        return torch.load(filename, map_location=map_location,
                          weights_only=True)
    except pickle.UnpicklingError as error:
        if 'Unsupported operand' in str(error):
            # An opcode no pickle has: the bytes are not a checkpoint at all.
            raise _unreadable(filename, error,
                              'not a zip archive nor a pickle') from error
        raise CheckpointError(
            f'refusing to load checkpoint {filename}: it contains objects '
            'that are not allowed in a weights-only load (loading them could '
            f'run arbitrary code). torch says: {_refused_global(error)}. '
            'Only load checkpoints you trust; re-save it with plain tensors '
            'and dicts, or allow the named global with '
            'torch.serialization.add_safe_globals if you trust its source.'
        ) from error
    except MemoryError:
        raise  # a large file on a small machine, not a damaged one
    except Exception as error:
        # Damaged bytes reach the unpickler's internals as well: besides
        # the RuntimeError, EOFError, BadZipFile and ValueError of truncated
        # files, they raise KeyError (an unknown memo), IndexError (an empty
        # stack) or struct.error. Whichever, the file cannot be read.
        raise _unreadable(filename, error) from error


def _refused_global(error: Exception) -> str:
    """The line of torch's message that names what was refused (a
    ``GLOBAL`` or a ``getattr``), else its first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if 'GLOBAL' in line or 'getattr(' in line:
            return line
    return lines[0] if lines else type(error).__name__


def _unreadable(filename: str,
                error: Exception,
                reason: Optional[str] = None) -> CheckpointError:
    if reason is None:
        reason = str(error).splitlines()[0] if str(error) else ''
    problem = ('the file is truncated or not a PyTorch checkpoint '
               f'({type(error).__name__}: {reason})')
    return CheckpointError(
        f'cannot read checkpoint {filename}: {problem}. '
        'Re-download it or point to another checkpoint.', reason=problem)


def load_from_local(filename: str, map_location: Optional[str] = None):
    """mmengine ``CheckpointLoader`` scheme for local files (weights-only)."""
    return safe_torch_load(filename, map_location=map_location)
