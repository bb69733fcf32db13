# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Where half precision is too coarse: Gumbel and stratified draws, the
decision signals' guards against 0, tempered powers."""
import torch
from torch import Tensor

HALF_DTYPES = (torch.float16, torch.bfloat16)


def at_least_float32(tensor: Tensor) -> Tensor:
    """``tensor`` in float32 if it is float16 or bfloat16; any other tensor
    as it is (the same object, so float32 and float64 arithmetic is
    unchanged)."""
    return tensor.float() if tensor.dtype in HALF_DTYPES else tensor
