# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The YOLOv1 networks of the paper's Table 5: YOLO (24 conv layers), Fast
YOLO (9 conv layers) and YOLO with a VGG-16 trunk.

Layer lists follow Redmon et al., "You Only Look Once", CVPR 2016, Fig. 3
(YOLO) and Sec. 2 (Fast YOLO: 9 instead of 24 conv layers, fewer filters).
The fully connected layers of YOLOv1 live in
:class:`~mmdet_slf.models.dense_heads.YOLOV1Head`, so every backbone here
returns one ``[N, C, H/64, W/64]`` map (``7 x 7`` at 448 x 448).
"""
from typing import List, Optional, Sequence, Tuple

import torch.nn as nn
from mmcv.cnn import VGG, ConvModule
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

# A stage is a list of (out_channels, kernel_size, stride) conv layers; every
# stage but the last ends with a 2x2 / 2 max-pool (``pool_last=False``).
_YOLO_STAGES = [
    [(64, 7, 2)],
    [(192, 3, 1)],
    [(128, 1, 1), (256, 3, 1), (256, 1, 1), (512, 3, 1)],
    [(256, 1, 1), (512, 3, 1)] * 4 + [(512, 1, 1), (1024, 3, 1)],
    [(512, 1, 1), (1024, 3, 1)] * 2 + [(1024, 3, 1), (1024, 3, 2)],
    [(1024, 3, 1), (1024, 3, 1)],
]
_YOLO_POOLS = [True, True, True, True, False, False]

# Fast YOLO: the paper gives only "9 instead of 24 conv layers, fewer
# filters". Ours follows darknet's tiny networks: six 3x3 conv + max-pool
# pairs (16 ... 512 filters), then three 3x3x1024 layers (stride 64).
_FAST_STAGES = [[(16, 3, 1)], [(32, 3, 1)], [(64, 3, 1)], [(128, 3, 1)],
                [(256, 3, 1)], [(512, 3, 1)],
                [(1024, 3, 1), (1024, 3, 1), (1024, 3, 1)]]
_FAST_POOLS = [True] * 6 + [False]


def _make_divisible(channels: float, divisor: int = 8) -> int:
    """Round a widened channel count to a multiple of ``divisor``."""
    return max(divisor, int(channels + divisor / 2) // divisor * divisor)


@MODELS.register_module()
class YOLOV1Darknet(BaseModule):
    """The YOLOv1 convolutional network: YOLO (24 conv) or Fast YOLO (9 conv).

    Output stride is 64 for both: a 448 x 448 input gives a 7 x 7 map.
    The paper's network has no batch normalisation; ``norm_cfg`` adds it
    (darknet's later ``yolov1.cfg`` does the same), which training from
    scratch needs. ``norm_cfg=None`` gives the conv + bias layers of the paper.

    Args:
        arch (str): ``'yolo'`` (24 conv layers) or ``'fast'`` (9 conv layers).
            Defaults to 'yolo'.
        widen_factor (float): Multiplier of every layer's filters (rounded to
            a multiple of 8), for small demos and tests. Defaults to 1.0.
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages whose outputs are returned, in
            stage order (as ``out_channels`` lists them) whatever the order
            given; negative indices count from the end and an index given
            twice (e.g. ``(6, -1)``) is returned once. Stages after the last
            one returned are not built. Defaults to (-1, ).
        frozen_stages (int): Stages ``0 .. frozen_stages - 1`` are frozen
            (e.g. after loading ImageNet weights); -1 freezes none. At most
            the number of stages built for ``out_indices``. Defaults to -1.
        norm_cfg (dict, optional): Norm layer config. Defaults to
            ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict): Activation config; the paper uses leaky ReLU 0.1.
            Defaults to ``dict(type='LeakyReLU', negative_slope=0.1)``.
        norm_eval (bool): Keep BN layers in eval mode while training.
            Defaults to False.
        init_cfg (dict or list[dict], optional): Initialisation config, e.g.
            ``dict(type='Pretrained', checkpoint=...)``. Defaults to
            Kaiming for conv and constant 1 for norm layers.
    """

    arch_settings = {
        'yolo': (_YOLO_STAGES, _YOLO_POOLS),
        'fast': (_FAST_STAGES, _FAST_POOLS),
    }

    def __init__(self,
                 arch: str = 'yolo',
                 widen_factor: float = 1.0,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (-1, ),
                 frozen_stages: int = -1,
                 norm_cfg: Optional[ConfigType] = dict(
                     type='BN', requires_grad=True),
                 act_cfg: ConfigType = dict(
                     type='LeakyReLU', negative_slope=0.1),
                 norm_eval: bool = False,
                 init_cfg: OptMultiConfig = [
                     dict(
                         type='Kaiming',
                         layer='Conv2d',
                         a=0.1,
                         nonlinearity='leaky_relu'),
                     dict(type='Constant', val=1, layer=['_BatchNorm'])
                 ]) -> None:
        super().__init__(init_cfg)
        if arch not in self.arch_settings:
            raise ValueError(f'arch must be one of '
                             f'{sorted(self.arch_settings)}, got {arch!r}')
        if not widen_factor > 0:
            raise ValueError(f'widen_factor must be > 0, got {widen_factor!r}')
        stages, pools = self.arch_settings[arch]
        self.num_stages = len(stages)
        self.out_indices = self._normalise_indices(out_indices,
                                                   self.num_stages)
        # Only stages up to the last output are built (see below).
        num_built = max(self.out_indices) + 1
        if not -1 <= frozen_stages <= num_built:
            raise ValueError(f'frozen_stages must be in [-1, {num_built}] '
                             f'(the stages built for out_indices='
                             f'{tuple(out_indices)}), got {frozen_stages}')
        self.arch = arch
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.stage_names: List[str] = []
        self.stage_channels: List[int] = []
        channels = in_channels
        for index, (layers, pool) in enumerate(zip(stages, pools)):
            if index > max(self.out_indices):
                # Stages after the last output would get no gradient (DDP
                # needs every parameter in the graph) and cost time: skip.
                break
            modules = []
            for out_channels, kernel_size, stride in layers:
                out_channels = _make_divisible(out_channels * widen_factor)
                modules.append(
                    ConvModule(
                        channels,
                        out_channels,
                        kernel_size,
                        stride=stride,
                        padding=kernel_size // 2,
                        norm_cfg=norm_cfg,
                        act_cfg=act_cfg))
                channels = out_channels
            if pool:
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            name = f'stage{index}'
            self.add_module(name, nn.Sequential(*modules))
            self.stage_names.append(name)
            self.stage_channels.append(channels)
        # Now, not only in train(): mmengine wraps the model in DDP before
        # the loop calls train(), and DDP must not see the frozen parameters
        # as trainable (they would never get a gradient).
        self._freeze_stages()

    @staticmethod
    def _normalise_indices(indices: Sequence[int],
                           num_stages: int) -> Tuple[int, ...]:
        """Sorted, duplicate-free, non-negative stage indices: ``forward``
        returns the maps in stage order, once each."""
        normalised = []
        for index in indices:
            if not -num_stages <= index < num_stages:
                raise ValueError(f'out_indices entries must be in '
                                 f'[{-num_stages}, {num_stages - 1}], '
                                 f'got {tuple(indices)}')
            normalised.append(index % num_stages)
        return tuple(sorted(set(normalised)))

    @property
    def out_channels(self) -> List[int]:
        """Channels of each returned map (the head's ``in_channels``)."""
        return [self.stage_channels[i] for i in self.out_indices]

    @property
    def num_conv_layers(self) -> int:
        """Number of conv layers (24 for YOLO, 9 for Fast YOLO)."""
        return sum(
            isinstance(m, nn.Conv2d) for name in self.stage_names
            for m in getattr(self, name).modules())

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Return the maps of ``out_indices`` (``[N, C, H/64, W/64]`` for the
        last stage)."""
        outs = []
        for index, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self) -> None:
        for index in range(self.frozen_stages):
            stage = getattr(self, self.stage_names[index])
            stage.eval()
            for param in stage.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'YOLOV1Darknet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self


@MODELS.register_module()
class YOLOVGG(BaseModule):
    """YOLO with a VGG trunk ("YOLO VGG-16" of the paper's Table 5).

    The 13 conv layers of mmcv's :class:`~mmcv.cnn.VGG` (stride 32) are
    followed by the four detection conv layers YOLO adds on top of its
    ImageNet trunk (``3x3x1024``, ``3x3x1024 / 2``, ``3x3x1024``,
    ``3x3x1024``), so the output stride is 64 as for YOLO and the same
    :class:`YOLOV1Head` reads a ``7 x 7`` map at 448 x 448. The YOLO paper
    does not describe its VGG-16 variant; this extra-layer design is ours.
    The VGG module names (``features.<i>``) match torchvision's, so its
    ImageNet checkpoint loads into the trunk with ``init_cfg=dict(
    type='Pretrained', checkpoint='https://download.pytorch.org/models/
    vgg16-397923af.pth')`` (or ``'torchvision://vgg16'`` with torchvision
    installed).

    Args:
        depth (int): VGG depth, one of 11, 13, 16, 19. Defaults to 16.
        extra_channels (int): Filters of the four extra conv layers.
            Defaults to 1024.
        frozen_stages (int): VGG stages ``0 .. frozen_stages - 1`` are
            frozen; -1 freezes none. Defaults to -1.
        norm_cfg (dict, optional): Norm config of the extra layers (the VGG
            trunk has none, as in torchvision's ``vgg16``). Defaults to
            ``dict(type='BN', requires_grad=True)``.
        act_cfg (dict): Activation of the extra layers. Defaults to
            ``dict(type='LeakyReLU', negative_slope=0.1)``.
        init_cfg (dict or list[dict], optional): Initialisation config.
            Defaults to Kaiming for conv and constant 1 for norm layers.
    """

    def __init__(self,
                 depth: int = 16,
                 extra_channels: int = 1024,
                 frozen_stages: int = -1,
                 norm_cfg: Optional[ConfigType] = dict(
                     type='BN', requires_grad=True),
                 act_cfg: ConfigType = dict(
                     type='LeakyReLU', negative_slope=0.1),
                 init_cfg: OptMultiConfig = [
                     dict(type='Kaiming', layer='Conv2d'),
                     dict(type='Constant', val=1, layer=['_BatchNorm'])
                 ]) -> None:
        super().__init__(init_cfg)
        if depth not in VGG.arch_settings:
            raise ValueError(f'depth must be one of '
                             f'{sorted(VGG.arch_settings)}, got {depth!r}')
        if not isinstance(extra_channels, int) or extra_channels < 1:
            raise ValueError('extra_channels must be an int >= 1, '
                             f'got {extra_channels!r}')
        if not -1 <= frozen_stages <= 5:
            raise ValueError(
                f'frozen_stages must be in [-1, 5], got {frozen_stages}')
        vgg = VGG(depth, with_bn=False, out_indices=(4, ))
        # Keep only VGG's layer list: its own init/train logic is replaced by
        # mmengine's init_cfg and our freezing.
        self.features = vgg.features
        self.range_sub_modules = vgg.range_sub_modules
        self.frozen_stages = frozen_stages
        extra = []
        channels = 512
        for stride in (1, 2, 1, 1):
            extra.append(
                ConvModule(
                    channels,
                    extra_channels,
                    3,
                    stride=stride,
                    padding=1,
                    norm_cfg=norm_cfg,
                    act_cfg=act_cfg))
            channels = extra_channels
        self.extra_convs = nn.Sequential(*extra)
        self.out_channels = [extra_channels]
        # At build, before mmengine's DDP wrapper registers the parameters.
        self._freeze_stages()

    def forward(self, x: Tensor) -> Tuple[Tensor]:
        """Return ``([N, extra_channels, H/64, W/64], )``."""
        return (self.extra_convs(self.features(x)), )

    def _freeze_stages(self) -> None:
        for stage in range(max(self.frozen_stages, 0)):
            for index in range(*self.range_sub_modules[stage]):
                module = self.features[index]
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> 'YOLOVGG':
        super().train(mode)
        self._freeze_stages()
        return self
