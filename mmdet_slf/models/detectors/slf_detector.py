# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""SLF (or any weighting of the package) on the loss dict of any detector.

``SLFDetector`` is written in a child config over the parent's ``model``::

    _base_ = 'mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py'
    model = dict(type='SLFDetector', detector_type='RetinaNet',
                 terms=dict(cls=['loss_cls'], box=['loss_bbox']))

mmengine merges this dict into the parent's, so every other key (backbone,
heads, train_cfg, data_preprocessor, ...) reaches the wrapped detector
unchanged. Building ``SLFDetector`` returns an instance of a subclass of
both ``SLFDetector`` and the wrapped class (``SLFRetinaNet``): parameters,
state-dict keys, ``predict``/``_forward`` and evaluation are the parent's own,
a parent checkpoint loads into it (only ``weighting.*`` is new), and only
``loss()`` changes: it weights the grouped raw terms of the parent's loss.
"""
import inspect
import logging
from typing import Dict, Optional, Union

import torch
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType
from mmengine.logging import print_log
from torch import Tensor

from mmdet_slf.slf import BaseWeighting, FixedWeighting
from mmdet_slf.slf.builder import build_checked
from ..losses.slf_loss import SLFLoss
from .loss_groups import LossGroups

_SLF_CLASSES: Dict[type, type] = {}


def _resolve_detector(detector_type: Union[str, type]) -> type:
    if detector_type is None:
        raise TypeError(
            'SLFDetector needs detector_type, the registered type of the '
            "detector it wraps (the parent config's model.type, e.g. "
            "'FasterRCNN')")
    if isinstance(detector_type, str):
        detector_cls = MODELS.get(detector_type)
        if detector_cls is None:
            raise KeyError(
                f'detector_type {detector_type!r} is not registered in '
                f"mmdet's MODELS; use the parent config's model.type")
    else:
        detector_cls = detector_type
    if not inspect.isclass(detector_cls) or not issubclass(
            detector_cls, BaseDetector):
        raise TypeError(f'detector_type must name a subclass of mmdet '
                        f'BaseDetector, got {detector_type!r}')
    if issubclass(detector_cls, SLFDetector):
        raise TypeError(f'detector_type {detector_type!r} already weights '
                        'its losses with SLFDetector; wrap its parent type')
    return detector_cls


def slf_detector_class(detector_type: Union[str, type]) -> type:
    """The class ``SLF<Detector>(SLFDetector, <Detector>)``, made once.

    Args:
        detector_type (str | type): Registered name or class of a detector.

    Returns:
        type: The combined class; its module attribute of the same name
        resolves to it, so instances pickle.
    """
    detector_cls = _resolve_detector(detector_type)
    if detector_cls not in _SLF_CLASSES:
        name = f'SLF{detector_cls.__name__}'
        _SLF_CLASSES[detector_cls] = type(SLFDetector)(
            name, (SLFDetector, detector_cls), {
                '__module__': __name__,
                '__qualname__': name,
                '__doc__': f'{detector_cls.__name__} whose loss() is '
                'weighted by SLFDetector.'
            })
    return _SLF_CLASSES[detector_cls]


def __getattr__(name: str) -> type:
    # Unpickling looks ``SLF<Detector>`` up in this module (PEP 562). A
    # registered type that is no detector (``SLFResNet``) is a missing
    # attribute too, so that ``hasattr`` and ``getattr(..., default)`` work.
    if name.startswith('SLF') and MODELS.get(name[3:]) is not None:
        try:
            return slf_detector_class(name[3:])
        except TypeError as error:
            raise AttributeError(f'module {__name__!r} has no attribute '
                                 f'{name!r}: {error}') from error
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def pool_features(features) -> Tensor:
    """Global-average-pool feature maps and concatenate them per image.

    Args:
        features (Tensor | Sequence[Tensor]): ``[N, C, ...]`` maps, e.g. the
            levels of an FPN.

    Returns:
        Tensor: ``[N, sum(C)]``.
    """
    if isinstance(features, Tensor):
        features = [features]
    pooled = [
        feat.flatten(2).mean(-1) if feat.dim() > 2 else feat
        for feat in features if isinstance(feat, Tensor)
    ]  # each [N, C_l]
    if not pooled:
        raise TypeError('decision_features must name a module whose output '
                        'is a tensor or a sequence of tensors [N, C, ...], '
                        f'got {type(features).__name__}')
    return torch.cat(pooled, dim=1)


def _scales(value) -> bool:
    """Whether a loss multiplier (a number or a list of them) is not 1."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return any(
        isinstance(item, (int, float)) and not isinstance(item, bool)
        and item != 1 for item in values)


@MODELS.register_module()
class SLFDetector(BaseDetector):
    """Weight the grouped raw loss terms of any mmdet detector.

    ``SLFDetector(detector_type='FasterRCNN', terms=..., **parent_kwargs)``
    builds a ``SLFFasterRCNN``: the parent detector, built from
    ``parent_kwargs``, whose :meth:`loss` groups the keys of the parent's loss
    dict into named raw terms (each the sum of what mmengine's
    ``parse_losses`` would add for its keys, so list-valued per-level losses
    are summed), weights them with ``weighting`` and returns its output
    (``loss_<term>``, extra objective terms such as ``loss_slf_kl``, and the
    ``slf_w_<term>`` diagnostics), ``slf_raw_<term>`` (the detached raw terms)
    and every ungrouped key unchanged; in a run with ``SLFLoggerHook`` the
    diagnostics and raw terms are logged by the hook instead. Ungrouped
    keys that contain ``loss`` stay in the objective unweighted and are
    reported once in the log. The
    weighting is the only place where weights are applied: a loss module of
    the parent with ``loss_weight`` other than 1, or a head that scales its
    loss keys itself (``stage_loss_weights`` of a cascade RoI head), fails
    at build, naming it (give its weight to the weighting instead). With
    ``FixedWeighting`` at all ones the objective is then the parent's.

    Args:
        terms (dict[str, str | list[str]]): ``{term: [loss keys]}``; see
            :class:`LossGroups`. Term names must not contain ``loss``.
        weighting (dict): Config of any weighting of the package; its
            ``terms`` are filled in from ``terms``. Defaults to
            ``dict(type='SLFWeighting')`` (uniform prior, ``scale`` = number
            of terms, so the expected weights are 1, the parent's).
        decision_features (str, optional): Name of a submodule (``'neck'``,
            ``'backbone'``, ``'neck.fpn_convs.0'``) whose output, global-
            average-pooled and concatenated per image, is what the decision
            network reads; the weighting then needs ``in_channels`` equal to
            that length (e.g. 256 * 5 for an FPN with five outputs). None
            lets the network read the detached raw terms. Defaults to None.
        detector_type (str | type): Registered type of the wrapped detector,
            the parent config's ``model.type``. Only needed when building
            ``SLFDetector`` itself.
        **kwargs: The wrapped detector's own arguments.
    """

    def __new__(cls, *args, detector_type=None, **kwargs):
        if cls is SLFDetector:
            cls = slf_detector_class(detector_type)
        return super().__new__(cls)

    def __init__(self,
                 terms: Dict[str, Union[str, list]],
                 weighting: ConfigType = dict(type='SLFWeighting'),
                 decision_features: Optional[str] = None,
                 detector_type: Union[str, type, None] = None,
                 **kwargs) -> None:
        # Check the cheap settings before building the (large) detector.
        loss_groups = LossGroups(terms)
        weighting = self._weighting_cfg(weighting, loss_groups.names)
        super().__init__(**kwargs)
        self.detector_name = self._detector_class().__name__
        self._check_loss_weights()
        self.loss_groups = loss_groups
        self.weighting = build_checked(weighting, 'model.weighting')
        self.decision_features = decision_features
        self._check_decision_features()
        self._reported_grouping = False
        self._reported_keys = set()
        self._capturing = False
        self._captured: Optional[Tensor] = None

    # ------------------------------------------------------------ building
    @classmethod
    def _detector_class(cls) -> type:
        for base in cls.__mro__[1:]:
            if not issubclass(base, SLFDetector) and issubclass(
                    base, BaseDetector) and base is not BaseDetector:
                return base
        raise TypeError(f'{cls.__name__} wraps no detector class')

    @staticmethod
    def _weighting_cfg(weighting: ConfigType, names) -> dict:
        if not isinstance(weighting, dict) or 'type' not in weighting:
            raise ValueError('weighting must be a config dict with a type, '
                             "e.g. dict(type='SLFWeighting'), got "
                             f'{weighting!r}')
        weighting = dict(weighting)
        given = weighting.get('terms')
        if given is not None and list(given) != list(names):
            raise ValueError(
                f'weighting.terms {list(given)} differ from the names of '
                f'terms {list(names)}; leave weighting.terms out, it is '
                'filled in from terms')
        weighting['terms'] = list(names)
        return weighting

    def _check_loss_weights(self) -> None:
        # Loss modules' ``loss_weight`` and the heads' own multipliers of
        # their loss keys: ``stage_loss_weights`` of cascade RoI heads,
        # ``pos_loss_weight`` (and the like) of AutoAssign,
        # ``loss_mask_weight`` of YOLACT's protonet.
        scaled = [
            f'model.{name}.{attr}={value}'
            for name, module in self.named_modules()
            for attr, value in vars(module).items()
            if (attr.endswith(('loss_weight', 'loss_weights')) or (
                attr.startswith('loss_') and attr.endswith('_weight')))
            and _scales(value)
        ]
        if scaled:
            raise ValueError(
                f'{self.detector_name} scales loss terms inside its modules '
                f'({", ".join(scaled)}), but SLFDetector applies every '
                'weight in one place, its weighting, to raw terms: set these '
                'to 1.0 (every entry of a list) and give the terms their '
                'weights in the weighting (FixedWeighting weights, '
                'SLFWeighting prior)')
        # A head of this package that weights its own keys (the YOLO heads'
        # ``weighting``). An SLFLoss's weighting combines candidate losses
        # into one key, which SLFDetector then weights: not twice.
        in_slf_loss = {id(inner) for outer in self.modules()
                       if isinstance(outer, SLFLoss)
                       for inner in outer.modules()}
        weighted = [
            f'model.{name} ({type(module).__name__})'
            for name, module in self.named_modules()
            if isinstance(module, BaseWeighting)
            and id(module) not in in_slf_loss and not (
                isinstance(module, FixedWeighting)
                and bool((module.weights == 1).all()))
        ]
        if weighted:
            raise ValueError(
                f'{self.detector_name} weights its loss keys itself '
                f'({", ".join(weighted)}), and SLFDetector would weight them '
                'again: give that weighting weights of 1 (dict(type='
                "'FixedWeighting', weights=[1.0, ...])), or train the "
                'detector with its own weighting, without SLFDetector')
        # A head's weighting of ones passes its terms through. Its
        # diagnostics (weights of 1, the raw terms SLFDetector logs as
        # slf_raw_) would reach the parent's loss dict under the keys of
        # SLFDetector's own weighting; SLFLoggerHook, when used, logs them
        # under the head's prefix.
        for module in self.modules():
            if isinstance(module, BaseWeighting) and \
                    id(module) not in in_slf_loss:
                module.diagnostics_logged_by_hook = True

    def _check_decision_features(self) -> None:
        reads_features = not getattr(self.weighting, 'reads_terms', True)
        source = self.decision_features
        if source is None:
            if reads_features:
                raise ValueError(
                    'weighting.in_channels is set, so the decision network '
                    'reads features, but decision_features is None; set '
                    "decision_features='neck' (or another submodule), or "
                    'leave in_channels out to read the raw terms')
            return
        if not reads_features:
            raise ValueError(
                f'decision_features={source!r} needs a weighting that reads '
                f'features: SLFWeighting with in_channels set to the pooled '
                f'length; {type(self.weighting).__name__} as configured '
                f'would ignore them')
        try:
            module = self.get_submodule(source)
        except AttributeError:
            names = [name for name, _ in self.named_children()
                     if name not in ('weighting', 'data_preprocessor')]
            raise ValueError(
                f'decision_features={source!r} is not a submodule of '
                f'{self.detector_name}; its top-level modules are '
                f'{names}') from None
        module.register_forward_hook(self._capture_hook)

    def _capture_hook(self, module, args, output) -> None:
        # Only the first call inside loss(): predict() is never touched.
        if self._capturing and self._captured is None:
            self._captured = pool_features(output)  # [N, sum(C)]

    # ------------------------------------------------------------ training
    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> dict:
        """The parent's losses, grouped into terms and weighted.

        Args:
            batch_inputs (Tensor): Images ``[N, 3, H, W]``.
            batch_data_samples (list[DetDataSample]): Their annotations.

        Returns:
            dict: Weighted ``loss_<term>``, the weighting's extra terms and
            diagnostics, ``slf_raw_<term>`` and the ungrouped keys.
        """
        self._capturing, self._captured = True, None
        try:
            losses = super().loss(batch_inputs, batch_data_samples)
        finally:
            self._capturing = False
        features, self._captured = self._captured, None
        raw, passthrough, members = self.loss_groups.group(losses)
        self._report(passthrough, members)
        if self.decision_features is not None:
            self._check_feature_length(features)
        outputs = self.weighting({f'loss_{name}': value
                                  for name, value in raw.items()},
                                 features=features)
        clash = sorted(set(outputs) & set(passthrough))
        if clash:
            raise ValueError(
                f'the weighted terms {clash} have the name of ungrouped '
                f'loss keys of {self.detector_name}; rename the terms')
        results = dict(outputs)
        if not self.weighting.diagnostics_logged_by_hook:
            # Else SLFLoggerHook logs them with the weighting's diagnostics.
            for name, value in raw.items():
                results[f'slf_raw_{name}'] = value.detach()
        results.update(passthrough)
        return results

    def _check_feature_length(self, features: Optional[Tensor]) -> None:
        if features is None:
            raise RuntimeError(
                f'decision_features={self.decision_features!r} was not '
                f'called during {self.detector_name}.loss(); name a '
                'submodule on the training path')
        expected = self.weighting.decision_net.in_channels
        if features.dim() != 2 or features.shape[1] != expected:
            raise ValueError(
                f'decision_features={self.decision_features!r} gives '
                f'pooled features of shape {tuple(features.shape)}, but '
                f'weighting.in_channels={expected}; set weighting.'
                f'in_channels={features.shape[-1]}')

    def _report(self, passthrough: dict, members: dict) -> None:
        """Log the grouping and each ungrouped loss key, once."""
        if not self._reported_grouping:
            grouping = '; '.join(f'{name} = {" + ".join(keys)}'
                                 for name, keys in members.items())
            print_log(
                f'{type(self).__name__} terms: {grouping}',
                logger='current',
                level=logging.INFO)
            self._reported_grouping = True
        new = sorted(key for key in passthrough
                     if 'loss' in key and key not in self._reported_keys)
        if new:
            print_log(
                f'{type(self).__name__}: loss keys {new} are in no group of '
                f'terms; they stay in the objective unweighted by '
                f'{type(self.weighting).__name__}, as in '
                f'{self.detector_name}',
                logger='current',
                level=logging.WARNING)
            self._reported_keys.update(new)
