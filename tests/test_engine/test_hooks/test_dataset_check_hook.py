# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""``check_num_classes`` (run by ``DatasetCheckHook``) against the heads of
mmdet's own detectors: class-agnostic proposal heads are left out, and a
panoptic dataset's box heads detect its things only."""
from types import SimpleNamespace

import pytest
from mmdet.datasets import CocoPanopticDataset, VOCDataset
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.registry import DefaultScope
from torch import nn

from mmdet_slf.engine.checks import check_num_classes, class_heads

register_all_modules(init_default_scope=False)


@pytest.fixture(autouse=True)
def mmdet_scope():
    """Build in mmdet's scope, whatever scope earlier tests left current."""
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield


def two_stage(rpn_head: dict, num_classes: int) -> nn.Module:
    model = nn.Module()
    model.rpn_head = MODELS.build(rpn_head)
    model.roi_head = nn.Module()
    model.roi_head.bbox_head = MODELS.build(
        dict(type='Shared2FCBBoxHead', in_channels=4, fc_out_channels=8,
             roi_feat_size=2, num_classes=num_classes))
    return model


# The proposal head of mmdet's ga-faster-rcnn_r50_fpn_1x_coco.py, smaller.
GA_RPN_HEAD = dict(
    type='GARPNHead', in_channels=4, feat_channels=4,
    approx_anchor_generator=dict(
        type='AnchorGenerator', octave_base_scale=8, scales_per_octave=3,
        ratios=[0.5, 1.0, 2.0], strides=[4, 8, 16, 32, 64]),
    square_anchor_generator=dict(
        type='AnchorGenerator', ratios=[1.0], scales=[8],
        strides=[4, 8, 16, 32, 64]),
    anchor_coder=dict(type='DeltaXYWHBBoxCoder'),
    bbox_coder=dict(type='DeltaXYWHBBoxCoder'))
RPN_HEAD = dict(
    type='RPNHead', in_channels=4, feat_channels=4,
    anchor_generator=dict(type='AnchorGenerator', scales=[8],
                          ratios=[1.0], strides=[4]))


def dataset(metainfo: dict) -> SimpleNamespace:
    return SimpleNamespace(metainfo=dict(metainfo))


@pytest.mark.parametrize('rpn_head', [RPN_HEAD, GA_RPN_HEAD],
                         ids=['RPNHead', 'GARPNHead'])
def test_proposal_heads_are_class_agnostic(rpn_head):
    model = two_stage(rpn_head, num_classes=20)
    assert model.rpn_head.num_classes == 1
    assert list(class_heads(model)) == [('roi_head.bbox_head', 20)]
    check_num_classes(model, dataset(VOCDataset.METAINFO))  # 20 classes
    with pytest.raises(ValueError, match=r'model.roi_head.bbox_head.'
                       r'num_classes=20 but train_dataloader.dataset has '
                       r'80 classes'):
        check_num_classes(model, dataset(dict(classes=('a', ) * 80)))


def test_panoptic_box_heads_detect_the_things():
    """COCO panoptic: 133 classes, of which 80 things (PanopticFPN's box
    head) and 53 stuff; a head of all 133 (MaskFormer's) is right too."""
    metainfo = CocoPanopticDataset.METAINFO
    assert len(metainfo['classes']) == 133
    assert len(metainfo['thing_classes']) == 80
    check_num_classes(two_stage(RPN_HEAD, 80), dataset(metainfo))
    check_num_classes(two_stage(RPN_HEAD, 133), dataset(metainfo))
    with pytest.raises(ValueError, match=r'num_classes=53 but '
                       r'train_dataloader.dataset has 133 classes'):
        check_num_classes(two_stage(RPN_HEAD, 53), dataset(metainfo))
