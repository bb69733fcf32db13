# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Annealing of the Gumbel-softmax temperature ``tau`` of Eq. (6)."""
import math
from typing import Optional, Union

import torch
from torch import Tensor

from .checks import is_finite_number

SCHEDULE_TYPES = ('exp', 'linear', 'cosine')


def check_temperature_schedule(schedule: Optional[dict]) -> Optional[dict]:
    """Validate ``dict(type=..., final=..., num_iters=...)``; None is off.

    Args:
        schedule (dict, optional): ``type`` in :data:`SCHEDULE_TYPES`,
            ``final`` > 0 the temperature reached after ``num_iters`` >= 1
            training calls.

    Returns:
        dict, optional: A copy of the schedule.
    """
    if schedule is None:
        return None
    if not isinstance(schedule, dict):
        raise ValueError(
            'temperature_schedule must be None or dict(type=..., final=..., '
            f'num_iters=...), got {schedule!r}')
    schedule = dict(schedule)
    if schedule.get('type') not in SCHEDULE_TYPES:
        raise ValueError(f'temperature_schedule.type must be one of '
                         f'{SCHEDULE_TYPES}, got {schedule.get("type")!r}')
    final = schedule.get('final')
    if not is_finite_number(final) or not final > 0:
        raise ValueError(
            f'temperature_schedule.final must be > 0, got {final!r}')
    num_iters = schedule.get('num_iters')
    if not is_finite_number(num_iters) or not num_iters >= 1:
        raise ValueError('temperature_schedule.num_iters must be >= 1, '
                         f'got {num_iters!r}')
    unknown = sorted(set(schedule) - {'type', 'final', 'num_iters'})
    if unknown:
        raise ValueError(f'temperature_schedule has unknown keys {unknown}; '
                         "allowed: ['type', 'final', 'num_iters']")
    return schedule


def scheduled_temperature(start: float, final: float, num_iters: float,
                          kind: str, step: Union[int, Tensor]) -> Tensor:
    """``tau`` after ``step`` training calls, held at ``final`` afterwards.

    With progress ``t = min(step / num_iters, 1)``:
    ``'exp'``: ``start * (final / start) ** t``; ``'linear'``:
    ``start + (final - start) * t``; ``'cosine'``:
    ``final + (start - final) * (1 + cos(pi * t)) / 2``. Computed on the
    device of ``step`` (a buffer), so reading it needs no host sync.

    Args:
        start (float): ``tau`` at step 0.
        final (float): ``tau`` from ``num_iters`` on.
        num_iters (float): Length of the schedule in training calls.
        kind (str): One of :data:`SCHEDULE_TYPES`.
        step (int | Tensor): Training calls so far.

    Returns:
        Tensor: ``tau``, a float scalar.
    """
    step = torch.as_tensor(step)
    progress = (step.float() / float(num_iters)).clamp(max=1.0)
    if kind == 'exp':
        return start * (final / start)**progress
    if kind == 'linear':
        return start + (final - start) * progress
    if kind == 'cosine':
        return final + 0.5 * (start - final) * (
            1 + torch.cos(math.pi * progress))
    raise ValueError(f'temperature_schedule.type must be one of '
                     f'{SCHEDULE_TYPES}, got {kind!r}')
