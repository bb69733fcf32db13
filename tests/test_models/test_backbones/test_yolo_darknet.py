# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
import pytest
import torch
from torch import nn

from mmdet_slf.models.backbones import YOLOV1Darknet, YOLOVGG


def conv_layers(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_yolo_has_24_convs_with_paper_filters():
    model = YOLOV1Darknet(arch='yolo')
    convs = conv_layers(model)
    assert len(convs) == model.num_conv_layers == 24
    # YOLO paper, Fig. 3: 7x7x64-s-2, 3x3x192, then 1x1/3x3 pairs.
    assert (convs[0].kernel_size, convs[0].stride, convs[0].out_channels) \
        == ((7, 7), (2, 2), 64)
    assert [c.out_channels for c in convs[:6]] == [
        64, 192, 128, 256, 256, 512
    ]
    assert [c.out_channels for c in convs[-6:]] == [
        512, 1024, 1024, 1024, 1024, 1024
    ]
    assert convs[-3].stride == (2, 2)  # 3x3x1024-s-2
    assert sum(c.stride == (2, 2) for c in convs) == 2
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4
    assert model.out_channels == [1024]


def test_fast_yolo_has_9_convs():
    model = YOLOV1Darknet(arch='fast')
    convs = conv_layers(model)
    assert len(convs) == 9
    assert [c.out_channels for c in convs] == [
        16, 32, 64, 128, 256, 512, 1024, 1024, 1024
    ]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 6


@pytest.mark.parametrize('arch', ['yolo', 'fast'])
def test_stride_64_and_widen_factor(arch):
    model = YOLOV1Darknet(arch=arch, widen_factor=0.125)
    assert model.out_channels == [128]  # 1024 / 8
    # 64 * 0.125 = 8 and 16 * 0.125 = 2 -> rounded up to the minimum 8
    assert conv_layers(model)[0].out_channels == 8
    outs = model(torch.rand(2, 3, 128, 192))
    assert len(outs) == 1
    assert outs[0].shape == (2, 128, 2, 3)  # H / 64, W / 64


def test_out_indices_and_frozen_stages():
    model = YOLOV1Darknet(
        arch='fast', widen_factor=0.25, out_indices=(4, -1), frozen_stages=2)
    outs = model(torch.rand(2, 3, 128, 128))
    assert [o.shape[1] for o in outs] == model.out_channels == [64, 256]
    assert [o.shape[-1] for o in outs] == [4, 2]
    model.train()
    assert not any(p.requires_grad for p in model.stage0.parameters())
    assert not model.stage1.training
    assert all(p.requires_grad for p in model.stage2.parameters())
    # Every built stage may be frozen: three of them for out_indices (2, ).
    every = YOLOV1Darknet(
        arch='fast', widen_factor=0.25, out_indices=(2, ), frozen_stages=3)
    every.train()
    assert not any(p.requires_grad for p in every.parameters())


@pytest.mark.parametrize('kwargs, key', [
    (dict(arch='tiny'), 'arch'),
    (dict(widen_factor=0), 'widen_factor'),
    (dict(out_indices=(6, )), 'out_indices'),
    (dict(frozen_stages=9), 'frozen_stages'),
    # Stages after the last output are not built, so none can be frozen.
    (dict(arch='fast', out_indices=(2, ), frozen_stages=4),
     r'frozen_stages must be in \[-1, 3\] \(the stages built'),
])
def test_bad_settings_fail_at_build(kwargs, key):
    with pytest.raises(ValueError, match=key):
        YOLOV1Darknet(**kwargs)


def test_yolo_vgg16_trunk_and_extra_layers():
    model = YOLOVGG(depth=16, extra_channels=32)
    trunk_convs = [
        i for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d)
    ]
    # torchvision's vgg16().features indices, so its weights load by name.
    assert trunk_convs == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert model.features[28].out_channels == 512
    assert len(conv_layers(model.extra_convs)) == 4
    outs = model(torch.rand(1, 3, 128, 128))
    assert outs[0].shape == (1, 32, 2, 2)  # stride 32 trunk + one s-2 conv
    with pytest.raises(ValueError, match='depth'):
        YOLOVGG(depth=17)


def test_yolo_vgg_frozen_stages():
    model = YOLOVGG(extra_channels=16, frozen_stages=1)
    model.train()
    assert not model.features[0].weight.requires_grad
    assert model.features[5].weight.requires_grad
