# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Shared fixtures: a tiny VOC-format dataset written on the fly.

Images are real JPEG files with solid shapes on a noisy background and the
annotations are real VOC XML, so mmdet's own ``VOCDataset`` and
``VOCMetric`` read them unchanged; nothing needs the network or real VOC.
"""
import os
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
               'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse',
               'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
               'train', 'tvmonitor')

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# Smallest input (a multiple of 8) whose SSD300 feature maps are all
# non-empty: 33, 17, 9, 5, 3, 1.
SSD_MIN_SIZE = 264
# A YOLOv1 config shrunk for CPU tests: 128 px input (a 2x2 map at stride
# 64), 1/8 of the filters, a 64-wide FC.
SMALL_YOLO = dict(
    model=dict(
        backbone=dict(widen_factor=0.125),
        bbox_head=dict(in_channels=128, fc_channels=64, input_size=128)))


def fill_disk_on_write(monkeypatch) -> List[str]:
    """Make ``atomic_write`` meet a full disk: every write puts half its
    data in the temporary file and raises ``OSError(28)``. Returns the
    list the temporary file names are appended to, call by call."""
    from mmdet_slf.engine.checkpoint import atomic_io
    real_open, real_fdopen = os.open, os.fdopen
    names = []

    class FullDisk:

        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            raise OSError(28, 'No space left on device')

    def recording_open(name, *args, **kwargs):
        if atomic_io.TEMP_INFIX in os.path.basename(name):
            names.append(name)
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(atomic_io.os, 'open', recording_open)
    monkeypatch.setattr(atomic_io.os, 'fdopen',
                        lambda fd, *args: FullDisk(real_fdopen(fd, *args)))
    return names


def small_yolo_cfg(name: str):
    """``configs/<name>`` with :data:`SMALL_YOLO` merged in."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', name))
    cfg.merge_from_dict(SMALL_YOLO)
    return cfg


def refusal(parse_args, argv: Sequence[str], capsys) -> str:
    """What a tool's ``parse_args(argv)`` writes to stderr when it refuses
    ``argv``, after checking that it exits with argparse's status 2."""
    with pytest.raises(SystemExit) as exit_info:
        parse_args(list(argv))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def write_voc_xml(path: str, filename: str, size: Tuple[int, int],
                  objects: Sequence[Dict]) -> None:
    """Write one VOC annotation; ``objects`` hold ``name`` and ``bbox``
    (x1, y1, x2, y2, 1-based inclusive like VOC) and optional
    ``difficult``."""
    height, width = size
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = 'VOC2007'
    ET.SubElement(root, 'filename').text = filename
    size_el = ET.SubElement(root, 'size')
    ET.SubElement(size_el, 'width').text = str(width)
    ET.SubElement(size_el, 'height').text = str(height)
    ET.SubElement(size_el, 'depth').text = '3'
    for obj in objects:
        obj_el = ET.SubElement(root, 'object')
        ET.SubElement(obj_el, 'name').text = obj['name']
        ET.SubElement(obj_el, 'pose').text = 'Unspecified'
        ET.SubElement(obj_el, 'truncated').text = '0'
        ET.SubElement(obj_el, 'difficult').text = str(obj.get('difficult', 0))
        box_el = ET.SubElement(obj_el, 'bndbox')
        for key, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), obj['bbox']):
            ET.SubElement(box_el, key).text = str(int(value))
    ET.ElementTree(root).write(path)


def make_tiny_voc(root: str,
                  num_trainval: int = 4,
                  num_test: int = 2,
                  image_size: Tuple[int, int] = (96, 128),
                  classes: Sequence[str] = VOC_CLASSES[:3],
                  years: Sequence[str] = ('VOC2007', 'VOC2012'),
                  seed: int = 0) -> Dict[str, List[dict]]:
    """Write a tiny VOC tree under ``root`` and return its annotations.

    Each image holds one or two filled rectangles whose class decides their
    colour, so a detector can in principle learn them.

    Returns:
        dict: ``{'<year>/<split>': [{'id', 'objects'}...]}``.
    """
    import cv2
    rng = np.random.RandomState(seed)
    colours = [(220, 40, 40), (40, 200, 40), (40, 40, 220), (200, 200, 40)]
    height, width = image_size
    written = {}
    for year in years:
        base = osp.join(root, year)
        for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
            os.makedirs(osp.join(base, sub), exist_ok=True)
        for split, count in (('trainval', num_trainval), ('test', num_test)):
            ids = []
            entries = []
            for index in range(count):
                image_id = f'{year[-4:]}_{split}_{index:04d}'
                image = rng.randint(90, 140, size=(height, width, 3),
                                    dtype=np.uint8)
                objects = []
                for _ in range(1 + index % 2):
                    label = int(rng.randint(len(classes)))
                    w = int(rng.randint(width // 5, width // 2))
                    h = int(rng.randint(height // 5, height // 2))
                    x1 = int(rng.randint(1, width - w))
                    y1 = int(rng.randint(1, height - h))
                    image[y1 - 1:y1 + h, x1 - 1:x1 + w] = colours[
                        label % len(colours)]
                    objects.append(
                        dict(name=classes[label],
                             bbox=(x1, y1, x1 + w, y1 + h)))
                cv2.imwrite(
                    osp.join(base, 'JPEGImages', f'{image_id}.jpg'), image)
                write_voc_xml(
                    osp.join(base, 'Annotations', f'{image_id}.xml'),
                    f'{image_id}.jpg', image_size, objects)
                ids.append(image_id)
                entries.append(dict(id=image_id, objects=objects))
            with open(osp.join(base, 'ImageSets/Main', f'{split}.txt'),
                      'w') as f:
                f.write('\n'.join(ids) + '\n')
            written[f'{year}/{split}'] = entries
    return written


@pytest.fixture(scope='session')
def tiny_voc_root(tmp_path_factory) -> str:
    """A tiny VOC2007 + VOC2012 tree shared by the whole session."""
    root = str(tmp_path_factory.mktemp('tiny_voc') / 'VOCdevkit')
    make_tiny_voc(root)
    return root


def _patch_pipeline_and_roots(node, data_root: str,
                              image_size: Tuple[int, int]) -> None:
    """Recursively point datasets at ``data_root`` and shrink resizes."""
    if isinstance(node, dict):
        if 'data_root' in node:
            node['data_root'] = data_root
        if node.get('type') in ('Resize', 'RandomResize', 'FixShapeResize'):
            node['scale'] = image_size
            node.pop('width', None), node.pop('height', None)
            if node.get('type') == 'FixShapeResize':
                node['width'], node['height'] = image_size
                node.pop('scale')
        if node.get('type') == 'RandomResize':
            # a single scale needs a ratio range in mmcv's RandomResize
            node['ratio_range'] = (1.0, 1.0)
        if node.get('type') == 'RandomChoiceResize':
            node['scales'] = [image_size]
        if node.get('type') == 'RepeatDataset':
            node['times'] = 1
        for value in node.values():
            _patch_pipeline_and_roots(value, data_root, image_size)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _patch_pipeline_and_roots(value, data_root, image_size)


def _drop_pretrained(node) -> None:
    """Remove ``Pretrained`` init configs: tests have no network."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            node['init_cfg'] = None
        elif isinstance(init_cfg, list):
            node['init_cfg'] = [
                c for c in init_cfg if c.get('type') != 'Pretrained'
            ] or None
        for value in node.values():
            _drop_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _drop_pretrained(value)


def patch_cfg_for_tiny_voc(cfg,
                           data_root: str,
                           work_dir: str,
                           image_size: Tuple[int, int] = (96, 96),
                           batch_size: int = 2,
                           max_iters: int = 1):
    """Point a VOC config at tiny data and a tiny, iteration-based schedule.

    ``Pretrained`` init configs are dropped (no network), a ``YOLOV1Head``
    gets ``input_size`` = the image size rounded up to its stride (and a
    conv head the matching ``num_grids``), and training ends without
    validation or a checkpoint.

    Args:
        cfg (Config): Config to change in place.
        data_root (str): Root holding VOC2007/ and VOC2012/.
        work_dir (str): Work directory.
        image_size (tuple[int, int]): (width, height) for every resize.
        batch_size (int): Batch size of every dataloader.
        max_iters (int): Training iterations.

    Returns:
        Config: ``cfg``.
    """
    if cfg.get('model', {}).get('backbone', {}).get('type') == 'SSDVGG':
        # SSD300 ends on unpadded 3x3 convs that need >= 257 px of input.
        image_size = tuple(max(side, SSD_MIN_SIZE) for side in image_size)
    head = cfg.get('model', {}).get('bbox_head') or {}
    if head.get('type') == 'YOLOV1Head':
        # The FC head is sized by the input: a multiple of the stride.
        stride = head.get('featmap_stride', 64)
        image_size = tuple(-(-side // stride) * stride for side in image_size)
        head['input_size'] = image_size
        if head.get('head') == 'conv':
            # One cell per feature-map position.
            head['num_grids'] = image_size[0] // stride
    _drop_pretrained(cfg.get('model'))
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        _patch_pipeline_and_roots(loader, data_root, image_size)
        loader['batch_size'] = batch_size if split == 'train' else 1
        loader['num_workers'] = 0
        loader['persistent_workers'] = False
        if 'batch_sampler' in loader:
            loader['batch_sampler'] = None
    for key in ('train_pipeline', 'test_pipeline'):
        if key in cfg:
            _patch_pipeline_and_roots(cfg[key], data_root, image_size)
    cfg.work_dir = work_dir
    # IterBasedTrainLoop validates at its last iteration unless val_begin
    # lies beyond it.
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop',
        max_iters=max_iters,
        val_begin=max_iters + 1,
        val_interval=10**6)
    cfg.param_scheduler = []
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    # No checkpoint at the last iteration either: saving the large YOLO
    # models takes longer than their training step.
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=10**6, by_epoch=False,
        save_last=False)
    cfg.log_processor = dict(type='LogProcessor', window_size=1,
                             by_epoch=False)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.env_cfg = dict(cudnn_benchmark=False,
                       mp_cfg=dict(mp_start_method='fork'),
                       dist_cfg=dict(backend='gloo'))
    cfg.pop('auto_scale_lr', None)
    return cfg


@pytest.fixture
def repo_root() -> str:
    return REPO_ROOT


@pytest.fixture(autouse=True)
def one_thread_for_method_tests(request):
    """The method's tests (tests/test_slf) run many tiny steps: one thread
    is faster for them and does not oversubscribe a busy machine."""
    if 'test_slf' not in str(request.node.fspath):
        yield
        return
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def two_weightings_model():
    """A toy mmengine model that weights two per-image terms with SLF and
    one term with a ``FixedWeighting`` nested in a loss module, as in a
    detector: what ``SLFLoggerHook`` and the weight plots read."""
    from mmengine.model import BaseModel
    from torch import nn

    from mmdet_slf.slf import FixedWeighting, SLFWeighting

    class TwoWeightings(BaseModel):

        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 2)
            self.weighting = SLFWeighting(terms=['coord', 'obj'],
                                          prior=[5.0, 1.0], num_samples=2,
                                          estimator='gumbel')
            self.loss_cls = nn.Module()
            self.loss_cls.weighting = FixedWeighting(terms=['x'],
                                                     weights=[2.0])

        def forward(self, inputs, data_samples=None, mode='tensor'):
            raw = self.linear(inputs).pow(2)  # [N, 2]
            losses = self.weighting({'loss_coord': raw[:, 0],
                                     'loss_obj': raw[:, 1]})
            nested = self.loss_cls.weighting({'loss_x': raw.mean()})
            losses['loss_x'] = nested['loss_x']
            return losses

    return TwoWeightings()


def toy_runner(model, work_dir: str, max_iters: int, custom_hooks: list,
               **kwargs):
    """An mmengine ``Runner`` that trains ``model`` (e.g.
    :func:`two_weightings_model`) with SGD on batches of 4 random inputs
    ``[3]``, ``max_iters`` iterations, in the order given."""
    from mmengine.runner import Runner
    return Runner(
        model=model,
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=[
                dict(inputs=torch.randn(3)) for _ in range(4 * max_iters)
            ],
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=4,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        custom_hooks=custom_hooks,
        default_scope='mmdet',
        **kwargs)
