# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The decision network ``h(f(x; w); v)`` of Eq. (4) and Eq. (11)."""
import math
from typing import Optional, Sequence

import torch
from mmdet.registry import MODELS
from torch import Tensor, nn

from .checks import check_count


def normalize_prior(prior: Optional[Sequence[float]], num_terms: int,
                    key: str = 'prior') -> Tensor:
    """Validate a prior over ``num_terms`` terms and normalise it to sum 1.

    Args:
        prior (Sequence[float], optional): Positive weights, one per term.
            ``None`` means uniform. Defaults to None.
        num_terms (int): Number of loss terms ``n``.
        key (str): Config key named in error messages. Defaults to 'prior'.

    Returns:
        Tensor: Probabilities of shape ``[n]``.
    """
    if prior is None:
        return torch.full((num_terms, ), 1.0 / num_terms)
    values = [float(v) for v in prior]
    if len(values) != num_terms:
        raise ValueError(f'{key} must have one entry per term ({num_terms}), '
                         f'got {len(values)}: {list(prior)}')
    if any(not math.isfinite(v) or v <= 0 for v in values):
        raise ValueError(f'{key} entries must be finite and > 0, got {values}')
    tensor = torch.tensor(values, dtype=torch.float32)
    return tensor / tensor.sum()


@MODELS.register_module()
class SLFDecisionNetwork(nn.Module):
    """Decision network ``h(.; v)`` producing logits over ``n`` loss terms.

    A small MLP (LayerNorm -> Linear -> ReLU -> Linear) that reads a summary
    vector of the main network's prediction ``f(x; w)`` and returns the
    logits whose softmax is the selection probability ``p`` of Eq. (4). With
    ``prior_init=True`` the last layer's weights start at zero and its bias at
    ``log(prior)``, so at step 0 ``softmax(h(.)) == prior`` for every input
    and SLF samples around the hand-tuned lambdas. With ``prior_init=False``
    all parameters are randomly initialised, as in Algorithm 1, line 1.

    Args:
        in_channels (int): Length of the input summary vector.
        num_terms (int): Number of loss terms ``n``.
        hidden_channels (int): Width of the hidden layer; 0 makes the network
            a single linear layer. Defaults to 32.
        prior (Sequence[float], optional): Prior weights used for the bias
            initialisation; normalised internally. Defaults to None (uniform).
        prior_init (bool): Zero last-layer weights and ``log(prior)`` bias.
            Defaults to True.
        norm_input (bool): LayerNorm on the input, so features of any scale
            give logits of a sane scale; not applied to fewer than 3 input
            channels, where it would leave at most their order (the raw
            terms of a two-term weighting are read through ``log1p``,
            which bounds their scale already). Defaults to True.
    """

    def __init__(self,
                 in_channels: int,
                 num_terms: int,
                 hidden_channels: int = 32,
                 prior: Optional[Sequence[float]] = None,
                 prior_init: bool = True,
                 norm_input: bool = True) -> None:
        super().__init__()
        check_count('in_channels', in_channels)
        check_count('num_terms', num_terms)
        if not isinstance(hidden_channels, int) \
                or isinstance(hidden_channels, bool) or hidden_channels < 0:
            raise ValueError('hidden_channels must be an int >= 0, '
                             f'got {hidden_channels!r}')
        for key, value in (('prior_init', prior_init),
                           ('norm_input', norm_input)):
            if not isinstance(value, bool):
                raise ValueError(f'{key} must be True or False, got {value!r}')
        self.in_channels = in_channels
        self.num_terms = num_terms
        # LayerNorm of one feature is always 0, and of two always (-1, 1) or
        # (1, -1): it would erase the input, or all of it but the order.
        self.norm = nn.LayerNorm(in_channels) if (
            norm_input and in_channels > 2) else nn.Identity()
        if hidden_channels > 0:
            self.hidden = nn.Sequential(
                nn.Linear(in_channels, hidden_channels), nn.ReLU(inplace=True))
            last_in = hidden_channels
        else:
            self.hidden = nn.Identity()
            last_in = in_channels
        self.fc_out = nn.Linear(last_in, num_terms)
        self.prior_init = prior_init
        self.register_buffer(
            'prior', normalize_prior(prior, num_terms), persistent=False)
        self.init_weights()

    def init_weights(self) -> None:
        """Start at the prior (``prior_init=True``).

        Called again by mmengine after an owner's ``init_cfg`` (e.g. a head's
        ``Normal`` init of every ``Linear``) has overwritten the layer, so
        the step-0 guarantee ``softmax(h(.)) == prior`` survives.
        """
        if self.prior_init:
            with torch.no_grad():
                self.fc_out.weight.zero_()
                self.fc_out.bias.copy_(self.prior.log())

    def forward(self, features: Tensor) -> Tensor:
        """Map features ``[N, in_channels]`` to logits ``[N, num_terms]``."""
        if features.dim() != 2 or features.shape[-1] != self.in_channels:
            raise ValueError(
                f'SLFDecisionNetwork expects features of shape [N, '
                f'{self.in_channels}], got {tuple(features.shape)}')
        # Features of another dtype than the parameters (float64 terms, a
        # network moved with .double()) are read in the network's own;
        # under autocast the layers cast them themselves.
        dtype = self.fc_out.weight.dtype
        if features.dtype != dtype:
            features = features.to(dtype)
        return self.fc_out(self.hidden(self.norm(features)))
