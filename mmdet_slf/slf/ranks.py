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
import torch
from mmengine.dist import all_reduce, get_world_size
from torch import Tensor


def mean_over_ranks(statistic: Tensor, finite: bool = True) -> Tensor:
    """The mean of ``statistic`` over the ranks whose terms are finite.

    Every rank must call it in every training step, a rank with non-finite
    terms too (it passes ``finite=False`` and contributes nothing): a rank
    that left the collective out would pair its next collective with this
    one. The statistics of that step are then discarded with the step (see
    :class:`SkipNonFiniteOptimWrapper`, which restores the buffers).

    Args:
        statistic (Tensor): Per-term statistic ``[n]``, detached.
        finite (bool): Whether this rank's terms are finite.
            Defaults to True.

    Returns:
        Tensor: ``[n]``: ``statistic`` itself in a single process.
    """
    if get_world_size() == 1:
        return statistic
    # One collective: the finite ranks' sum and their count.
    packed = torch.cat([
        statistic.detach().float() if finite else statistic.new_zeros(
            statistic.shape, dtype=torch.float32),
        statistic.new_full((1, ), 1.0 if finite else 0.0,
                           dtype=torch.float32)
    ])
    all_reduce(packed, op='sum')
    return (packed[:-1] / packed[-1].clamp(min=1)).to(statistic.dtype)
