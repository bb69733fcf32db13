# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Multiple Gumbel-softmax sampling, Eq. (5)-(10) of the SLF paper."""
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from .checks import check_count
from .precision import at_least_float32


def sample_gumbel(shape: torch.Size,
                  device: torch.device,
                  dtype: torch.dtype,
                  generator: Optional[torch.Generator] = None) -> Tensor:
    """Draw standard Gumbel noise ``G = -log(-log(U))``, ``U ~ U(0, 1)``.

    Args:
        shape (torch.Size): Shape of the returned tensor.
        device (torch.device): Device of the returned tensor.
        dtype (torch.dtype): Floating dtype of the returned tensor.
        generator (torch.Generator, optional): Random generator, for
            reproducible draws in tests. Defaults to None.

    Returns:
        Tensor: Gumbel noise of the given shape.
    """
    uniform = torch.rand(
        shape, device=device, dtype=dtype, generator=generator)
    # Clamp both ends: log(0) at either end would give +-inf noise.
    tiny = torch.finfo(dtype).tiny
    uniform = uniform.clamp(min=tiny, max=1.0 - torch.finfo(dtype).eps)
    return -torch.log(-torch.log(uniform))


def multiple_gumbel_softmax(logits: Tensor,
                            num_samples: int,
                            tau: Union[float, Tensor] = 1.0,
                            hard: bool = True,
                            generator: Optional[torch.Generator] = None
                            ) -> Tensor:
    """Average ``K`` Gumbel-softmax samples over the last dimension.

    Implements Eq. (9)-(10): ``p_hat = 1/K * sum_k G(p)`` where each ``G(p)``
    is a Gumbel-softmax sample of the categorical distribution
    ``softmax(logits)`` (Eq. 6). With ``hard=True`` every sample is the
    one-hot ``argmax`` in the forward pass and carries the gradient of the
    soft sample backward (straight-through), so ``p_hat`` lies on the grid
    ``{0, 1/K, ..., 1}`` and sums to one. The ``K`` samples are drawn in one
    vectorised call.

    Args:
        logits (Tensor): Unnormalised log-probabilities ``log p`` of shape
            ``[..., n]``.
        num_samples (int): Number of samples ``K``; must be >= 1.
        tau (float | Tensor): Gumbel-softmax temperature ``tau``; must be
            > 0. A tensor (a scheduled ``tau`` kept on the device) is not
            checked here, which would need a host read. Defaults to 1.0.
        hard (bool): Straight-through one-hot samples. Defaults to True.
        generator (torch.Generator, optional): Random generator.
            Defaults to None.

    Returns:
        Tensor: ``p_hat`` of the same shape as ``logits``; float32 for
        float16 or bfloat16 logits, which are sampled in float32.
    """
    check_count('num_samples', num_samples)
    if not isinstance(tau, Tensor) and not tau > 0:
        raise ValueError(f'tau must be > 0, got {tau!r}')
    # Half-precision uniforms take a few thousand values at most, which cuts
    # the Gumbel tails off (at 6.9 for float16, 4.8 for bfloat16) and so
    # under-samples the rare terms: draw in float32.
    logits = at_least_float32(logits)
    log_probs = F.log_softmax(logits, dim=-1)
    # [K, ..., n]: one Gumbel draw per sample, Eq. (6).
    shape = (num_samples, ) + tuple(logits.shape)
    noise = sample_gumbel(
        torch.Size(shape), logits.device, logits.dtype, generator=generator)
    perturbed = log_probs.unsqueeze(0) + noise
    # Shifted by the row's largest entry before the division (softmax does
    # not change), so that a tiny tau gives -inf, not inf - inf = NaN.
    soft = F.softmax(
        (perturbed - perturbed.detach().amax(dim=-1, keepdim=True)) / tau,
        dim=-1)
    if hard:
        # The index of the largest perturbed logit, the categorical draw
        # itself at any tau; the tempered softmax ties at very large tau.
        index = perturbed.detach().argmax(dim=-1, keepdim=True)
        one_hot = torch.zeros_like(soft).scatter_(-1, index, 1.0)
        # Straight-through: forward value one_hot, gradient of ``soft``.
        samples = one_hot - soft.detach() + soft
    else:
        samples = soft
    return samples.mean(dim=0)  # Eq. (10)
