# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Build the weighting of a head that weights its own terms."""
from typing import Sequence

from mmdet.registry import MODELS
from mmdet.utils import ConfigType

from .base import BaseWeighting
from .slf import SLFWeighting


def build_weighting(cfg: ConfigType, terms: Sequence[str],
                    feature_channels: int, owner: str) -> BaseWeighting:
    """Build a head's weighting and check it weights exactly ``terms``.

    The head knows its terms: a config without ``terms`` gets the head's, so
    configs name terms only to reorder them. An ``SLFWeighting`` config
    without an ``in_channels`` key reads the head's decision features
    (``in_channels = feature_channels``); an explicit ``in_channels=None``
    makes it read the raw terms instead.

    Args:
        cfg (dict): Weighting config.
        terms (Sequence[str]): The head's term names.
        feature_channels (int): Length of the head's decision features.
        owner (str): Head name used in error messages.

    Returns:
        BaseWeighting: The built weighting.
    """
    cfg = dict(cfg)
    cfg.setdefault('terms', list(terms))
    kind = cfg.get('type')
    if isinstance(kind, str):
        kind = MODELS.get(kind)  # 'SLFWeighting', 'mmdet.SLFWeighting', ...
    if isinstance(kind, type) and issubclass(kind, SLFWeighting) \
            and 'in_channels' not in cfg:
        cfg['in_channels'] = feature_channels
    weighting = build_checked(cfg, f'model.bbox_head.weighting ({owner})')
    if sorted(getattr(weighting, 'terms', [])) != sorted(terms):
        raise ValueError(
            f'weighting.terms must be {list(terms)} (any order) for '
            f'{owner}, got {getattr(weighting, "terms", None)}')
    return weighting


def build_checked(cfg: ConfigType, where: str) -> BaseWeighting:
    """``MODELS.build(cfg)``; an argument the weighting does not take is a
    ``TypeError`` that names ``where`` (the config key) and says how a key
    inherited from a base config is dropped."""
    try:
        return MODELS.build(cfg)
    except TypeError as error:
        if 'unexpected keyword argument' not in str(error):
            raise
        raise TypeError(
            f'{where}: {error}. If the key comes from a base config (a '
            f'child that changes the weighting\'s type keeps its parent\'s '
            f'other keys), replace the dict whole: dict(_delete_=True, '
            f'type=...)') from error
