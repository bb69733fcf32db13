# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Where half precision is too coarse: Gumbel and stratified draws, the
decision signals' guards against 0, tempered powers, running averages."""
import torch
from torch import Tensor, nn

HALF_DTYPES = (torch.float16, torch.bfloat16)


def at_least_float32(tensor: Tensor) -> Tensor:
    """``tensor`` in float32 if it is float16 or bfloat16; any other tensor
    as it is (the same object, so float32 and float64 arithmetic is
    unchanged)."""
    return tensor.float() if tensor.dtype in HALF_DTYPES else tensor


def buffers_before_conversion(module: nn.Module) -> dict:
    """``module``'s floating buffers wider than half precision, by place, to
    be handed to :func:`keep_buffers_wide` after a conversion."""
    return {(id(sub), name): buffer
            for sub in module.modules()
            for name, buffer in sub._buffers.items()
            if buffer is not None and buffer.is_floating_point()
            and buffer.dtype not in HALF_DTYPES}


def keep_buffers_wide(module: nn.Module, before: dict) -> None:
    """Undo a ``.half()`` for ``module``'s buffers: each float16 or bfloat16
    buffer becomes its value from ``before`` (on the new device), or float32
    where it had none. A running average in float16 stalls (``0.99 m + 0.01
    x`` rounds back to ``m``: a scale-free signal of constant terms settled
    at 1.02-1.07 instead of 1), and a value rounded to float16 on the way
    would stay rounded (1e5 becomes inf). Parameters keep the dtype asked
    for."""
    for sub in module.modules():
        for name, buffer in sub._buffers.items():
            if buffer is not None and buffer.dtype in HALF_DTYPES:
                wide = before.get((id(sub), name))
                sub._buffers[name] = buffer.float() if wide is None else \
                    wide.to(buffer.device, copy=True)
