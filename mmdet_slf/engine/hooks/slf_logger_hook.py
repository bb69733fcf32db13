# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Log every SLF weight and the temperature to mmengine's MessageHub."""
import zlib
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.dist import all_gather_object, all_reduce, get_world_size
from mmengine.hooks import Hook
from mmdet.registry import HOOKS

from mmdet_slf.slf import BaseWeighting
from .unwrap import unwrap_model


def find_weightings(
        model: torch.nn.Module,
        remove_duplicate: bool = True) -> List[Tuple[str, BaseWeighting]]:
    """``(name, module)`` of every weighting in ``model``: a walk over all
    its modules (some 200 in a RetinaNet), which a caller that reads the
    diagnostics every step does once. A weighting held under two names is
    listed once, under the first, unless ``remove_duplicate`` is False."""
    return [(name, module) for name, module in model.named_modules(
        remove_duplicate=remove_duplicate)
            if isinstance(module, BaseWeighting)]


def claim_diagnostics(model: torch.nn.Module) -> int:
    """Tell every weighting of ``model`` that :class:`SLFLoggerHook` logs
    its diagnostics, so that their owners' loss dicts carry only the
    objective terms. The runner reads every value of a loss dict on its own
    (one host sync each on a GPU); the hook reads all diagnostics in one
    copy.

    Args:
        model (nn.Module): The (unwrapped) model.

    Returns:
        int: The weightings claimed.
    """
    weightings = find_weightings(model)
    for _, module in weightings:
        module.diagnostics_logged_by_hook = True
    return len(weightings)


def collect_diagnostics(
    model: torch.nn.Module,
    weightings: Optional[List[Tuple[str, BaseWeighting]]] = None,
    prefixes: Optional[Dict[str, str]] = None
) -> Dict[str, float]:
    """Diagnostics of every weighting module in ``model``.

    A weighting whose owner returns its outputs in the loss dict (heads,
    :class:`SLFDetector`) logs as ``slf_w_<term>``; one nested in a loss
    module (``SLFLoss`` under ``bbox_head.loss_cls``) logs with the owner's
    name as prefix, ``loss`` stripped (``bbox_head.cls.slf_w_<term>``), and
    so does any but a top-level one when several would log bare keys
    (:func:`_prefixes`): two weightings never share a key, and no key
    contains ``loss``. The weightings
    keep their diagnostics as one device vector each; this is where they are
    read to the host, in one copy per device, after the training step.

    Args:
        model (nn.Module): The (unwrapped) model.
        weightings (list, optional): Its :func:`find_weightings`, found
            once; None finds them here. Defaults to None.
        prefixes (dict, optional): Their key prefixes (:func:`_prefixes`),
            found once; None finds them here. Defaults to None.

    Returns:
        dict[str, float]: Diagnostic values by message-hub key.
    """
    if weightings is None:
        weightings = find_weightings(model)
    if prefixes is None:
        prefixes = _prefixes(weightings)
    by_device = defaultdict(list)
    for name, module in weightings:
        names, values = module.diagnostic_vector
        if values is None:
            continue  # no call yet
        prefix = prefixes[name]
        by_device[values.device].append(([prefix + k for k in names], values))
    diagnostics = {}
    for entries in by_device.values():
        values = entries[0][1] if len(entries) == 1 else torch.cat(
            [vector for _, vector in entries])
        keys = [key for names, _ in entries for key in names]
        diagnostics.update(zip(keys, values.tolist()))
    return diagnostics


def _prefixes(weightings: List[Tuple[str, BaseWeighting]]) -> Dict[str, str]:
    """The key prefix of each weighting: its owner's name, ``loss`` cut out,
    for one nested in a loss module. Of the others, each with an owner is
    prefixed by it too when there is more than one (a head's own weighting
    of ones under :class:`SLFDetector`): they would all log
    ``slf_skipped``, and ``slf_w_<term>`` for a shared term name."""
    def owner(name: str) -> str:
        return name.rsplit('.', 1)[0] if '.' in name else ''

    prefixes = {
        name: owner(name).replace('loss_', '').replace('loss', '') + '.'
        if 'loss' in owner(name) else ''
        for name, _ in weightings
    }
    bare = [name for name, prefix in prefixes.items() if not prefix]
    if len(bare) > 1:
        for name in bare:
            if owner(name):
                prefixes[name] = owner(name) + '.'
    return prefixes


def _keys_on_any_rank(keys: List[str]) -> List[str]:
    """Union of ``keys`` over ranks; one small all-reduce when they agree.

    Reducing value lists of different keys position by position would mix
    them up (or hang), so a mismatch is detected by a checksum first.
    """
    digest = float(zlib.crc32('\n'.join(keys).encode()))
    check = torch.tensor([digest, -digest], dtype=torch.float64)
    all_reduce(check, op='max')
    if check[0] == -check[1]:
        return keys
    gathered = all_gather_object(keys)
    return sorted(set().union(*gathered))


@HOOKS.register_module()
class SLFLoggerHook(Hook):
    """Push SLF weights, temperature and entropy to the MessageHub.

    Every ``after_train_iter`` the hook reads the last diagnostics of every
    weighting module of the model (``slf_w_<term>``, ``slf_raw_<term>``,
    ``slf_p_<term>``, ``slf_temperature``, ``slf_entropy``, ``slf_skipped``)
    in one copy and writes them as ``train/<key>`` scalars, so the text log,
    ``scalars.json`` and TensorBoard show them. Before training it takes
    them out of the loss dicts (:func:`claim_diagnostics`), where the
    runner would read each on its own. With several ranks the values are
    averaged over ranks first (each rank samples its own ``p_hat``), and
    keys the model still returned in its loss dict get their last entry
    replaced by that average instead of a second entry.

    Args:
        reduce_across_ranks (bool): Average over ranks. Defaults to True.
    """

    priority = 'NORMAL'

    def __init__(self, reduce_across_ranks: bool = True) -> None:
        self.reduce_across_ranks = reduce_across_ranks
        # The model's weightings, found before training (not every step).
        self._weightings: Optional[List[Tuple[str, BaseWeighting]]] = None
        self._prefixes: Optional[Dict[str, str]] = None

    def before_train(self, runner) -> None:
        # From here on the diagnostics reach the log through this hook
        # alone: they leave the loss dict (claim_diagnostics).
        model = unwrap_model(runner.model)
        claim_diagnostics(model)
        self._weightings = find_weightings(model)
        self._prefixes = _prefixes(self._weightings)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        model = unwrap_model(runner.model)
        if self._weightings is None:  # no before_train (a direct call)
            self._weightings = find_weightings(model)
            self._prefixes = _prefixes(self._weightings)
        weightings = self._weightings
        diagnostics = collect_diagnostics(model, weightings, self._prefixes)
        reduce = self.reduce_across_ranks and get_world_size() > 1
        # Every rank holds the same weightings, but one whose weightings
        # have not run yet (a loss a head calls only with positives) has no
        # diagnostics and must still join the reduction of the others.
        if not diagnostics and not (reduce and weightings):
            return
        keys = sorted(diagnostics)
        if reduce:
            keys = _keys_on_any_rank(keys)
            if not keys:
                return  # no weighting has run on any rank
            # Sum and count per key: a rank whose first step was skipped
            # (non-finite loss) has no weights yet and must not count.
            values = torch.tensor(
                [[diagnostics.get(k, 0.0) for k in keys],
                 [1.0 if k in diagnostics else 0.0 for k in keys]],
                dtype=torch.float64)
            all_reduce(values, op='sum')
            diagnostics = dict(
                zip(keys, (values[0] / values[1].clamp(min=1)).tolist()))
        message_hub = runner.message_hub
        outputs = outputs or {}
        for key in keys:
            hub_key = f'train/{key}'
            if key in outputs and hub_key in message_hub.log_scalars:
                # Already logged this iteration from the loss dict: replace
                # that entry so the window average counts the step once.
                buffer = message_hub.log_scalars[hub_key]
                buffer._log_history[-1] = diagnostics[key]
            else:
                message_hub.update_scalar(hub_key, diagnostics[key])
