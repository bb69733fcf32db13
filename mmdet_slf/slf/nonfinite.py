# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""What a weighting does when a raw loss term is NaN or Inf.

:class:`NonFinitePolicy` is the one owner of that decision. A weighting asks
it which terms are bad and, for bad ones, for the zero objective to return;
:class:`SkipNonFiniteOptimWrapper` switches on step skipping and collects the
terms that asked for a skip. Nothing else reads or writes its state.
"""
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import print_log
from torch import Tensor

NONFINITE_MODES = ('raise', 'skip')


class NonFinitePolicy:
    """Raise on a non-finite raw term, or drop the call and ask for a skip.

    Args:
        mode (str): ``'raise'`` a ``FloatingPointError`` naming the terms, or
            ``'skip'`` the step with a warning naming them. A full skip needs
            ``optim_wrapper=dict(type='SkipNonFiniteOptimWrapper', ...)``,
            which calls :meth:`enable_step_skipping`; without it only the bad
            call's terms are left out of the step. Defaults to 'raise'.
    """

    def __init__(self, mode: str = 'raise') -> None:
        if mode not in NONFINITE_MODES:
            raise ValueError(f'nonfinite must be one of {NONFINITE_MODES}, '
                             f'got {mode!r}')
        self.mode = mode
        self.step_skipping = False
        # Terms seen non-finite since the wrapper last asked.
        self.pending: List[str] = []

    def enable_step_skipping(self) -> None:
        """Called by the optimizer wrapper that skips whole steps."""
        self.step_skipping = True

    def pop_pending(self) -> List[str]:
        """Terms that asked to skip the current step; clears the list."""
        pending, self.pending = self.pending, []
        return pending

    @staticmethod
    def all_valid(raw: Tensor,
                  floor: Union[None, float, Tensor] = None) -> Tensor:
        """:meth:`all_finite`, and with ``floor`` also whether no entry is
        below it (``[n]`` per term, or one number), as one 0-dim bool tensor
        (no host read). ``max(x, floor) - x`` is 0 exactly for a finite
        ``x >= floor``: one operator more than :meth:`all_finite`."""
        if floor is None:
            return NonFinitePolicy.all_finite(raw)
        with torch.no_grad():
            floor = floor.to(raw) if isinstance(floor, Tensor) else floor
            return ((raw.clamp(min=floor) - raw) == 0).all()

    @staticmethod
    def all_finite(raw: Tensor) -> Tensor:
        """Whether every entry of ``raw`` is finite, as a 0-dim bool tensor
        on ``raw``'s device (no host read).

        ``x - x`` is exactly 0 for a finite float and NaN for NaN and
        +-Inf: three operators, where ``torch.isfinite(x).all()`` takes six.
        """
        with torch.no_grad():
            return ((raw - raw) == 0).all()

    @staticmethod
    def check_floor(raw: Tensor, floor: Union[None, float, Tensor],
                    terms: Sequence[str], owner: str) -> None:
        """Raise a ``ValueError`` naming the terms with an entry below
        ``floor`` (one host read; called once :meth:`all_valid` said no)."""
        if floor is None:
            return
        floor = torch.as_tensor(floor).to(raw).expand(len(terms))
        low = raw.detach().reshape(-1, len(terms)).amin(dim=0)
        below = [(name, value, bound) for name, value, bound in zip(
            terms, low.tolist(), floor.tolist()) if value < bound]
        if below:
            raise ValueError(
                f'{owner} weights the raw loss terms by their size and needs '
                'them at or above its floor; got ' + ', '.join(
                    f'loss_{name} = {value:.4g} < {bound:g}'
                    for name, value, bound in below) +
                '. Use a loss that is never negative for such a term, or a '
                'FixedWeighting')

    @staticmethod
    def find(raw: Tensor,
             terms: Sequence[str],
             finite: Optional[Tensor] = None) -> List[str]:
        """Names of the terms with a NaN or Inf entry.

        This is the weighting's one device-to-host read per call: the decision
        to raise has to be taken before the backward pass. The weighting
        makes it after issuing its own work, so that on an asynchronous
        device that work runs while the host waits.

        Args:
            raw (Tensor): Raw terms ``[n]`` or ``[N, n]``.
            terms (Sequence[str]): Term names, ``n`` of them.
            finite (Tensor, optional): :meth:`all_finite` of ``raw``, if
                already issued. Defaults to None.

        Returns:
            list[str]: The non-finite terms, in ``terms`` order.
        """
        if finite is None:
            finite = NonFinitePolicy.all_finite(raw)
        if bool(finite):
            return []
        per_term = torch.isfinite(raw.detach())
        if per_term.dim() == 2:
            per_term = per_term.all(dim=0)
        flags = per_term.tolist()
        return [name for name, ok in zip(terms, flags) if not ok]

    def handle(self,
               raw: Tensor,
               bad: List[str],
               owner: str,
               training: bool,
               features: Optional[Tensor] = None,
               parameters: Iterable[Tensor] = (),
               what: Optional[str] = None) -> Tensor:
        """Raise, or return the zero objective of a dropped call.

        Args:
            raw (Tensor): Raw terms ``[n]`` or ``[N, n]``, some non-finite.
            bad (list[str]): Names of the non-finite terms.
            owner (str): Weighting class named in messages.
            training (bool): Whether the weighting is in training mode.
            features (Tensor, optional): Decision features. Defaults to None.
            parameters (Iterable[Tensor]): The weighting's parameters, kept in
                the graph because DDP needs every parameter on every rank.
                Defaults to ().
            what (str, optional): What was not finite, in words, when it was
                not the raw terms (``bad`` then names it for the skip log).
                Defaults to None: ``raw loss term(s) <bad>``.

        Returns:
            Tensor: A scalar zero.
        """
        if what is None:
            what = f'raw loss term(s) {bad}'
        message = f'non-finite {what} in {owner}'
        if self.mode == 'raise':
            raise FloatingPointError(
                message + '; set nonfinite="skip" (with optim_wrapper type '
                'SkipNonFiniteOptimWrapper) to skip such steps, or lower the '
                'learning rate / check the data')
        zero = raw.new_zeros(())
        if training and self.step_skipping:
            self.pending.extend(bad)
            print_log(message + '; skipping this optimizer step',
                      logger='current', level=30)
            # The wrapper discards this step's gradients, so the terms and the
            # features may join the graph: every parameter they depend on then
            # gets a gradient, as DDP requires of every rank.
            for tensor in (raw, features):
                if tensor is not None and tensor.requires_grad:
                    zero = zero + torch.nan_to_num(
                        tensor, nan=0.0, posinf=0.0, neginf=0.0).sum() * 0
        elif training:
            print_log(
                message + '; these terms are left out of this step. The '
                'optimizer still steps (momentum, weight decay and the other '
                'losses still change parameters) unless optim_wrapper type is '
                'SkipNonFiniteOptimWrapper', logger='current', level=30)
        else:
            print_log(message + '; these terms are returned as 0',
                      logger='current', level=30)
        # Without the wrapper the terms stay out: ``raw * 0`` would carry NaN
        # gradients into the model.
        for param in parameters:
            zero = zero + param.sum() * 0
        return zero


def nonfinite_source(weighting: torch.nn.Module,
                     features: Optional[Tensor]) -> Tuple[List[str], str]:
    """What made the outputs of a weighting call with finite raw terms
    non-finite (an error path: the host reads are affordable): the name a
    skipped step is logged under, and the words of the message
    (:meth:`NonFinitePolicy.handle`'s ``bad`` and ``what``)."""
    if features is not None and not bool(
            torch.isfinite(features.detach()).all()):
        return ['decision features'], (
            'decision features (the input of the decision network), with '
            'finite raw loss terms,')
    bad = [name for name, value in weighting.named_parameters()
           if not bool(torch.isfinite(value.detach()).all())]
    bad += [name for name, value in weighting.named_buffers()
            if value.is_floating_point()
            and not bool(torch.isfinite(value).all())]
    where = f' ({", ".join(bad)} hold NaN or Inf)' if bad else ''
    return ['weights'], (
        f'weights or decision outputs{where}, with finite raw loss terms '
        'and decision features,')
