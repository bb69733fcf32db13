# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Build-time checks of weighting options; each message names its key."""
import math
from typing import Dict, Optional, Sequence, Union

import torch
from mmcv.cnn.bricks.drop import DropPath
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.dropout import _DropoutNd

Lambdas = Optional[Union[Sequence[float], Dict[str, float]]]


def is_finite_number(value) -> bool:
    """A finite int or float; a bool is not a number here."""
    return isinstance(value, (int, float)) and not isinstance(
        value, bool) and math.isfinite(value)


def as_lambdas(weights: Lambdas, terms: Sequence[str], key: str) -> Tensor:
    """Turn ``[5, 1, ...]`` or ``{'coord': 5, ...}`` into a tensor ``[n]``.

    Args:
        weights (Sequence[float] | dict, optional): One value per term, in
            ``terms`` order or by name. None means all ones.
        terms (Sequence[str]): Term names.
        key (str): Config key named in error messages.

    Returns:
        Tensor: The values, float32, ``[n]``.
    """
    if weights is None:
        return torch.ones(len(terms))
    if isinstance(weights, dict):
        unknown = sorted(set(weights) - set(terms))
        missing = [t for t in terms if t not in weights]
        if unknown or missing:
            raise KeyError(f'{key} names must match terms {list(terms)}; '
                           f'unknown {unknown}, missing {missing}')
        weights = [weights[t] for t in terms]
    try:
        values = [float(v) for v in weights]
    except (TypeError, ValueError):
        raise ValueError(
            f'{key} must be one number per term {list(terms)}, as a list or '
            f'a {{term: value}} dict, got {weights!r}') from None
    if len(values) != len(terms):
        raise ValueError(f'{key} must have one entry per term {list(terms)}, '
                         f'got {values}')
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(
            f'{key} entries must be finite and >= 0, got {values}')
    return torch.tensor(values, dtype=torch.float32)


def positive_lambdas(weights: Lambdas, terms: Sequence[str],
                     key: str) -> Optional[Tensor]:
    """:func:`as_lambdas` with every entry > 0; None stays None."""
    if weights is None:
        return None
    lambdas = as_lambdas(weights, terms, key)
    if (lambdas <= 0).any():
        raise ValueError(f'{key} entries must be > 0, got {lambdas.tolist()}')
    return lambdas


def resolve_scale(scale: Union[None, float, str], lambdas: Optional[Tensor],
                  num_terms: int) -> float:
    """The sum of the weights; None keeps the fixed baseline's total.

    Args:
        scale (float, optional): The configured value.
        lambdas (Tensor, optional): The prior lambdas ``[n]``.
        num_terms (int): ``n``, the total when there is no prior.

    Returns:
        float: ``scale``, or ``sum(lambdas)``, or ``n``.
    """
    if scale is None:
        return float(lambdas.sum()) if lambdas is not None else \
            float(num_terms)
    if not is_finite_number(scale) or scale <= 0:
        raise ValueError(f'scale must be a number > 0 or None, got {scale!r}')
    return float(scale)


def check_term_name(name, where: str = '') -> str:
    """A term name is a non-empty string without ``loss``: a weighting
    returns ``loss_<term>`` (summed into the objective) and logs
    ``slf_w_<term>``, which must stay out of it. ``where`` names the config
    key in the message (e.g. ``' in terms'``)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f'term names must be non-empty strings, got '
                         f'{name!r}')
    if 'loss' in name:
        raise ValueError(
            f'term name {name!r}{where} must not contain "loss": diagnostics '
            f'named slf_w_<term> would be added to the objective')
    return name


def check_choice(key: str, value, choices: Sequence) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(
            f'{key} must be one of {tuple(choices)}, got {value!r}')


def check_count(key: str, value) -> int:
    """A whole number >= 1 (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{key} must be an int >= 1, got {value!r}')
    return value


def check_momentum(key: str, value) -> float:
    """A momentum in ``[0, 1)``."""
    if not is_finite_number(value) or not 0 <= value < 1:
        raise ValueError(f'{key} must be in [0, 1), got {value!r}')
    return float(value)


def check_repeatable(module: nn.Module, key: str, reason: str) -> None:
    """Refuse a module whose two calls on one input can differ or change
    its state in training: torch's dropouts and mmcv's ``DropPath`` draw
    masks, and a batch or instance norm that tracks running statistics
    updates them on every call. A layer of another library that draws
    random numbers in its forward is not known here."""
    for name, layer in module.named_modules():
        if isinstance(layer, (_DropoutNd, DropPath)) or (
                isinstance(layer, _NormBase) and layer.track_running_stats):
            raise ValueError(f'{key} has {type(layer).__name__} at '
                             f'{name or "its top"!r}: {reason}')


def check_nonnegative(key: str, value) -> float:
    """A finite number >= 0."""
    if not is_finite_number(value) or value < 0:
        raise ValueError(f'{key} must be >= 0, got {value!r}')
    return float(value)


def check_positive(key: str, value) -> float:
    """A finite number > 0."""
    if not is_finite_number(value) or value <= 0:
        raise ValueError(f'{key} must be > 0, got {value!r}')
    return float(value)


def stack_terms(losses: Dict[str, Tensor], terms: Sequence[str],
                owner: str) -> Tensor:
    """Stack ``{'loss_<term>': value}`` in ``terms`` order: ``[n]`` for
    scalars, ``[N, n]`` for per-image vectors ``[N]``. Exactly the terms,
    all floating point (or Python numbers), all of one shape, or a
    ``KeyError``, ``TypeError`` or ``ValueError`` naming what is wrong;
    ``owner`` is the weighting the message names."""
    expected = [f'loss_{name}' for name in terms]
    missing = [key for key in expected if key not in losses]
    unknown = [key for key in losses if key not in expected]
    if missing or unknown:
        raise KeyError(
            f'{owner} was configured with terms {list(terms)} (keys '
            f'{expected}) but got keys {sorted(losses)}; missing {missing}, '
            f'unknown {unknown}')
    for key in expected:
        value = losses[key]
        if not isinstance(value, (Tensor, int, float)) \
                or isinstance(value, bool):
            raise TypeError(
                f'{key} must be a tensor (a scalar or a per-image vector '
                f'[N]), got {type(value).__name__}; a list of per-level '
                'losses must be summed first (SLFDetector sums the keys '
                'of a term)')
        if isinstance(value, Tensor) and not value.is_floating_point():
            raise TypeError(
                f'{key} must be a floating-point tensor, got {value.dtype}: '
                'the weights would be cast to it')
    # Python numbers as the default float (an int would become int64).
    values = [
        losses[key] if isinstance(losses[key], Tensor) else torch.tensor(
            float(losses[key])) for key in expected
    ]
    shapes = {tuple(v.shape) for v in values}
    if len(shapes) != 1 or len(next(iter(shapes))) > 1:
        raise ValueError(
            'raw loss terms must all be scalars or all be per-image '
            f'vectors [N]; got shapes '
            f'{dict(zip(expected, [tuple(v.shape) for v in values]))}')
    if next(iter(shapes)) == (0, ):
        raise ValueError('raw loss terms are per-image vectors of 0 '
                         'images; a batch must hold at least one')
    return torch.stack(values, dim=-1)
