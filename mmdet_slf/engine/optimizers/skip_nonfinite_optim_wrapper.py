# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""An optimizer wrapper that skips a whole step on a non-finite loss."""
from contextlib import contextmanager
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.dist import all_gather_object, all_reduce, get_world_size
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from mmdet.registry import OPTIM_WRAPPERS
from torch import nn

from mmdet_slf.slf import BaseWeighting, NonFinitePolicy


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteOptimWrapper(OptimWrapper):
    """Skip the optimizer step when a loss term is NaN or Inf.

    A step is skipped when a weighting built with ``nonfinite='skip'``
    reported a non-finite raw term during the forward, or when the total loss
    itself is not finite. Skipping means no ``optimizer.step()`` at all, so
    momentum buffers, weight decay, Adam moments and the parameters (the
    decision network's included) stay exactly as they were; the gradients
    are then cleared. Zero gradients alone would not do: SGD still applies
    weight decay and momentum to a zero gradient. The model's buffers
    (BatchNorm running statistics, which the forward already updated with
    the bad batch, and the weighting's counters) are restored to their
    values before the forward, so a skipped step is as if the batch had not
    been seen. With several ranks the decision is reduced over ranks, so
    every rank skips the same steps; restoring the buffers on every rank
    keeps the replicas equal too, since only the rank that saw the bad term
    left its weighting's state untouched. Without the restore, a skipped
    step would leave the other ranks' weighting counters (and buffers that
    DDP does not broadcast) updated and this rank's not, so
    ``restore_buffers=False`` is refused in a distributed run.

    Example::

        optim_wrapper = dict(
            type='SkipNonFiniteOptimWrapper',
            optimizer=dict(type='SGD', lr=0.01, momentum=0.9),
            max_consecutive_skips=100)

    Args:
        max_consecutive_skips (int): Raise ``FloatingPointError`` after this
            many skipped steps in a row: a loss that stays non-finite is a
            diverged run, not a bad batch. 0 disables the limit.
            Defaults to 100.
        restore_buffers (bool): Restore the model's buffers on a skipped
            step (one copy of the buffers per step). Must be True with
            several ranks. Defaults to True.
        **kwargs: Arguments of :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self,
                 *args,
                 max_consecutive_skips: int = 100,
                 restore_buffers: bool = True,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(max_consecutive_skips, int) or \
                max_consecutive_skips < 0:
            raise ValueError('max_consecutive_skips must be an int >= 0, got '
                             f'{max_consecutive_skips!r}')
        if not restore_buffers and get_world_size() > 1:
            raise ValueError(
                'restore_buffers=False in a distributed run: after a skipped '
                'step the ranks\' weighting states would part (the rank that '
                'saw the non-finite term leaves its counters as they were, '
                'the others update theirs); keep restore_buffers=True')
        self.max_consecutive_skips = max_consecutive_skips
        self.restore_buffers = restore_buffers
        self.skipped_steps = 0
        self.consecutive_skips = 0
        self._model: Optional[nn.Module] = None
        self._policies: List[Tuple[str, NonFinitePolicy]] = []
        self._reasons: List[str] = []
        self._buffers: Dict[str, torch.Tensor] = {}

    @contextmanager
    def optim_context(self, model: nn.Module):
        """Register the model's weightings and keep its buffers as they are
        before the forward, then enter mmengine's context."""
        module = model.module if is_model_wrapper(model) else model
        if module is not self._model:
            self._policies = [(name or type(m).__name__, m.nonfinite_policy)
                              for name, m in module.named_modules()
                              if isinstance(m, BaseWeighting)]
            for _, policy in self._policies:
                policy.enable_step_skipping()
            self._model = module
        if self.restore_buffers and \
                self._inner_count % self._accumulative_counts == 0:
            # First forward of an update: the state to return to on a skip.
            self._buffers = {
                name: buffer.detach().clone()
                for name, buffer in module.named_buffers()
            }
        with super().optim_context(model):
            yield

    def update_params(self,
                      loss: torch.Tensor,
                      step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        """Backward, then step unless a rank saw a non-finite loss.

        Args:
            loss (torch.Tensor): The total loss.
            step_kwargs (dict, optional): Arguments of ``optimizer.step``.
                Defaults to None.
            zero_kwargs (dict, optional): Arguments of
                ``optimizer.zero_grad``. Defaults to None.
        """
        step_kwargs = step_kwargs or {}
        zero_kwargs = zero_kwargs or {}
        if not torch.isfinite(loss.detach()).all():
            self._reasons.append('the total loss')
        for name, policy in self._policies:
            pending = policy.pop_pending()
            if pending:
                self._reasons.append(f'terms {sorted(set(pending))} of {name}')
        loss = self.scale_loss(loss)
        self.backward(loss)
        if not self.should_update():
            return
        reason = self._skip_reason()
        if reason:
            self._record_skip(reason)
        else:
            self.consecutive_skips = 0
            self.step(**step_kwargs)
        self.zero_grad(**zero_kwargs)
        self._reasons = []

    def _skip_reason(self) -> str:
        """Why this step is skipped on every rank ('' to step): the reasons
        of each rank that saw a non-finite loss, with its rank."""
        flag = torch.tensor([1.0 if self._reasons else 0.0])
        world_size = get_world_size()
        if world_size > 1:
            all_reduce(flag, op='max')
        if flag.item() == 0:
            return ''
        if world_size == 1:
            return 'non-finite ' + '; '.join(self._reasons)
        # Rare (only on a skip), so gathering strings is affordable.
        gathered = all_gather_object(self._reasons)
        return '; '.join(f'non-finite {reason} on rank {rank}'
                         for rank, reasons in enumerate(gathered)
                         for reason in reasons)

    def state_dict(self) -> dict:
        """The optimizer's state dict with the skip counters, so that a
        resumed run goes on counting (``skipped_steps`` in the log, and
        ``max_consecutive_skips``) where the checkpoint left off."""
        state_dict = super().state_dict()
        state_dict['skipped_steps'] = self.skipped_steps
        state_dict['consecutive_skips'] = self.consecutive_skips
        return state_dict

    def load_state_dict(self, state_dict: dict) -> None:
        """Load :meth:`state_dict`; a state dict of another wrapper (no
        counters) leaves them at 0."""
        state_dict = dict(state_dict)
        self.skipped_steps = int(state_dict.pop('skipped_steps', 0))
        self.consecutive_skips = int(state_dict.pop('consecutive_skips', 0))
        super().load_state_dict(state_dict)

    @torch.no_grad()
    def _restore_buffers(self) -> None:
        if not (self.restore_buffers and self._model is not None):
            return
        for name, buffer in self._model.named_buffers():
            if name in self._buffers:
                buffer.copy_(self._buffers[name])

    def _record_skip(self, reason: str) -> None:
        self._restore_buffers()
        self.skipped_steps += 1
        self.consecutive_skips += 1
        print_log(
            f'skipped optimizer step {self.skipped_steps} ({reason}); '
            'parameters and optimizer state are unchanged',
            logger='current', level=30)
        self.message_hub.update_scalar('train/skipped_steps',
                                       self.skipped_steps)
        if self.max_consecutive_skips and \
                self.consecutive_skips >= self.max_consecutive_skips:
            raise FloatingPointError(
                f'{self.consecutive_skips} optimizer steps in a row were '
                f'skipped (last: {reason}): training has diverged. Lower the '
                'learning rate, check the data, or resume from an earlier '
                'checkpoint.')
