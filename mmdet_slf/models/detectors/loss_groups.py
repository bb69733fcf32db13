# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Group the keys of a detector's loss dict into named raw loss terms.

A detector's ``loss()`` returns ``{'loss_rpn_cls': [5 levels], 'loss_cls':
scalar, 'acc': ...}``. :class:`LossGroups` maps named terms (``rpn_cls``,
``roi_cls``, ...) to lists of those keys and reduces each group to one scalar
exactly as mmengine's ``BaseModel.parse_losses`` would have added it to the
objective, so that weights of 1 reproduce the detector's own total.
"""
import fnmatch
from typing import Dict, List, Sequence, Tuple, Union

from torch import Tensor

from mmdet_slf.slf.checks import check_term_name

LossValue = Union[Tensor, Sequence[Tensor]]
GLOB_CHARS = '*?['


def is_pattern(key: str) -> bool:
    """Whether a group entry is an ``fnmatch`` pattern (``'d*.loss_cls'``)."""
    return any(char in key for char in GLOB_CHARS)


def reduce_loss_value(key: str, value: LossValue) -> Tensor:
    """Reduce one loss-dict value to the scalar ``parse_losses`` sums.

    Args:
        key (str): Its key, for the error message.
        value (Tensor | list[Tensor]): A tensor (its mean is taken) or a list
            of tensors such as per-level losses (the sum of their means).

    Returns:
        Tensor: A scalar that keeps the graph.
    """
    if isinstance(value, Tensor):
        return value.mean()
    if isinstance(value, (list, tuple)) and len(value) > 0 and all(
            isinstance(item, Tensor) for item in value):
        return sum(item.mean() for item in value)
    raise TypeError(f'loss key {key!r} holds {type(value).__name__}; '
                    'expected a tensor or a list of tensors')


class LossGroups:
    """Named groups of loss keys, checked at build time.

    Args:
        terms (dict[str, str | list[str]]): ``{term: [loss keys]}``, e.g.
            ``dict(cls=['loss_cls', 'loss_rpn_cls'], box=['loss_bbox'])``.
            An entry may be an ``fnmatch`` pattern (``'d*.loss_cls'`` for the
            decoder layers of DETR-like detectors); patterns only ever match
            keys that contain ``'loss'``. Term names must not contain
            ``'loss'``; every group must name at least one key, and no key
            may be in two groups.
    """

    def __init__(self, terms: Dict[str, Union[str, Sequence[str]]]) -> None:
        if not isinstance(terms, dict) or len(terms) == 0:
            raise ValueError(
                'terms must be a non-empty dict {term: [loss keys]}, e.g. '
                "dict(cls=['loss_cls'], box=['loss_bbox']); got "
                f'{terms!r}')
        self.groups: Dict[str, List[str]] = {}
        owner: Dict[str, str] = {}
        for name, keys in terms.items():
            check_term_name(name, where=' in terms')
            keys = [keys] if isinstance(keys, str) else keys
            if not isinstance(keys, Sequence):
                raise ValueError(
                    f'terms.{name} must be a list of the loss keys it '
                    f"groups, e.g. terms.{name}=['loss_cls']; got "
                    f'{type(keys).__name__} {keys!r}')
            if len(keys) == 0:
                raise ValueError(
                    f'terms.{name} is empty: list the loss keys it groups, '
                    f"e.g. terms.{name}=['loss_cls']; got {keys!r}")
            for key in keys:
                if not isinstance(key, str) or not key:
                    raise ValueError(f'terms.{name} entries must be loss keys '
                                     f'(non-empty strings), got {key!r}')
                if not is_pattern(key) and 'loss' not in key:
                    raise ValueError(
                        f'terms.{name} names {key!r}, which does not contain '
                        f'"loss": mmengine never adds such a key to the '
                        f'objective, so it cannot be a loss term')
                if key in owner:
                    where = (f'twice in terms.{name}' if owner[key] == name
                             else f'in terms.{owner[key]} and terms.{name}')
                    raise ValueError(
                        f'loss key {key!r} is {where}; a key may be in one '
                        f'group only, or it would be weighted twice')
                owner[key] = name
            self.groups[name] = list(keys)
        self.names = list(self.groups)

    def resolve(self, keys: Sequence[str]) -> Dict[str, List[str]]:
        """Match the group entries against the keys a detector returned.

        Args:
            keys (Sequence[str]): Keys of the detector's loss dict.

        Returns:
            dict[str, list[str]]: The loss keys of each term.

        Raises:
            KeyError: An entry matches no returned key; the message names
                the entry and lists the keys that exist.
            ValueError: A returned key is matched by two groups.
        """
        loss_keys = [key for key in keys if 'loss' in key]
        members: Dict[str, List[str]] = {}
        owner: Dict[str, str] = {}
        for name, entries in self.groups.items():
            members[name] = []
            for entry in entries:
                if is_pattern(entry):
                    matched = fnmatch.filter(loss_keys, entry)
                else:
                    matched = [entry] if entry in keys else []
                if not matched:
                    raise KeyError(
                        f'terms.{name} names {entry!r}, but the detector\'s '
                        f'loss() returned no such key; it returned '
                        f'{sorted(keys)}')
                for key in matched:
                    if key in owner:
                        where = (f'twice by terms.{name}' if owner[key] ==
                                 name else f'by terms.{owner[key]} and '
                                 f'terms.{name}')
                        raise ValueError(
                            f'loss key {key!r} is matched {where}; a key may '
                            'be in one group only, once')
                    owner[key] = name
                    members[name].append(key)
        return members

    def group(self, losses: Dict[str, LossValue]
              ) -> Tuple[Dict[str, Tensor], Dict[str, LossValue],
                         Dict[str, List[str]]]:
        """Split a loss dict into grouped raw terms and the other keys.

        Args:
            losses (dict): The detector's loss dict.

        Returns:
            tuple: ``raw`` (``{term: scalar}``, each the sum over its keys of
            what ``parse_losses`` would add), ``passthrough`` (every key in
            no group, values unchanged) and ``members`` (``{term: keys}``).
        """
        members = self.resolve(list(losses))
        raw = {}
        for name, keys in members.items():
            # Left-to-right like parse_losses, so weights of 1 reproduce the
            # detector's total up to float rounding of the regrouping.
            raw[name] = sum(
                reduce_loss_value(key, losses[key]) for key in keys)
        grouped = {key for keys in members.values() for key in keys}
        passthrough = {
            key: value
            for key, value in losses.items() if key not in grouped
        }
        return raw, passthrough, members

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.groups})'
