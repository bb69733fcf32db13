# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The models, inputs and steps that ``tools/benchmark_fps.py`` times: a
detector built from a config (random or loaded weights), endless streams of
random or real batches that every compared model sees alike, and one
inference or training step as the runner would take it."""
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import fuse_conv_bn
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.model.utils import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner, load_checkpoint
from mmengine.structures import InstanceData

from mmdet_slf.engine.hooks import (SLFLoggerHook, claim_diagnostics,
                                    collect_diagnostics, find_weightings)


def load_cfg(path, options):
    """A config file, or ``PACKAGE::PATH`` for one shipped with a package
    (``mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py``)."""
    cfg = get_config(path) if '::' in path else Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def without_pretrained(node):
    """A copy of a model config without its ``Pretrained`` initialisers,
    so that ``init_weights`` downloads nothing."""
    if isinstance(node, dict):
        return type(node)({
            key: without_pretrained(value)
            for key, value in node.items()
            if not (key == 'init_cfg' and isinstance(value, dict)
                    and value.get('type') == 'Pretrained')
        })
    if isinstance(node, (list, tuple)):
        return type(node)(without_pretrained(value) for value in node)
    return node


def build_model(cfg, checkpoint, device, fuse, train=False):
    """Eval-mode model (train mode with ``train``); weights from
    ``checkpoint`` or random. For inference the random weights skip
    ``init_weights`` (nothing is downloaded; their scores decide how many
    boxes pass a score threshold into NMS, so compared models need the
    same ones, :func:`copy_shared_weights`); for training they come from
    the config's initialisers without the pretrained ones, so that the
    losses are those of a detector at the start of training (an SSD with
    PyTorch's default init has non-finite losses)."""
    if train and not checkpoint:
        model = MODELS.build(without_pretrained(cfg.model))
        model.init_weights()
    else:
        model = MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    model = revert_sync_batchnorm(model)
    if fuse:
        model = fuse_conv_bn(model)
    return model.to(device).train(train)


def num_classes(model_cfg):
    """The largest ``num_classes`` anywhere in a model config (a two-stage
    detector's RPN has one class, its RoI head the dataset's)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == 'num_classes' and isinstance(value, int):
                    found.append(value)
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(model_cfg)
    if not found:
        raise ValueError('no num_classes in the model config: --train '
                         'needs it to draw random labels')
    return max(found)


def test_resize_hw(cfg):
    """``(h, w)`` of the last Resize in the test pipeline."""
    pipeline = cfg.test_dataloader.dataset.get('pipeline', [])
    for step in reversed(pipeline):
        if step.get('type') in ('Resize', 'FixShapeResize') and \
                step.get('scale') is not None:
            w, h = step['scale']
            return (h, w)
        if step.get('type') == 'FixShapeResize':
            return (step['height'], step['width'])
    raise ValueError('no Resize with a scale in test_dataloader; '
                     'pass --shape H W')


def random_batches(shape, seed=0):
    """Endless random uint8 images with the meta a test pipeline gives."""
    generator = torch.Generator().manual_seed(seed)
    h, w = shape
    while True:
        image = torch.randint(0, 256, (3, h, w), generator=generator,
                              dtype=torch.uint8)
        sample = DetDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        yield dict(inputs=[image], data_samples=[sample])


def random_train_batches(shape, batch_size, classes, seed=0):
    """Endless batches of random uint8 images, each with 1 to 4 random
    boxes of at least 16 pixels a side and random labels below
    ``classes``."""
    generator = torch.Generator().manual_seed(seed)
    h, w = shape
    if min(h, w) < 16:
        raise ValueError('random training boxes are at least 16 pixels a '
                         f'side: the image must be too, got {h} x {w}')

    def uniform(low, high):
        return low + (high - low) * torch.rand(
            (), generator=generator).item()

    while True:
        images, samples = [], []
        for _ in range(batch_size):
            images.append(torch.randint(0, 256, (3, h, w),
                                        generator=generator,
                                        dtype=torch.uint8))
            count = int(torch.randint(1, 5, (), generator=generator))
            boxes = []
            for _ in range(count):
                x1, y1 = uniform(0, w - 16), uniform(0, h - 16)
                boxes.append([x1, y1, uniform(x1 + 16, w),
                              uniform(y1 + 16, h)])
            sample = DetDataSample(metainfo=dict(
                img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0),
                flip=False, flip_direction=None))
            sample.gt_instances = InstanceData(
                bboxes=torch.tensor(boxes, dtype=torch.float32),
                labels=torch.randint(0, classes, (count, ),
                                     generator=generator))
            samples.append(sample)
        yield dict(inputs=images, data_samples=samples)


def dataset_batches(cfg):
    loader_cfg = cfg.test_dataloader.copy()
    loader_cfg.update(batch_size=1, num_workers=0, persistent_workers=False)
    while True:
        yield from Runner.build_dataloader(loader_cfg, seed=0)


def copy_shared_weights(source, target):
    """Copy every tensor of ``source`` into ``target`` whose name and shape
    match; returns how many. The loss weighting of an SLF model has no
    counterpart in a fixed-weight one and keeps its own values."""
    target_state = target.state_dict()
    shared = {
        name: value
        for name, value in source.state_dict().items()
        if name in target_state and target_state[name].shape == value.shape
    }
    target.load_state_dict(shared, strict=False)
    return len(shared)


def _to_float32(value):
    if torch.is_tensor(value) and value.dtype in (torch.float16,
                                                  torch.bfloat16):
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float32(item) for item in value)
    return value


def float32_post_processing(model, device_type):
    """Run every ``predict_by_feat`` (decoding, NMS) in float32 outside
    autocast, on float32 copies of its inputs."""
    for module in model.modules():
        predict = getattr(module, 'predict_by_feat', None)
        if predict is None:
            continue

        def wrapped(*args, _predict=predict, **kwargs):
            with torch.autocast(device_type, enabled=False):
                return _predict(*_to_float32(args), **{
                    key: _to_float32(value)
                    for key, value in kwargs.items()
                })

        module.predict_by_feat = wrapped


def inference_step(model, device, fp16=False):
    """One image through ``model.test_step`` (under autocast with
    ``fp16``); returns the images done, for the interleaved timer."""
    device_type = device.split(':')[0]

    def step(batch):
        with torch.no_grad(), torch.autocast(
                device_type, dtype=torch.float16, enabled=fp16):
            model.test_step(batch)
        return 1

    return step


def read_log_vars(log_vars):
    """The values ``train_step`` returns, as Python numbers: one
    ``.item()`` per key, as ``RuntimeInfoHook.after_train_iter`` reads them
    into the message hub in a training run."""
    return {
        key: value.item() if isinstance(value, torch.Tensor) else value
        for key, value in log_vars.items()
    }


def has_slf_logger(cfg):
    """Whether the config's ``custom_hooks`` include ``SLFLoggerHook``."""
    return any(
        isinstance(hook, dict) and hook.get('type') in ('SLFLoggerHook',
                                                        SLFLoggerHook)
        for hook in cfg.get('custom_hooks', None) or [])


def training_step(model, cfg, fp16=False, log_reads=False):
    """One ``model.train_step`` with the config's optimizer (under
    ``AmpOptimWrapper`` with ``fp16``), followed with ``log_reads`` by what
    the runner reads after it: every returned value (``read_log_vars``)
    and, when the config has ``SLFLoggerHook``, the weightings'
    diagnostics, which that hook then takes out of the returned values
    (``claim_diagnostics``) and reads in one copy. Returns the images
    done."""
    optim_cfg = cfg.optim_wrapper.copy()
    if fp16:
        optim_cfg.update(type='AmpOptimWrapper', loss_scale='dynamic')
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    slf_logger = log_reads and has_slf_logger(cfg)
    if slf_logger:
        claim_diagnostics(model)
        weightings = find_weightings(model)  # once, as the hook does

    def step(batch):
        log_vars = model.train_step(batch, optim_wrapper)
        if log_reads:
            read_log_vars(log_vars)
        if slf_logger:
            collect_diagnostics(model, weightings)
        return len(batch['inputs'])

    return step


def input_streams(cfgs: Sequence[Config],
                  train: bool = False,
                  shape: Optional[Tuple[int, int]] = None,
                  batch_size: Optional[int] = None,
                  dataset: bool = False) -> Tuple[List[Iterator], int]:
    """One endless stream of batches per config, drawn alike: models of
    the same input shape see the same images (and, with ``train``, boxes
    and labels) in the same order, so that the rounds of an interleaved
    timing pair up (a heavy batch slows every model alike).

    Args:
        cfgs (Sequence[Config]): The compared models' configs.
        train (bool): Training batches (:func:`random_train_batches`) of
            ``batch_size`` with labels below the first model's
            ``num_classes``; else single images. Defaults to False.
        shape (tuple[int, int], optional): ``(h, w)`` of every image.
            Defaults to None (each config's test resize scale).
        batch_size (int, optional): Training batch size. Defaults to None
            (the first config's ``train_dataloader.batch_size``).
        dataset (bool): Real test images instead of random ones (inference
            only). Defaults to False.

    Returns:
        tuple[list, int]: The streams and the batch size.
    """
    if train:
        batch_size = batch_size or cfgs[0].train_dataloader.batch_size
        classes = num_classes(cfgs[0].model)
    else:
        batch_size = 1
    streams = []
    for cfg in cfgs:
        size = tuple(shape) if shape else test_resize_hw(cfg)
        if train:
            streams.append(random_train_batches(size, batch_size, classes))
        elif dataset:
            streams.append(dataset_batches(cfg))
        else:
            streams.append(random_batches(size))
    return streams, batch_size
