# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Compare a checkpoint's weights with a model before loading them.

mmengine loads checkpoints with ``strict=False`` and only logs the keys that
did not fit, so resuming (or evaluating) with a checkpoint of another model
trains (or scores) a half-random network. These helpers list what does not
fit so the caller can refuse with a message that names the keys.
"""
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Dict, List, Sequence, Tuple

from torch import Tensor

from .safe_load import CheckpointError


def checkpoint_state_dict(checkpoint: dict,
                          source: str = 'the checkpoint',
                          revise_keys: Sequence[Tuple[str, str]] = (
                              (r'^module\.', ''), )) -> Dict[str, Tensor]:
    """The model weights of a loaded checkpoint, with keys revised as
    mmengine's ``Runner.load_checkpoint`` revises them.

    Raises:
        CheckpointError: ``checkpoint`` (named ``source``) is no dict, or
            its ``state_dict`` is no dict with string keys.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f'{source} holds a {type(checkpoint).__name__}, not a dict of '
            'weights: not a model checkpoint')
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, Mapping) or not all(
            isinstance(key, str) for key in state_dict):
        raise CheckpointError(
            f'the state_dict of {source} is a {type(state_dict).__name__}, '
            'not a dict of named weights')
    revised = OrderedDict()
    for key, value in state_dict.items():
        for pattern, replacement in revise_keys:
            key = re.sub(pattern, replacement, key)
        revised[key] = value
    return revised


def compare_state_dicts(model_state: Dict[str, Tensor],
                        checkpoint_state: Dict[str, Tensor]) -> dict:
    """Keys missing from the checkpoint, unexpected in it, or of another
    shape.

    Args:
        model_state (dict[str, Tensor]): ``model.state_dict()``.
        checkpoint_state (dict[str, Tensor]): The checkpoint's weights.

    Returns:
        dict: ``missing`` and ``unexpected`` (sorted key lists),
        ``mismatched`` (``(key, checkpoint shape, model shape)``) and
        ``matched`` (number of keys that fit).
    """
    missing = sorted(set(model_state) - set(checkpoint_state))
    unexpected = sorted(set(checkpoint_state) - set(model_state))
    mismatched = []
    matched = 0
    for key in sorted(set(model_state) & set(checkpoint_state)):
        model_shape = tuple(getattr(model_state[key], 'shape', ()))
        ckpt_shape = tuple(getattr(checkpoint_state[key], 'shape', ()))
        if model_shape != ckpt_shape:
            mismatched.append((key, ckpt_shape, model_shape))
        else:
            matched += 1
    return dict(missing=missing, unexpected=unexpected,
                mismatched=mismatched, matched=matched)


def _head(keys: List, max_keys: int) -> str:
    shown = ', '.join(str(k) for k in keys[:max_keys])
    more = len(keys) - max_keys
    return shown + (f', ... ({more} more)' if more > 0 else '')


def describe_mismatch(report: dict, max_keys: int = 8) -> str:
    """One line per kind of mismatch, at most ``max_keys`` keys each."""
    lines = []
    if report['missing']:
        lines.append(f'  {len(report["missing"])} model keys missing from '
                     f'the checkpoint: {_head(report["missing"], max_keys)}')
    if report['unexpected']:
        lines.append(f'  {len(report["unexpected"])} checkpoint keys not in '
                     f'the model: {_head(report["unexpected"], max_keys)}')
    if report['mismatched']:
        shapes = [f'{key} (checkpoint {list(ckpt)} vs model {list(model)})'
                  for key, ckpt, model in report['mismatched']]
        lines.append(f'  {len(shapes)} keys of another shape: '
                     f'{_head(shapes, max_keys)}')
    return '\n'.join(lines)


def has_mismatch(report: dict) -> bool:
    """Whether anything in ``report`` does not fit."""
    return bool(report['missing'] or report['unexpected']
                or report['mismatched'])
