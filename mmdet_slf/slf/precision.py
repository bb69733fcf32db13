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


def keep_buffers_in_float32(module: nn.Module) -> None:
    """Turn ``module``'s float16 and bfloat16 buffers back into float32 after
    a ``.half()``: a running average in float16 stalls (``0.99 m + 0.01 x``
    rounds back to ``m``), and a scale-free signal of constant terms then
    settled at 1.02-1.07 instead of 1. Parameters keep the dtype asked for.
    """
    for submodule in module.modules():
        for name, buffer in submodule._buffers.items():
            if buffer is not None and buffer.dtype in HALF_DTYPES:
                submodule._buffers[name] = buffer.float()
