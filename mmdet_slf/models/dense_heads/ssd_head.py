# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""mmdet 3.3's ``SSDHead`` with a fix that lets it predict at all.

``BaseDenseHead._predict_by_feat_single`` reads ``self.loss_cls``, which
``SSDHead`` never builds (it skips ``AnchorHead.__init__``), so every
``predict``/evaluation of an SSD config raises ``AttributeError: 'SSDHead'
object has no attribute 'loss_cls'`` (open-mmlab/mmdetection#11305, #11780;
the fix proposed upstream in #11524 guards the read the same way). The fix is
opt-in: a config that wants it names this head; ``SSDHead`` itself is never
changed.
"""
from mmdet.models.dense_heads import SSDHead
from mmdet.registry import MODELS


@MODELS.register_module()
class PredictableSSDHead(SSDHead):
    """:class:`~mmdet.models.dense_heads.SSDHead` that sets ``loss_cls``.

    ``loss_cls = None`` makes ``getattr(self.loss_cls,
    'custom_cls_channels', False)`` False, so prediction takes the softmax
    branch ``SSDHead`` was written for. Parameters, state-dict keys, losses
    and outputs are ``SSDHead``'s: an ``SSDHead`` checkpoint loads unchanged.
    Use it in a config with ``model.bbox_head.type='PredictableSSDHead'``.

    Args:
        *args: Positional arguments of :class:`SSDHead`.
        **kwargs: Keyword arguments of :class:`SSDHead`.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # An mmdet that builds loss_cls itself keeps its own.
        if not hasattr(self, 'loss_cls'):
            self.loss_cls = None
