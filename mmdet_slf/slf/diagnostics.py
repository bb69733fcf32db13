# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The diagnostics of a weighting call as one vector, and the batch-level
terms they report."""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor


def pack_diagnostics(diagnostics: Dict[str, Tensor],
                     terms: Sequence[str]) -> Tuple[List[str], Tensor]:
    """Diagnostics as their keys and one detached float32 vector (one
    ``cat``), in the dict's order.

    A value is a scalar under its own key, or a vector ``[n]`` with one
    entry per term under a prefix ending in ``_``: ``{'slf_p_': p}`` gives
    ``slf_p_<term>`` for each term, without splitting ``p`` first.
    """
    keys: List[str] = []
    parts: List[Tensor] = []
    for key, value in diagnostics.items():
        if value.dim() == 0:
            keys.append(key)
            parts.append(value.reshape(1))
        elif value.shape == (len(terms), ) and key.endswith('_'):
            keys.extend(key + name for name in terms)
            parts.append(value)
        else:
            raise ValueError(
                f'diagnostic {key!r} must be a scalar, or a vector of one '
                f'value per term ({len(terms)}) under a key ending in "_", '
                f'got shape {tuple(value.shape)}')
    with torch.no_grad():
        values = torch.cat([
            part if part.dtype == torch.float32 else part.float()
            for part in parts
        ])
    return keys, values


def batch_level(raw: Tensor) -> Tensor:
    """Batch-level terms ``[n]`` of raw terms ``[n]`` or ``[N, n]`` (the sum
    over images, as :meth:`BaseWeighting.forward` applies them)."""
    return raw.sum(0) if raw.dim() == 2 else raw
