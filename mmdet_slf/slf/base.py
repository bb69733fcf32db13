# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The base of every loss weighting: the single place where weights apply.

A weighting takes the dict of *raw, unweighted* loss terms
``{'loss_<term>': value}`` and returns the weighted terms under the same keys,
plus diagnostics under keys without ``loss`` (``slf_w_<term>``, ...) so that
mmengine logs them without adding them to the objective. A raw term is either
a scalar (batch level) or a per-image vector ``[N]`` whose *sum* is the
batch-level term; strategies that can (SLF) weight each image's terms with
that image's own weights before summing over images.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

from torch import Tensor, nn

from .checks import check_term_name, stack_terms
from .captured_calls import CapturedCalls
from .diagnostics import batch_level, pack_diagnostics
from .nonfinite import NonFinitePolicy, nonfinite_source
from .precision import buffers_before_conversion, keep_buffers_wide
from .ranks import mean_over_ranks

WeightsAndExtra = Tuple[Optional[Tensor], Dict[str, Tensor]]
# What BaseWeighting._issue returns: weights, objective terms, diagnostic
# keys and values, whether the terms are finite, the buffers before the call.
Issued = Tuple[Tensor, Dict[str, Tensor], List[str], Tensor, Tensor,
               List[Tensor]]


def _drop_moved_graphs(module: 'BaseWeighting', incompatible_keys) -> None:
    """After ``load_state_dict``: drop captured graphs whose tensors were
    replaced (``assign=True``); a load that copies in place keeps them."""
    module._captured_calls.drop_if_moved(module)


class BaseWeighting(nn.Module):
    """Validation, stacking and application of weights to raw loss terms.

    :meth:`weigh` is the one public method that turns stacked raw terms into
    weights; :meth:`forward` is its dict wrapper. A strategy implements only
    :meth:`_compute_weights`. Diagnostics stay detached tensors (no host
    sync in the training step) until :attr:`last_diagnostics` is read, which
    :class:`SLFLoggerHook` does after the step.

    Args:
        terms (Sequence[str]): Term names ``n``; input keys are
            ``'loss_<term>'``.
        nonfinite (str): What to do when a raw term is NaN or Inf: ``'raise'``
            a ``FloatingPointError`` naming the term, or ``'skip'`` the step
            with a warning naming the term. A full skip needs
            ``optim_wrapper=dict(type='SkipNonFiniteOptimWrapper', ...)``,
            which leaves every parameter and optimizer state untouched on
            every rank; with another wrapper only these terms are dropped
            from the step (see ``docs/troubleshooting.md``).
            Defaults to 'raise'.
        cuda_graph (bool): Replay the device work of a training call on
            CUDA from a captured CUDA graph (:mod:`.cuda_graph`): the same
            arithmetic for a fraction of the host time. Defaults to False.
    """

    # The strategy's own objective terms, returned as loss_<name> beside the
    # weighted loss_<term>: no term may take one of these names.
    extra_terms: Tuple[str, ...] = ('slf_nonfinite', )

    def __init__(self,
                 terms: Sequence[str],
                 nonfinite: str = 'raise',
                 cuda_graph: bool = False) -> None:
        super().__init__()
        if isinstance(terms, str) or not isinstance(terms, Sequence):
            raise TypeError(
                f'terms must be a list of term names, got {terms!r}')
        terms = list(terms)
        if len(terms) == 0:
            raise ValueError('terms must name at least one loss term, got []')
        for name in terms:
            check_term_name(name)
        if len(set(terms)) != len(terms):
            raise ValueError(f'terms must be unique, got {terms}')
        reserved = sorted(set(terms) & set(self.extra_terms))
        if reserved:
            raise ValueError(
                f'term names {reserved} are taken by {type(self).__name__}: '
                f'its own objective terms are loss_<name> for '
                f'{list(self.extra_terms)}, and a term of the same name '
                'would be overwritten by them')
        self.terms = terms
        self.num_terms = len(terms)
        self.nonfinite_policy = NonFinitePolicy(nonfinite)
        # The diagnostics of the last call: their keys, and their values as
        # one detached vector, so that reading them is one copy.
        self._diagnostic_keys: List[str] = []
        self._diagnostic_values: Optional[Tensor] = None
        # Set by SLFLoggerHook, which logs the diagnostics itself: forward()
        # then leaves them out of the owner's loss dict, where the runner
        # would read each one on its own (and average it into the log).
        self.diagnostics_logged_by_hook = False
        # (buffers dict, name) of each state buffer: see state_buffers().
        self._state_slots: Optional[List[Tuple[Dict[str, Tensor], str]]] = None
        self._captured_calls = CapturedCalls(cuda_graph)
        # load_state_dict(assign=True) puts new tensors in place of the
        # captured ones.
        self.register_load_state_dict_post_hook(_drop_moved_graphs)

    @property
    def cuda_graph(self) -> bool:
        """Whether training calls on CUDA replay captured graphs."""
        return self._captured_calls.enabled

    @property
    def nonfinite(self) -> str:
        """The configured non-finite mode, ``'raise'`` or ``'skip'``."""
        return self.nonfinite_policy.mode

    @property
    def diagnostics(self) -> Dict[str, Tensor]:
        """Diagnostics of the last call, ``{key: detached scalar tensor}``
        (``{}`` before the first call)."""
        if self._diagnostic_values is None:
            return {}
        return dict(
            zip(self._diagnostic_keys, self._diagnostic_values.unbind()))

    @property
    def diagnostic_vector(self) -> Tuple[List[str], Optional[Tensor]]:
        """The keys of the last call's diagnostics and their values as one
        detached vector on the terms' device (None before the first call):
        what a logger reads in one copy."""
        return list(self._diagnostic_keys), self._diagnostic_values

    @property
    def last_diagnostics(self) -> Dict[str, float]:
        """Diagnostics of the last call as floats (one host read)."""
        if self._diagnostic_values is None:
            return {}
        return dict(
            zip(self._diagnostic_keys, self._diagnostic_values.tolist()))

    # ------------------------------------------------------------------ API
    def forward(self,
                losses: Dict[str, Tensor],
                features: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Weight the raw terms.

        Args:
            losses (dict[str, Tensor]): ``{'loss_<term>': scalar or [N]}``.
            features (Tensor, optional): Decision features ``[N, C]`` for
                strategies that read the prediction. Defaults to None.

        Returns:
            dict[str, Tensor]: Weighted ``loss_<term>`` scalars, extra
            objective terms, and detached diagnostics. The diagnostics are
            left out when :attr:`diagnostics_logged_by_hook` is set
            (``SLFLoggerHook`` logs them from :attr:`diagnostic_vector`).
        """
        raw = self.stack(losses)  # [N, n] or [n]
        weights, extra = self.weigh(raw, features)
        if weights is None:
            # Dropped by the non-finite policy: one zero per term keeps the
            # logged keys the same on every step and rank.
            zero = extra.pop('loss_slf_nonfinite')
            outputs = {f'loss_{name}': zero for name in self.terms}
            outputs.update(extra)
            return outputs
        weighted = weights * raw
        if weighted.dim() == 2:
            weighted = weighted.sum(dim=0)  # per-image -> batch, [n]
        outputs = dict(
            zip([f'loss_{name}' for name in self.terms], weighted.unbind()))
        outputs.update(extra)
        return outputs

    def weigh(self,
              raw: Tensor,
              features: Optional[Tensor] = None) -> WeightsAndExtra:
        """Weights for stacked raw terms, with extra terms and diagnostics.

        Args:
            raw (Tensor): Raw terms ``[n]`` or ``[N, n]``.
            features (Tensor, optional): Decision features ``[N, C]``.
                Defaults to None.

        Returns:
            tuple[Tensor | None, dict[str, Tensor]]: Weights broadcastable to
            ``raw`` (with gradient where the strategy learns them), and extra
            objective terms (keys with ``loss``) and detached diagnostics
            (``slf_w_<term>``, the batch-level raw terms ``slf_raw_<term>``,
            ``slf_skipped``, ...). The diagnostics are left out when
            :attr:`diagnostics_logged_by_hook` is set; they are always in
            :attr:`diagnostic_vector`. When the non-finite policy drops the
            call, the weights are None, ``extra`` holds
            ``loss_slf_nonfinite`` (a zero that keeps the graph) and
            ``slf_skipped = 1``, and the diagnostics keep the last weights.
        """
        if raw.dim() not in (1, 2) or raw.shape[-1] != self.num_terms \
                or raw.shape[0] == 0:
            raise ValueError(
                f'raw terms must be [n] or [N, n] with n = {self.num_terms} '
                f'({self.terms}) and N >= 1, got shape {tuple(raw.shape)}')
        # The host read that decides on non-finite terms comes last: on an
        # asynchronous device everything queued before it runs while the
        # host waits, and whatever is issued after it runs on an idle
        # device. So the strategy's work is issued first, on the raw terms
        # as they are, and undone (its buffers restored) if they are bad.
        captured = self._captured_calls.lookup(self, raw, features)
        if captured is None:
            issued = self._issue(raw, features)
        else:
            issued = captured(raw, features)
        weights, objective, keys, values, finite, saved = issued
        if not self.diagnostics_logged_by_hook:
            objective.update(zip(keys, values.unbind()))
        if not bool(finite):
            if captured is not None:
                # This call's outputs are dropped: no backward will follow.
                captured.pending = False
            for buffer, before in zip(self.state_buffers(), saved):
                buffer.copy_(before)
            bad = self._invalid_terms(raw)  # raises below the floor
            what = None
            if not bad:
                bad, what = nonfinite_source(self, features)
            zero = self.nonfinite_policy.handle(
                raw, bad, type(self).__name__, self.training,
                features=features, parameters=self.parameters(), what=what)
            skipped = raw.new_ones(())
            # The last weights stay, marked as a skipped call.
            last = dict(self.diagnostics, slf_skipped=skipped)
            self._diagnostic_keys, self._diagnostic_values = \
                pack_diagnostics(last, self.terms)
            dropped = {'loss_slf_nonfinite': zero}
            if not self.diagnostics_logged_by_hook:
                dropped['slf_skipped'] = skipped
            return None, dropped
        self._diagnostic_keys = keys
        self._diagnostic_values = values
        return weights, objective

    def _issue(self, raw: Tensor, features: Optional[Tensor]) -> Issued:
        """The device work of a call, issued without a host read.

        Returns the weights, the extra objective terms, the diagnostics'
        keys and packed values, :meth:`NonFinitePolicy.all_valid` of the
        :meth:`_checked_terms` (finite, and not below :attr:`term_floor`),
        and a copy of each :meth:`state_buffers` from before the call (none
        in eval mode), which :meth:`weigh` restores if the terms are not
        finite. :class:`CapturedCalls` captures exactly this.
        """
        checked = self._checked_terms(raw)
        finite = NonFinitePolicy.all_valid(checked, self.term_floor)  # no read
        shared = self._batch_statistic(raw.detach()) if self.training \
            else None
        if shared is not None:
            # On every rank, a rank with bad terms too: see mean_over_ranks.
            shared = mean_over_ranks(shared, finite=finite)
        saved = [buffer.clone() for buffer in self.state_buffers()] \
            if self.training else []
        weights, extra = self._compute_weights(raw, features, shared)
        mean_weights = weights.detach()
        if mean_weights.dim() == 2:
            mean_weights = mean_weights.mean(dim=0)
        if mean_weights.shape != (self.num_terms, ):
            mean_weights = mean_weights.expand(self.num_terms)
        objective = {key: value for key, value in extra.items()
                     if 'loss' in key}
        diagnostics = {key: value for key, value in extra.items()
                       if 'loss' not in key}
        diagnostics.update(slf_w_=mean_weights,
                           slf_raw_=batch_level(raw.detach()),
                           slf_skipped=raw.new_zeros(()))
        # One vector now, so that reading them after the step is one copy.
        keys, values = pack_diagnostics(diagnostics, self.terms)
        # The strategy's own outputs, the weights among them (everything
        # before slf_raw_): with finite terms, a non-finite one comes from
        # the decision features or the strategy's parameters or state.
        own = values[:len(keys) - self.num_terms - 1]
        finite = finite & NonFinitePolicy.all_finite(own)
        return weights, objective, keys, values, finite, saved

    def _apply(self, fn, recurse=True):
        # Graphs see no new memory; a call that moves nothing keeps them.
        before = buffers_before_conversion(self)
        module = super()._apply(fn, recurse)
        keep_buffers_wide(self, before)
        self._captured_calls.drop_if_moved(self)
        return module

    @property
    def term_floor(self) -> Union[None, float, Tensor]:
        """The least value a raw term may take for this strategy (one number
        or ``[n]``); None, the default, for a strategy that weights terms of
        any sign. Strategies that divide by a term's size or take its log
        set a floor, and a term below it is an error, not a weight."""
        return None

    #: Check the floor on the batch-level terms (the sum over the images),
    #: for a strategy that reads only those; else on each entry.
    floor_on_batch_terms = False

    def _checked_terms(self, raw: Tensor) -> Tensor:
        """``raw``, or its batch-level terms under :attr:`floor_on_batch_terms`
        (a NaN or Inf entry makes its term's sum non-finite too)."""
        return batch_level(raw.detach()) if self.floor_on_batch_terms else raw

    def _invalid_terms(self, raw: Tensor) -> List[str]:
        """After the flag of :meth:`_issue` said no: raise for terms below
        :attr:`term_floor`, else the names of the non-finite terms."""
        checked = self._checked_terms(raw)
        NonFinitePolicy.check_floor(checked, self.term_floor, self.terms,
                                    type(self).__name__)
        return NonFinitePolicy.find(checked, self.terms)

    def state_buffers(self) -> List[Tensor]:
        """The buffers a checkpoint saves: the state a call may change.

        Non-persistent buffers (a prior, fixed lambdas) are constants of the
        config; :meth:`weigh` saves and restores only these. Where they sit
        in the module tree is found once, at the first call; the tensors are
        looked up there on every call, so a move to another device or a
        loaded checkpoint is followed.
        """
        if self._state_slots is None:
            self._state_slots = [
                (module._buffers, name) for module in self.modules()
                for name, buffer in module._buffers.items()
                if buffer is not None
                and name not in module._non_persistent_buffers_set
            ]
        return [buffers[name] for buffers, name in self._state_slots]

    def init_weights(self) -> None:
        """Re-initialise submodules that own an ``init_weights`` (the
        decision network), after an owner's ``init_cfg`` has run."""
        for module in self.children():
            if hasattr(module, 'init_weights'):
                module.init_weights()

    def stack(self, losses: Dict[str, Tensor]) -> Tensor:
        """Stack ``{'loss_<term>': value}`` in ``terms`` order.

        Args:
            losses (dict[str, Tensor]): Exactly the configured terms, all
                scalars or all per-image vectors ``[N]``.

        Returns:
            Tensor: ``[n]`` or ``[N, n]``.
        """
        return stack_terms(losses, self.terms, type(self).__name__)

    def _batch_statistic(self, raw: Tensor) -> Optional[Tensor]:
        """The per-term statistic ``[n]`` of a training batch that the
        strategy's state follows, computed from the detached ``raw``; None
        (the default) for a strategy without such state. :meth:`weigh`
        averages it over ranks and hands it to :meth:`_compute_weights`."""
        return None

    def _compute_weights(self, raw: Tensor, features: Optional[Tensor],
                         shared: Optional[Tensor]) -> WeightsAndExtra:
        """The strategy: weights broadcastable to the finite ``raw`` and a
        dict of extra objective terms (keys with ``loss``) and diagnostics.
        A diagnostic is a scalar, or a vector with one value per term under
        a prefix ending in ``_`` (see :func:`pack_diagnostics`).

        ``shared`` is :meth:`_batch_statistic` of this training batch
        averaged over ranks (the same on every rank), or None in eval mode
        and for strategies without state.
        """
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f'terms={self.terms}'
