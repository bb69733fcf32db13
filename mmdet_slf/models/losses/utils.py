# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""What the losses of this package share: checks of their callers'
reductions and weights."""
from typing import Optional

from torch import Tensor

REDUCTIONS = ('none', 'mean', 'sum')


def check_reduction(reduction: str, key: str = 'reduction') -> None:
    """Refuse a ``reduction`` that mmdet's ``weight_reduce_loss`` does not
    know, naming the argument ``key`` it came from."""
    if reduction not in REDUCTIONS:
        raise ValueError(
            f'{key} must be one of {REDUCTIONS}, got {reduction!r}')


def element_weight(weight: Optional[Tensor], loss: Tensor,
                   owner: str) -> Optional[Tensor]:
    """The caller's ``weight`` in the dtype of the element-wise ``loss`` and
    shaped to multiply it.

    A loss ``[N]`` takes a weight ``[N]``; a loss ``[N, C]`` takes ``[N]``
    (returned as ``[N, 1]``, one weight per sample), ``[N, 1]`` or
    ``[N, C]``. Any other shape is refused, naming ``owner``: a shape that
    merely broadcasts (``[C]`` on a square ``[C, C]`` loss, ``[1]``) would
    weight other elements than the caller meant, without an error.

    Args:
        weight (Tensor, optional): The weight given to the loss's forward.
        loss (Tensor): The unreduced loss, ``[N]`` or ``[N, C]``.
        owner (str): The loss's name, for the message.

    Returns:
        Tensor | None: The weight, or None when none was given.
    """
    if weight is None:
        return None
    num = loss.shape[0]
    shapes = [(num, )]
    if loss.dim() == 2:
        shapes += [(num, 1), tuple(loss.shape)]
    if tuple(weight.shape) not in shapes:
        raise ValueError(
            f'{owner}: weight must have shape '
            f'{" or ".join(str(list(s)) for s in shapes)} for its '
            f'element-wise loss of shape {list(loss.shape)}, got '
            f'{list(weight.shape)}')
    weight = weight.to(loss.dtype)
    return weight[:, None] if weight.dim() < loss.dim() else weight
