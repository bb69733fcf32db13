# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Statistics of the whole distributed batch for strategies with state.

A strategy whose buffers follow the training batches (running means, FAMO's
logits, DWA's averages) must see the same numbers on every rank, or the
replicas' weights drift apart: mmengine does not broadcast buffers, and each
rank sees its own images. :func:`mean_over_ranks` averages a per-term
statistic over the ranks with one ``all_reduce``; the mean of the ranks'
batch-level terms is the batch-level term of the whole batch, because each
rank's terms are normalised by its own batch and DDP averages the ranks'
gradients.
"""
from typing import Union

import torch
from mmengine.dist import all_reduce, get_world_size
from torch import Tensor


def mean_over_ranks(statistic: Tensor,
                    finite: Union[bool, Tensor] = True) -> Tensor:
    """The mean of ``statistic`` over the ranks whose terms are finite.

    Every rank must call it in every training step, a rank with non-finite
    terms too (it passes ``finite=False`` and contributes nothing): a rank
    that left the collective out would pair its next collective with this
    one. The statistics of that step are then discarded with the step (the
    weighting restores its buffers, and so does
    :class:`SkipNonFiniteOptimWrapper`).

    Args:
        statistic (Tensor): Per-term statistic ``[n]``, detached.
        finite (bool | Tensor): Whether this rank's terms are finite; a
            0-dim bool tensor is used on the device, without a host read.
            Defaults to True.

    Returns:
        Tensor: ``[n]``: ``statistic`` itself in a single process.
    """
    if get_world_size() == 1:
        return statistic
    flag = torch.as_tensor(finite, device=statistic.device).reshape(1)
    # One collective: the finite ranks' sum and their count. ``where``
    # rather than a product, so that a NaN statistic contributes 0.
    packed = torch.cat([
        torch.where(flag, statistic.detach().float(),
                    statistic.new_zeros((), dtype=torch.float32)),
        flag.float()
    ])
    all_reduce(packed, op='sum')
    return (packed[:-1] / packed[-1].clamp(min=1)).to(statistic.dtype)
