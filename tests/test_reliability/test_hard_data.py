# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Training goes on through images without objects, zero-width and 1-pixel
boxes: the YOLO assignment skips boxes under 0.005 of the input (darknet's
rule), trains the others, and neither crashes nor divides by zero."""
import math
import os.path as osp

import torch
from conftest import make_tiny_voc, write_voc_xml
from mmengine.runner import Runner
from mmengine.structures import InstanceData
from reliability_helpers import read_log, tiny_yolo_cfg

from mmdet_slf.models.dense_heads.yolov1_head import YOLOV1Head

SIZE = (96, 128)  # (h, w) of the tiny VOC images


def rewrite(root, year, index, objects):
    image_id = f'{year[-4:]}_trainval_{index:04d}'
    path = osp.join(root, year, 'Annotations', f'{image_id}.xml')
    write_voc_xml(path, f'{image_id}.jpg', SIZE, objects)
    return path


def hard_voc(root):
    """Two images without objects, a zero-width box next to a normal one,
    and a 1 x 1 pixel box (VOC coordinates, 1-based inclusive)."""
    make_tiny_voc(root)
    rewrite(root, 'VOC2007', 0, [])
    rewrite(root, 'VOC2012', 1, [])
    zero = rewrite(root, 'VOC2007', 1, [
        dict(name='bird', bbox=(40, 20, 40, 60)),
        dict(name='aeroplane', bbox=(10, 10, 50, 50))])
    rewrite(root, 'VOC2012', 0, [dict(name='bicycle', bbox=(60, 30, 61, 31))])
    return zero


def test_training_through_empty_images_and_tiny_boxes(tmp_path):
    root, work_dir = str(tmp_path / 'VOCdevkit'), str(tmp_path / 'w')
    zero_width_xml = hard_voc(root)
    cfg = tiny_yolo_cfg(root, work_dir, 4)  # 8 images, batch 2: all seen
    cfg.custom_hooks = list(cfg.custom_hooks) + [
        dict(type='DatasetCheckHook')]
    for dataset in cfg.train_dataloader.dataset.datasets:
        dataset.filter_cfg = dict(filter_empty_gt=False, min_size=32)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert len(runner.train_dataloader.dataset) == 8
    hub = runner.message_hub
    for term in ('coord', 'pred', 'obj', 'noobj'):
        values, _ = hub.get_scalar(f'train/loss_{term}').data
        assert len(values) == 4
        assert all(math.isfinite(v) for v in values), term
    for name, param in runner.model.named_parameters():
        assert torch.isfinite(param).all(), name
    log = read_log(work_dir)
    assert ('1 boxes of zero width or height, e.g. [39, 19, 39, 59] in '
            f'{zero_width_xml}') in log


def test_empty_images_are_dropped_by_the_default_filter(tmp_path):
    root = str(tmp_path / 'VOCdevkit')
    hard_voc(root)
    cfg = tiny_yolo_cfg(root, str(tmp_path / 'w'), 1)
    runner = Runner.from_cfg(cfg)
    # filter_empty_gt=True (the config's, as mmdet's VOC configs): 8 - 2.
    assert len(runner.train_dataloader.dataset) == 6


def test_yolo_targets_for_a_zero_width_and_a_1px_box_by_hand():
    """S=2, B=2, C=3 on a 64 x 64 input, every output 0.5. Image 0 holds a
    zero-width box, which takes no cell (under darknet's 0.005 of the
    input), image 1 a box 1 px wide, which is trained."""
    head = YOLOV1Head(num_classes=3, in_channels=4, input_size=64,
                      featmap_stride=64, num_grids=2, num_boxes=2,
                      fc_channels=8, init_cfg=None)
    pred = torch.full((2, 2, 2, 13), 0.5, requires_grad=True)
    zero_width = InstanceData(bboxes=torch.tensor([[16., 8., 16., 24.]]),
                              labels=torch.tensor([1]))
    one_pixel = InstanceData(bboxes=torch.tensor([[16., 8., 17., 24.]]),
                             labels=torch.tensor([1]))
    metas = [dict(batch_input_shape=(64, 64))] * 2
    terms = head.loss_terms(pred, [zero_width, one_pixel], metas)
    # Image 0: nothing assigned, noobj = 8 * 0.5^2.
    # Image 1: centre (16.5, 16) / 64 -> cell (0, 0), offsets (0.515625,
    # 0.5), sqrt sizes (0.125, 0.5). Both predictors decode to (0.25, 0.25)
    # with sides 0.25, IoU 0.015625 * 0.25 / 0.0625 = 0.0625: a tie, so
    # predictor 0 is responsible with target 0.0625.
    # coord = 0.015625^2 + 0.375^2; obj = (0.5 - 0.0625)^2;
    # noobj = 7 * 0.5^2; pred = (0.5 - 1)^2 + 2 * 0.5^2.
    # Every term is divided by N = 2.
    expected = dict(coord=[0.0, (0.015625**2 + 0.375**2) / 2],
                    obj=[0.0, 0.4375**2 / 2], noobj=[1.0, 0.875],
                    pred=[0.0, 0.375])
    for term, values in expected.items():
        torch.testing.assert_close(terms[f'loss_{term}'],
                                   torch.tensor(values), msg=term)
    sum(value.sum() for value in terms.values()).backward()
    assert torch.isfinite(pred.grad).all()
