# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Every row of the table in docs/troubleshooting.md: the misconfiguration
or bad input, and the message the user sees (which names the fix)."""
import os.path as osp
import xml.etree.ElementTree as ET

import pytest
import torch
from conftest import make_tiny_voc
from mmengine.runner import Runner
from reliability_helpers import read_log, run_tool, tiny_yolo_cfg

from mmdet_slf.engine.checkpoint import CheckpointError

ANN = 'VOC2007/Annotations/2007_trainval_0000.xml'


@pytest.fixture
def voc(tmp_path):
    """A fresh tiny VOC tree that a test may damage."""
    root = str(tmp_path / 'VOCdevkit')
    make_tiny_voc(root)
    return root


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_voc_root):
    """A checkpoint of the tiny SLF Fast YOLO after one iteration."""
    work_dir = str(tmp_path_factory.mktemp('trained'))
    Runner.from_cfg(tiny_yolo_cfg(tiny_voc_root, work_dir, 1)).train()
    return osp.join(work_dir, 'iter_1.pth')


def dump(cfg, tmp_path, name=None):
    """``cfg`` written as a file named after the test: mmengine names a
    run's logger after its config file and start second, and two runs of
    one name in one second share a logger (the second logs into the
    first's file)."""
    path = str(tmp_path / (name or f'{tmp_path.name}.py'))
    cfg.dump(path)
    return path


def edit_object(root, relpath, **fields):
    """Change the first object of an annotation (``name`` or bndbox
    coordinates ``xmin``...)."""
    path = osp.join(root, relpath)
    tree = ET.parse(path)
    obj = tree.getroot().find('object')
    for key, value in fields.items():
        element = obj.find(key) if key == 'name' else obj.find(
            'bndbox').find(key)
        element.text = str(value)
    tree.write(path)
    return path


def test_missing_data_root(tmp_path):
    cfg = tiny_yolo_cfg(str(tmp_path / 'nowhere'), str(tmp_path / 'w'), 1)
    with pytest.raises(FileNotFoundError,
                       match=r'train_dataloader: data_root ".*nowhere" does '
                       r'not exist.*--cfg-options'):
        run_tool('train', [dump(cfg, tmp_path)])


def test_empty_annotation_file(voc, tmp_path):
    ann_file = osp.join(voc, 'VOC2007/ImageSets/Main/trainval.txt')
    open(ann_file, 'w').close()
    cfg = tiny_yolo_cfg(voc, str(tmp_path / 'w'), 1)
    with pytest.raises(ValueError,
                       match=r'train_dataloader: ann_file ".*VOC2007/'
                       r'ImageSets/Main/trainval.txt" lists no image ids'):
        run_tool('train', [dump(cfg, tmp_path)])


def test_every_image_filtered_out(voc, tmp_path):
    cfg = tiny_yolo_cfg(voc, str(tmp_path / 'w'), 1)
    for dataset in cfg.train_dataloader.dataset.datasets:
        # Capitalised: matches none of the XML names.
        dataset.metainfo = dict(classes=('Aeroplane', 'Bicycle', 'Bird'))
    with pytest.raises(ValueError,
                       match=r'train_dataloader.dataset has no images after '
                       r'loading .*every image was dropped.*filter_empty_gt'
                       r"=True drops images without an object of .*"
                       r"'Aeroplane'.*<name> tags"):
        run_tool('train', [dump(cfg, tmp_path)])


def test_unknown_class_name_in_xml(voc, tmp_path):
    path = edit_object(voc, ANN, name='persn')
    cfg = tiny_yolo_cfg(voc, str(tmp_path / 'w'), 1)
    with pytest.raises(ValueError,
                       match=r"class names that VOCDataset does not know: "
                       r"'persn' in " + path + r'\. mmdet skips them '
                       r'silently\. Fix the <name> in these files'):
        run_tool('train', [dump(cfg, tmp_path)])


def test_class_left_out_of_a_subset_is_not_an_error(voc, tmp_path):
    from mmdet_slf.engine.checks import find_unknown_class_names
    from mmdet.datasets import VOCDataset
    edit_object(voc, ANN, name='dog')  # a VOC class outside the subset
    dataset = VOCDataset(
        data_root=voc, ann_file='VOC2007/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        metainfo=dict(classes=('aeroplane', 'bicycle', 'bird')),
        pipeline=[])
    unknown, excluded = find_unknown_class_names(dataset)
    assert unknown == {} and excluded == {'dog': 1}


def test_inverted_box(voc, tmp_path):
    path = edit_object(voc, ANN, xmin=40, xmax=30)
    cfg = tiny_yolo_cfg(voc, str(tmp_path / 'w'), 1)
    with pytest.raises(ValueError,
                       match=r'1 inverted boxes \(xmax < xmin or ymax < '
                       r'ymin\), e\.g\. \[39, .*, 29, .*\] in ' + path +
                       r'.*Fix the annotations'):
        run_tool('train', [dump(cfg, tmp_path)])


def test_wrong_num_classes(tiny_voc_root, tmp_path):
    cfg = tiny_yolo_cfg(tiny_voc_root, str(tmp_path / 'w'), 1)
    cfg.model.bbox_head.num_classes = 3
    with pytest.raises(ValueError,
                       match=r'model.bbox_head.num_classes=3 but '
                       r'train_dataloader.dataset has 20 classes .*set '
                       r'model.bbox_head.num_classes=20, or set '
                       r'train_dataloader.dataset.metainfo'):
        run_tool('train', [dump(cfg, tmp_path)])


@pytest.mark.parametrize('weighting, error, message', [
    (dict(terms=['box', 'pred', 'obj', 'noobj']), ValueError,
     r"weighting.terms must be \['coord', 'pred', 'obj', 'noobj'\] \(any "
     r"order\) for YOLOV1Head, got \['box', 'pred', 'obj', 'noobj'\]"),
    (dict(terms=['coord', 'pred', 'obj', 'loss_noobj']), ValueError,
     r"term name 'loss_noobj' must not contain \"loss\""),
    (dict(prior=dict(coord=5.0, pred=1.0, obj=1.0, no_obj=0.5)), KeyError,
     r"prior names must match terms .*unknown \['no_obj'\], missing "
     r"\['noobj'\]"),
    (dict(num_samples=0), ValueError,
     r'num_samples \(K\) must be an int >= 1, got 0'),
    (dict(nonfinite='ignore'), ValueError,
     r"nonfinite must be one of \('raise', 'skip'\), got 'ignore'"),
])
def test_bad_weighting_settings_fail_at_build(tiny_voc_root, tmp_path,
                                              weighting, error, message):
    cfg = tiny_yolo_cfg(tiny_voc_root, str(tmp_path / 'w'), 1)
    cfg.model.bbox_head.weighting.update(weighting)
    with pytest.raises(error, match=message):
        Runner.from_cfg(cfg)


def test_skip_without_the_skipping_optim_wrapper(tiny_voc_root, tmp_path):
    cfg = tiny_yolo_cfg(tiny_voc_root, str(tmp_path / 'w'), 1)
    cfg.model.bbox_head.weighting.nonfinite = 'skip'
    with pytest.raises(ValueError,
                       match=r'model.bbox_head.weighting.nonfinite="skip" '
                       r'needs optim_wrapper.type="SkipNonFiniteOptimWrapper"'
                       r'.*got "OptimWrapper"'):
        run_tool('train', [dump(cfg, tmp_path)])


@pytest.mark.parametrize('damage', ['garbage', 'truncated'])
def test_corrupted_checkpoint(tiny_voc_root, tmp_path, trained, damage):
    bad = str(tmp_path / 'bad.pth')
    with open(trained, 'rb') as f:
        data = f.read()
    with open(bad, 'wb') as f:
        f.write(b'not a checkpoint' * 8 if damage == 'garbage' else
                data[:len(data) // 2])
    cfg = tiny_yolo_cfg(tiny_voc_root, str(tmp_path / 'w'), 1)
    expected = (r'cannot read checkpoint .*bad.pth: the file is truncated or '
                r'not a PyTorch checkpoint .*Re-download it or point to '
                r'another checkpoint')
    with pytest.raises(CheckpointError, match=expected):
        run_tool('test', [dump(cfg, tmp_path), bad])
    with pytest.raises(CheckpointError, match=expected):
        run_tool('train', [dump(cfg, tmp_path, 'train.py'), '--resume', bad])


def other_model_cfg(data_root, work_dir):
    """The 24-layer YOLO instead of Fast YOLO: other keys and shapes."""
    cfg = tiny_yolo_cfg(data_root, work_dir, 2)
    cfg.model.backbone.arch = 'yolo'
    return cfg


def test_checkpoint_of_another_model_on_resume(tiny_voc_root, tmp_path,
                                               trained):
    cfg = other_model_cfg(tiny_voc_root, str(tmp_path / 'w'))
    with pytest.raises(CheckpointError,
                       match=r'(?s)cannot resume from .*iter_1.pth .*: it is '
                       r'a checkpoint of another model \(\d+ of \d+ model '
                       r'weights fit, \d+ checkpoint keys not in the '
                       r'model\):\n  \d+ model keys missing from the '
                       r'checkpoint: backbone\..*Use the config the '
                       r'checkpoint was trained with'):
        run_tool('train', [dump(cfg, tmp_path), '--resume', trained])


def test_checkpoint_of_another_model_on_test(tiny_voc_root, tmp_path,
                                             trained):
    cfg = other_model_cfg(tiny_voc_root, str(tmp_path / 'w'))
    with pytest.raises(CheckpointError,
                       match=r'cannot evaluate .*iter_1.pth.*: it is a '
                       r'checkpoint of another model'):
        run_tool('test', [dump(cfg, tmp_path), trained])


def test_fine_tuning_from_another_head_warns(tiny_voc_root, tmp_path,
                                             trained):
    """``load_from`` (not resume) with another head size is fine-tuning:
    a warning lists what did not fit, and training goes on."""
    work_dir = str(tmp_path / 'w')
    cfg = tiny_yolo_cfg(tiny_voc_root, work_dir, 1)
    cfg.model.bbox_head.fc_channels = 16
    cfg.load_from = trained
    run_tool('train', [dump(cfg, tmp_path)])
    log = read_log(work_dir)
    assert 'fits the model only partly' in log
    assert 'bbox_head.fc.weight (checkpoint [32, 128] vs model [16, 128])' \
        in log
    state = torch.load(osp.join(work_dir, 'iter_1.pth'),
                       weights_only=True)['state_dict']
    assert state['bbox_head.fc.weight'].shape == (16, 128)
