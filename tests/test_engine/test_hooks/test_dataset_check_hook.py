# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""``check_num_classes`` (run by ``DatasetCheckHook``) against the heads of
mmdet's own detectors: class-agnostic proposal heads are left out, and a
panoptic dataset's box heads detect its things only. The hook itself on
small built datasets: what it refuses, warns about and lets pass."""
import os
import os.path as osp
from types import SimpleNamespace

import pytest
from conftest import write_voc_xml
from mmdet.datasets import CocoPanopticDataset, VOCDataset
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.registry import DefaultScope
from torch import nn

from mmdet_slf.engine.checks import check_num_classes, class_heads
from mmdet_slf.engine.hooks import DatasetCheckHook
from mmdet_slf.engine.hooks import dataset_check_hook

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


def test_a_dataset_without_classes_is_not_checked():
    """No ``metainfo.classes`` (a dataset type that does not name them):
    there is nothing to compare ``num_classes`` with."""
    check_num_classes(two_stage(RPN_HEAD, 20), dataset(dict()))


@pytest.mark.parametrize('count, shown', [
    (8, "('c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7')"),
    (9, "('c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', '...')")])
def test_the_message_shows_at_most_eight_classes(count, shown):
    """Eight classes are shown in full; of nine, the first eight and
    '...'."""
    classes = tuple(f'c{index}' for index in range(count))
    with pytest.raises(ValueError) as error:
        check_num_classes(two_stage(RPN_HEAD, 20), dataset(dict(
            classes=classes)))
    assert f'train_dataloader.dataset has {count} classes {shown}: set ' \
        f'model.roi_head.bbox_head.num_classes={count}, or set ' \
        'train_dataloader.dataset.metainfo=dict(classes=...) to the 20 ' \
        'classes the model predicts' in str(error.value)


class Images:
    """A built dataset with VOC's 20 classes and one box per image."""

    def __init__(self, boxes=(), classes=VOCDataset.METAINFO['classes']):
        self.boxes = list(boxes)
        self.metainfo = dict(classes=tuple(classes))

    def __len__(self) -> int:
        return len(self.boxes)

    def get_data_info(self, index: int) -> dict:
        return dict(img_path=f'{index}.jpg',
                    instances=[dict(bbox=self.boxes[index])])


def fake_runner(train, test=None, model=None):
    return SimpleNamespace(
        model=nn.Linear(1, 1) if model is None else model,
        train_dataloader=SimpleNamespace(dataset=train),
        test_dataloader=SimpleNamespace(dataset=test))


def record_logs(monkeypatch) -> list:
    """``(message, level)`` of every ``print_log`` of the hook."""
    logs = []
    monkeypatch.setattr(
        dataset_check_hook, 'print_log',
        lambda message, logger=None, level=20: logs.append((message, level)))
    return logs


def test_bad_settings_and_an_empty_training_set_are_refused():
    with pytest.raises(ValueError,
                       match=r"unknown_class_names must be one of "
                       r"\('raise', 'warn'\), got 'ignore'"):
        DatasetCheckHook(unknown_class_names='ignore')
    with pytest.raises(ValueError,
                       match='train_dataloader.dataset has no images: check '
                       'ann_file and filter_cfg'):
        DatasetCheckHook().before_train(fake_runner(Images([])))


def test_zero_size_boxes_are_kept_with_a_warning(monkeypatch):
    """Two of three boxes have zero width or height: one warning (level
    30) counts both and names the first with its file; nothing raises."""
    logs = record_logs(monkeypatch)
    DatasetCheckHook().before_train(fake_runner(Images(
        [[1, 1, 4, 4], [10, 10, 10, 20], [5, 5, 9, 5]])))
    assert len(logs) == 1
    message, level = logs[0]
    assert level == 30
    assert message.startswith('2 boxes of zero width or height, e.g. '
                              '[10, 10, 10, 20] in 1.jpg;')
    logs.clear()
    DatasetCheckHook().before_train(fake_runner(Images([[1, 1, 4, 4]])))
    assert logs == []


def test_the_model_inside_a_wrapper_is_checked():
    """A wrapped model (``DataParallel``) is compared by its own heads,
    named without the wrapper's ``module.``: the head predicts 3 classes,
    the training set has VOC's 20."""
    model = nn.DataParallel(two_stage(RPN_HEAD, 3))
    with pytest.raises(ValueError,
                       match=r'^model\.roi_head\.bbox_head\.num_classes=3 '
                       r'but train_dataloader\.dataset has 20 classes'):
        DatasetCheckHook().before_train(
            fake_runner(Images([[1, 1, 4, 4]]), model=model))


def test_testing_checks_the_test_set():
    """Before testing, ``num_classes`` is compared with the test set (3
    classes here), not the training set (20, which the head matches)."""
    runner = fake_runner(Images([[1, 1, 4, 4]]),
                         test=Images(classes=('a', 'b', 'c')),
                         model=two_stage(RPN_HEAD, 20))
    DatasetCheckHook().before_train(runner)
    with pytest.raises(ValueError,
                       match=r'num_classes=20 but test_dataloader\.dataset '
                       r'has 3 classes'):
        DatasetCheckHook().before_test(runner)


def voc_subset(root: str, images: list) -> VOCDataset:
    """A VOC2007 tree of ``[[(name, bbox)...]...]`` (one list per image)
    and a VOCDataset on it that trains three of the 20 VOC classes."""
    base = osp.join(root, 'VOC2007')
    for sub in ('Annotations', 'ImageSets/Main'):
        os.makedirs(osp.join(base, sub))
    ids = [f'{index:06d}' for index in range(len(images))]
    for image_id, objects in zip(ids, images):
        write_voc_xml(osp.join(base, 'Annotations', f'{image_id}.xml'),
                      f'{image_id}.jpg', (100, 100),
                      [dict(name=name, bbox=bbox) for name, bbox in objects])
    with open(osp.join(base, 'ImageSets/Main/trainval.txt'), 'w') as f:
        f.write('\n'.join(ids) + '\n')
    return VOCDataset(
        data_root=root, ann_file='VOC2007/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        metainfo=dict(classes=('aeroplane', 'bicycle', 'bird')),
        pipeline=[])


BOX = (10, 10, 50, 50)


def test_a_typo_and_a_left_out_class_are_told_apart(tmp_path, monkeypatch):
    """Image 0 holds two dogs (a VOC class the subset leaves out) and the
    typo ``persn``; image 1 a bird (in the subset) and a third dog. The
    dogs are counted over all files (3) and only logged; the typo is
    refused with its file, or only warned about in 'warn' mode, and not
    read at all with ``check_xml=False``."""
    from mmdet_slf.engine.checks import find_unknown_class_names
    data = voc_subset(str(tmp_path), [
        [('dog', BOX), ('persn', BOX), ('dog', BOX)],
        [('bird', BOX), ('dog', BOX)]])
    path = str(tmp_path / 'VOC2007/Annotations/000000.xml')
    assert find_unknown_class_names(data) == ({'persn': [path]},
                                              {'dog': 3})
    runner = fake_runner(data)
    logs = record_logs(monkeypatch)
    message = ("XML objects with class names that VOCDataset does not "
               f"know: 'persn' in {path}. mmdet skips them silently.")
    with pytest.raises(ValueError) as error:
        DatasetCheckHook().before_train(runner)
    assert str(error.value).startswith(message)
    assert logs == [('objects of classes left out of metainfo.classes are '
                     "skipped, as mmdet does: {'dog': 3}", 20)]
    logs.clear()
    DatasetCheckHook(unknown_class_names='warn').before_train(runner)
    assert [level for _, level in logs] == [20, 30]
    assert logs[1][0].startswith(message)
    logs.clear()
    DatasetCheckHook(check_xml=False).before_train(runner)
    assert logs == []
