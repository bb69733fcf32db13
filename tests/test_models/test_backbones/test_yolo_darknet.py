# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmdet_slf.models.backbones import YOLOV1Darknet, YOLOVGG
from mmdet_slf.models.backbones.yolo_darknet import _make_divisible


def conv_layers(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


# YOLO paper, Fig. 3, written out: ('conv', kernel, filters, stride) and
# ('maxpool', 2, 2) in network order.
POOL = ('maxpool', 2, 2)
PAPER_FIG3 = (
    [('conv', 7, 64, 2), POOL, ('conv', 3, 192, 1), POOL,
     ('conv', 1, 128, 1), ('conv', 3, 256, 1), ('conv', 1, 256, 1),
     ('conv', 3, 512, 1), POOL] +
    [('conv', 1, 256, 1), ('conv', 3, 512, 1)] * 4 +
    [('conv', 1, 512, 1), ('conv', 3, 1024, 1), POOL] +
    [('conv', 1, 512, 1), ('conv', 3, 1024, 1)] * 2 +
    [('conv', 3, 1024, 1), ('conv', 3, 1024, 2), ('conv', 3, 1024, 1),
     ('conv', 3, 1024, 1)])


def layer_sequence(module):
    """Convs and max-pools in forward order, as in ``PAPER_FIG3``."""
    layers = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            assert m.kernel_size[0] == m.kernel_size[1]
            assert m.stride[0] == m.stride[1]
            layers.append(
                ('conv', m.kernel_size[0], m.out_channels, m.stride[0]))
        elif isinstance(m, nn.MaxPool2d):
            layers.append(('maxpool', m.kernel_size, m.stride))
    return layers


def test_yolo_has_24_convs_with_paper_filters():
    model = YOLOV1Darknet(arch='yolo')
    convs = conv_layers(model)
    assert len(convs) == model.num_conv_layers == 24
    assert sum(layer[0] == 'conv' for layer in PAPER_FIG3) == 24
    assert layer_sequence(model) == PAPER_FIG3
    # Every conv layer is followed by a leaky ReLU of slope 0.1.
    activations = [m.activate for m in model.modules()
                   if hasattr(m, 'activate')]
    assert len(activations) == 24
    assert all(
        type(a) is nn.LeakyReLU and a.negative_slope == 0.1
        for a in activations)
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


def test_frozen_stages_stop_requiring_grad_at_build():
    """mmengine wraps the model in DDP before the loop calls train(): the
    frozen parameters must already be off then."""
    model = YOLOV1Darknet(arch='fast', widen_factor=0.25, frozen_stages=2)
    for index, name in enumerate(model.stage_names):
        stage = getattr(model, name)
        assert all(p.requires_grad == (index >= 2)
                   for p in stage.parameters()), name
    vgg = YOLOVGG(extra_channels=16, frozen_stages=2)
    # VGG-16 stages 0 and 1 are features[0:5] and features[5:10].
    frozen = {f'features.{i}.{kind}' for i in (0, 2, 5, 7)
              for kind in ('weight', 'bias')}
    for name, param in vgg.named_parameters():
        assert param.requires_grad == (name not in frozen), name


def test_out_channels_follow_the_returned_maps():
    # Fast YOLO at 0.25: stage 2 has 64 / 4 = 16, stage 5 512 / 4 = 128.
    model = YOLOV1Darknet(arch='fast', widen_factor=0.25, out_indices=(5, 2))
    outs = model(torch.rand(1, 3, 128, 128))
    assert [o.shape[1] for o in outs] == model.out_channels == [16, 128]
    assert model.out_indices == (2, 5)
    # Stage 6 given twice, once as -1: one map, one channel count.
    twice = YOLOV1Darknet(arch='fast', widen_factor=0.25, out_indices=(6, -1))
    outs = twice(torch.rand(1, 3, 128, 128))
    assert len(outs) == 1
    assert [o.shape[1] for o in outs] == twice.out_channels == [256]


def test_norm_eval_keeps_batch_norm_statistics():
    model = YOLOV1Darknet(arch='fast', widen_factor=0.25, norm_eval=True)
    model.train()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert len(norms) == 9
    assert not any(m.training for m in norms)
    before = [(m.running_mean.clone(), m.running_var.clone()) for m in norms]
    model(torch.rand(2, 3, 128, 128) * 5 + 3)
    for m, (mean, var) in zip(norms, before):
        assert torch.equal(m.running_mean, mean)
        assert torch.equal(m.running_var, var)
    # Without norm_eval the same forward pass moves the statistics.
    plain = YOLOV1Darknet(arch='fast', widen_factor=0.25)
    plain.train()
    plain(torch.rand(2, 3, 128, 128) * 5 + 3)
    assert not torch.equal(plain.stage0[0].bn.running_mean,
                           torch.zeros_like(plain.stage0[0].bn.running_mean))


@pytest.mark.parametrize('kwargs, key', [
    (dict(arch='tiny'), 'arch'),
    (dict(widen_factor=0), 'widen_factor'),
    (dict(out_indices=(6, )), 'out_indices'),
    (dict(frozen_stages=9), 'frozen_stages'),
    (dict(frozen_stages=-2), 'frozen_stages'),
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


def test_make_divisible_rounds_to_the_nearest_multiple_of_8():
    """``(c + 4) // 8 * 8``, at least 8: 20 -> 24 (20 + 4 = 24), 19.9 -> 16,
    307.2 -> 304, 2 -> 8. Fast YOLO at 0.3125 widens 16, 32, 64 to 5, 10,
    20: 8, 8 and 24 filters (flooring would give 16 for the third)."""
    assert [_make_divisible(c) for c in (20, 19.9, 307.2, 2)] == [
        24, 16, 304, 8
    ]
    model = YOLOV1Darknet(arch='fast', widen_factor=0.3125, out_indices=(2, ))
    assert [c.out_channels for c in conv_layers(model)] == [8, 8, 24]


def test_most_negative_out_index_is_the_first_stage():
    """Fast YOLO has 7 stages, so -7 is stage 0 (16 * 0.25 = 4 -> 8
    filters) and only that stage is built."""
    model = YOLOV1Darknet(arch='fast', widen_factor=0.25, out_indices=(-7, ))
    assert model.out_indices == (0, )
    assert model.stage_names == ['stage0']
    outs = model(torch.rand(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 8, 32, 32)]


def test_yolo_vgg_extra_layers_stride_and_checks():
    """The four extra layers are 3x3 with strides 1, 2, 1, 1 (the second
    halves the map, as YOLO's own detection layers do)."""
    model = YOLOVGG(extra_channels=16)
    convs = conv_layers(model.extra_convs)
    assert [c.stride for c in convs] == [(1, 1), (2, 2), (1, 1), (1, 1)]
    assert [c.out_channels for c in convs] == [16] * 4
    for kwargs in (dict(extra_channels=0), dict(frozen_stages=6),
                   dict(frozen_stages=-2)):
        with pytest.raises(ValueError):
            YOLOVGG(**kwargs)


def test_yolo_vgg_freezes_all_five_stages_and_keeps_them_in_eval():
    """frozen_stages=5 freezes the whole VGG-16 trunk (its 13 convs) but
    not the extra layers; train() leaves the frozen modules in eval mode
    and the others in train mode."""
    model = YOLOVGG(extra_channels=16, frozen_stages=5)
    assert not any(p.requires_grad for p in model.features.parameters())
    assert all(p.requires_grad for p in model.extra_convs.parameters())
    model.train()
    assert not any(m.training for m in model.features)
    assert model.extra_convs.training
    two = YOLOVGG(extra_channels=16, frozen_stages=2)
    two.train()
    # Stages 0 and 1 are features[0:10] in VGG-16.
    assert [m.training for m in two.features] == [False] * 10 + [True] * 21
