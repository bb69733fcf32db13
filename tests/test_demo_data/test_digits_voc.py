# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The digits demo set: VOC files, tight boxes on ink, balance, disjoint
sources, determinism, and mmdet's own VOCDataset / VOCMetric on it."""
import copy
import filecmp
import importlib.util
import os
import os.path as osp
import re
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest
import torch
from conftest import fill_disk_on_write
from mmdet.registry import DATASETS, METRICS
from mmdet.utils import register_all_modules

import mmdet_slf  # noqa: F401
from mmdet_slf.demo_data import (DIGIT_CLASSES, make_digits_voc,
                                 read_manifest, render_digits_image,
                                 split_source_digits)
from mmdet_slf.demo_data.digits_voc import (_normalize_params,
                                            load_digit_scans, plan_split)

SMALL = dict(num_trainval=30, num_test=20, image_size=(128, 112), seed=3)
# A pixel "carries ink" when the JPEG differs from the clean background by
# more than this (the lightest digit is ~65 levels darker than its paper).
INK_DIFF = 30


@pytest.fixture(scope='module')
def digits_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('digits') / 'VOCdevkit')
    summary = make_digits_voc(root, **SMALL)
    return root, summary


def read_split(root, split):
    base = osp.join(root, 'VOC2007')
    with open(osp.join(base, 'ImageSets', 'Main', f'{split}.txt')) as f:
        ids = f.read().split()
    annotations = {}
    for image_id in ids:
        tree = ET.parse(osp.join(base, 'Annotations', f'{image_id}.xml'))
        size = tree.find('size')
        objects = []
        for obj in tree.findall('object'):
            box = [int(obj.find(f'bndbox/{k}').text)
                   for k in ('xmin', 'ymin', 'xmax', 'ymax')]
            objects.append((obj.find('name').text, box))
        annotations[image_id] = dict(
            width=int(size.find('width').text),
            height=int(size.find('height').text),
            objects=objects)
    return annotations


def all_files(root):
    found = []
    for dirpath, _, names in os.walk(root):
        found += [osp.relpath(osp.join(dirpath, n), root) for n in names]
    return sorted(found)


def test_xml_and_boxes_inside_images(digits_root):
    root, summary = digits_root
    width, height = SMALL['image_size']
    for split in ('trainval', 'test'):
        annotations = read_split(root, split)
        assert len(annotations) == SMALL[f'num_{split}']
        for image_id, ann in annotations.items():
            image = cv2.imread(
                osp.join(root, 'VOC2007', 'JPEGImages', f'{image_id}.jpg'))
            assert image.shape == (height, width, 3)
            assert (ann['width'], ann['height']) == (width, height)
            assert 1 <= len(ann['objects']) <= 5
            for name, (x1, y1, x2, y2) in ann['objects']:
                assert name in DIGIT_CLASSES
                # VOC boxes are 1-based and inclusive.
                assert 1 <= x1 <= x2 <= width and 1 <= y1 <= y2 <= height
                assert x2 > x1 and y2 > y1  # no degenerate box


def test_tiny_digits_get_boxes_of_two_pixels_or_more(tmp_path):
    """The smallest digits the settings allow: no box is one pixel across,
    which mmdet's XMLDataset (it subtracts 1 from both ends) reads as zero
    wide. Before, this set had two: 000103 (a single pixel) and 000345."""
    root = str(tmp_path / 'VOCdevkit')
    make_digits_voc(root, num_trainval=300, num_test=50, image_size=32,
                    digit_size=(0.05, 0.05))
    sides = []
    for split in ('trainval', 'test'):
        for ann in read_split(root, split).values():
            for _, (x1, y1, x2, y2) in ann['objects']:
                assert 1 <= x1 and x2 <= 32 and 1 <= y1 and y2 <= 32
                sides.append(min(x2 - x1, y2 - y1) + 1)
    assert len(sides) == 1035
    assert min(sides) >= 2


def test_boxes_are_tight_on_ink(digits_root):
    """Each box is the exact extent of its digit's ink, and the JPEG under
    it differs from the clean background, while outside the boxes it does
    not."""
    root, _ = digits_root
    manifest = read_manifest(root)
    for split in ('trainval', 'test'):
        for image_id, ann in read_split(root, split).items():
            out = render_digits_image(manifest, image_id)
            path = osp.join(root, 'VOC2007', 'JPEGImages', f'{image_id}.jpg')
            # The re-rendered image encodes to the very file on disk, so the
            # background and ink masks below are those of that file.
            ok, encoded = cv2.imencode('.jpg', out['image'],
                                       [cv2.IMWRITE_JPEG_QUALITY, 90])
            with open(path, 'rb') as f:
                assert ok and encoded.tobytes() == f.read()
            diff = np.abs(
                cv2.imread(path).astype(np.float32) -
                out['background']).max(-1)  # [H, W]
            near_boxes = np.zeros(diff.shape, bool)
            assert [n for n, _ in ann['objects']] == out['names']
            for (_, box), mask in zip(ann['objects'], out['ink_masks']):
                x1, y1, x2, y2 = [v - 1 for v in box]
                rows = np.flatnonzero(mask.any(axis=1))
                cols = np.flatnonzero(mask.any(axis=0))
                assert [x1, y1, x2, y2] == [
                    cols[0], rows[0], cols[-1], rows[-1]
                ]
                assert diff[mask].mean() > 2 * INK_DIFF
                inside = diff[y1:y2 + 1, x1:x2 + 1] > INK_DIFF
                assert inside.mean() > 0.15, (image_id, box, inside.mean())
                near_boxes[max(y1 - 3, 0):y2 + 4, max(x1 - 3, 0):x2 + 4] = 1
            outside = diff[~near_boxes] > INK_DIFF
            assert outside.mean() < 0.05, (image_id, outside.mean())


def test_class_counts_balanced(digits_root):
    """Labels are consecutive permutations of the ten classes, so per split
    the class counts differ by at most one."""
    root, summary = digits_root
    for split in ('trainval', 'test'):
        names = [n for ann in read_split(root, split).values()
                 for n, _ in ann['objects']]
        counts = np.array([names.count(c) for c in DIGIT_CLASSES])
        assert counts.max() - counts.min() <= 1, counts
        assert counts.sum() == summary['splits'][split]['num_objects']
        assert summary['splits'][split]['class_counts'] == dict(
            zip(DIGIT_CLASSES, counts.tolist()))


def test_sources_disjoint_and_match_labels(digits_root):
    root, summary = digits_root
    _, targets = load_digit_scans()
    manifest = read_manifest(root)
    used = {'trainval': set(), 'test': set()}
    for split in ('trainval', 'test'):
        for image_id, ann in read_split(root, split).items():
            info = manifest['images'][image_id]
            assert info['split'] == split
            used[split].update(info['sources'])
            assert [DIGIT_CLASSES[targets[s]] for s in info['sources']
                    ] == [n for n, _ in ann['objects']]
        assert sorted(used[split]) == summary['splits'][split]['used_sources']
        assert used[split] <= set(summary['splits'][split]['source_pool'])
    assert not used['trainval'] & used['test']
    pools = split_source_digits(targets, 0.25, SMALL['seed'])
    assert not set(pools['trainval']) & set(pools['test'])
    assert len(pools['trainval']) + len(pools['test']) == len(targets) == 1797
    for label in range(10):
        in_test = (targets[pools['test']] == label).sum()
        assert in_test == round((targets == label).sum() * 0.25)


def test_each_class_cycles_through_its_scans(digits_root):
    """Every scan of a class's pool is used as often as the others, give or
    take one: the class draws its pool again only once it is used up."""
    root, summary = digits_root
    _, targets = load_digit_scans()
    manifest = read_manifest(root)
    for split in ('trainval', 'test'):
        uses = {}
        for image_id in read_split(root, split):
            for source in manifest['images'][image_id]['sources']:
                uses[source] = uses.get(source, 0) + 1
        pool = np.array(summary['splits'][split]['source_pool'])
        for label in range(10):
            scans = pool[targets[pool] == label]
            counts = [uses.get(int(s), 0) for s in scans]
            assert max(counts) - min(counts) <= 1, (split, label)


def test_overlap_count_matches_the_boxes(digits_root):
    """``num_images_with_overlap`` counts the images with two boxes sharing
    at least one pixel, recounted here from the XML boxes."""
    root, summary = digits_root
    for split in ('trainval', 'test'):
        count = 0
        for ann in read_split(root, split).values():
            boxes = [box for _, box in ann['objects']]
            count += any(
                min(a[2], b[2]) >= max(a[0], b[0])
                and min(a[3], b[3]) >= max(a[1], b[1])
                for i, a in enumerate(boxes) for b in boxes[i + 1:])
        assert summary['splits'][split]['num_images_with_overlap'] == count
    # The set has overlapping digits on purpose (overlap_prob 0.3).
    assert summary['splits']['trainval']['num_images_with_overlap'] > 0


def test_boxes_keep_the_overlap_limit(digits_root):
    """No two boxes of an image overlap by more than ``max_overlap`` (0.25,
    the default) of the smaller box's area, and some overlap on purpose."""
    root, _ = digits_root
    largest = 0.0
    for split in ('trainval', 'test'):
        for image_id, ann in read_split(root, split).items():
            boxes = np.array([box for _, box in ann['objects']], float)
            low = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
            high = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
            inter = np.clip(high - low + 1, 0, None).prod(-1)
            area = (boxes[:, 2:] - boxes[:, :2] + 1).prod(-1)
            overlap = inter / np.minimum(area[:, None], area[None, :])
            np.fill_diagonal(overlap, 0)
            assert overlap.max() <= 0.25, (image_id, overlap.max())
            largest = max(largest, overlap.max())
    assert largest > 0.1, largest


def test_same_seed_identical_other_seed_different(digits_root, tmp_path):
    root, _ = digits_root
    again = str(tmp_path / 'again')
    make_digits_voc(again, **SMALL)
    files = all_files(root)
    assert files == all_files(again) and len(files) == 2 * 50 + 3
    match, mismatch, errors = filecmp.cmpfiles(
        root, again, files, shallow=False)
    assert not mismatch and not errors and len(match) == len(files)

    other = str(tmp_path / 'other')
    make_digits_voc(other, **dict(SMALL, seed=4))
    jpegs = [f for f in files if f.endswith('.jpg')]
    _, mismatch, _ = filecmp.cmpfiles(root, other, jpegs, shallow=False)
    assert len(mismatch) == len(jpegs)


def test_skip_regenerate_and_bad_settings(digits_root, tmp_path):
    root, _ = digits_root
    xml = osp.join(root, 'VOC2007', 'Annotations', '000000.xml')
    mtime = os.stat(xml).st_mtime_ns
    again = make_digits_voc(root, **SMALL)
    assert again['skipped'] and os.stat(xml).st_mtime_ns == mtime

    changed = str(tmp_path / 'changed')
    make_digits_voc(changed, **SMALL)
    summary = make_digits_voc(changed, **dict(SMALL, num_test=10))
    assert not summary['skipped']
    assert len(read_split(changed, 'test')) == 10
    assert len(all_files(changed)) == 2 * 40 + 3
    # An incomplete set (file lost) is regenerated too.
    os.remove(osp.join(changed, 'VOC2007', 'JPEGImages', '000003.jpg'))
    assert not make_digits_voc(changed, **dict(SMALL, num_test=10))['skipped']
    # ... and so is one whose split list is lost or cut short
    lists = osp.join(changed, 'VOC2007', 'ImageSets', 'Main')
    os.remove(osp.join(lists, 'test.txt'))
    assert not make_digits_voc(changed, **dict(SMALL, num_test=10))['skipped']
    assert len(read_split(changed, 'test')) == 10
    with open(osp.join(lists, 'trainval.txt')) as f:
        ids = f.read().split()
    with open(osp.join(lists, 'trainval.txt'), 'w') as f:
        f.write('\n'.join(ids[:-1]) + '\n')
    assert not make_digits_voc(changed, **dict(SMALL, num_test=10))['skipped']
    with open(osp.join(lists, 'trainval.txt')) as f:
        assert f.read().split() == ids

    foreign = tmp_path / 'foreign' / 'VOC2007'
    foreign.mkdir(parents=True)
    (foreign / 'keep.txt').write_text('not ours')
    with pytest.raises(FileExistsError, match='digits demo'):
        make_digits_voc(str(foreign.parent), **SMALL)
    assert (foreign / 'keep.txt').exists()
    for key, value in [('num_test', 0), ('digit_size', (0.3, 0.1)),
                       ('max_overlap', 1.0), ('digits_per_image', (0, 3)),
                       ('image_size', 16), ('seed', -1)]:
        with pytest.raises(ValueError, match=key):
            make_digits_voc(str(tmp_path / 'bad'), **dict(SMALL, **{
                key: value}))
    # A float or a bool where an int is meant is refused, not truncated.
    for key, value in [('num_trainval', 2.7), ('num_test', True),
                       ('image_size', (64.9, 64)), ('jpeg_quality', 90.5),
                       ('digits_per_image', (1.5, 2))]:
        with pytest.raises(ValueError, match=f'{key} must be made of ints, '
                           f'got {re.escape(repr(value))}'):
            make_digits_voc(str(tmp_path / 'bad'), **dict(SMALL, **{
                key: value}))
    assert not osp.exists(tmp_path / 'bad')


def test_plan_split_gives_each_image_its_drawn_count():
    """Seven images of exactly 3 digits take 21 scans: two full rounds of
    the ten classes plus one, so one class has 3 and the rest 2. Over 60
    images of 1..3 digits, 1, 2 and 3 all occur (the maximum included)."""
    _, targets = load_digit_scans()
    pool = np.arange(len(targets))
    plan = plan_split(pool, targets, 7, (3, 3), np.random.RandomState(0))
    assert [len(sources) for sources in plan] == [3] * 7
    labels = targets[np.concatenate(plan)]
    assert sorted(np.bincount(labels, minlength=10)) == [2] * 9 + [3]
    plan = plan_split(pool, targets, 60, (1, 3), np.random.RandomState(0))
    assert {len(sources) for sources in plan} == {1, 2, 3}


@pytest.mark.parametrize('key, inside, outside', [
    ('test_fraction', 0.05, 0.04),
    ('test_fraction', 0.95, 0.96),
    ('jpeg_quality', 100, 101),
    ('jpeg_quality', 50, 49),
    ('digits_per_image', (1, 10), (1, 11)),
    ('overlap_prob', 1.0, 1.01),
    ('overlap_prob', 0.0, -0.01),
    ('image_size', (64, 32), (64, 31)),
    ('image_size', (32, 64), (31, 64)),
])
def test_setting_bounds_are_inclusive(key, inside, outside, tmp_path):
    """Each documented bound is allowed and the next value past it is
    refused, before anything is written."""
    settings = dict(num_trainval=3, num_test=2, image_size=64, seed=0,
                    digits_per_image=(1, 5), digit_size=(0.14, 0.36),
                    max_overlap=0.25, overlap_prob=0.3, test_fraction=0.25,
                    jpeg_quality=90)
    params = _normalize_params(**dict(settings, **{key: inside}))
    expected = list(inside) if isinstance(inside, tuple) else inside
    assert params[key] == expected
    settings.pop('seed')
    with pytest.raises(ValueError, match=f'{key} must be'):
        make_digits_voc(str(tmp_path / 'bad'), **dict(settings, **{
            key: outside}))
    assert not osp.exists(tmp_path / 'bad')


def test_force_makes_an_existing_set_again(tmp_path):
    """``force=True`` rewrites a complete set with the same parameters,
    which a plain call would reuse."""
    root = str(tmp_path / 'VOCdevkit')
    params = dict(num_trainval=3, num_test=2, image_size=64)
    make_digits_voc(root, **params)
    xml = osp.join(root, 'VOC2007', 'Annotations', '000000.xml')
    os.utime(xml, ns=(0, 0))
    assert make_digits_voc(root, **params)['skipped']
    assert os.stat(xml).st_mtime_ns == 0
    assert not make_digits_voc(root, force=True, **params)['skipped']
    assert os.stat(xml).st_mtime_ns > 0


def test_numpy_ints_make_the_same_set(tmp_path):
    """Counts from numpy (a config computing them, say) are ints: the
    manifest records them as Python ints, so a call with Python ints finds
    the set made already."""
    root = str(tmp_path / 'VOCdevkit')
    made = make_digits_voc(root, num_trainval=np.int64(3), num_test=2,
                           image_size=np.array([64, 64]),
                           digits_per_image=(np.int32(1), 2))
    assert not made['skipped']
    again = make_digits_voc(root, num_trainval=3, num_test=2,
                            image_size=64, digits_per_image=(1, 2))
    assert again['skipped']


def test_an_unfinished_set_is_made_again(tmp_path):
    """A write that stopped (its marker left, the manifest cut short) is
    not taken for a finished set."""
    root = str(tmp_path / 'VOCdevkit')
    params = dict(num_trainval=3, num_test=2, image_size=64)
    make_digits_voc(root, **params)
    base = osp.join(root, 'VOC2007')
    with open(osp.join(base, 'digits_voc.json'), 'r+') as f:
        f.truncate(100)
    open(osp.join(base, '.digits_voc.partial'), 'w').close()
    assert not make_digits_voc(root, **params)['skipped']
    assert make_digits_voc(root, **params)['skipped']
    assert read_manifest(root)['params']['num_trainval'] == 3


def test_cli_writes_then_skips(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        'make_demo_data',
        osp.join(osp.dirname(__file__), '..', '..', 'tools',
                 'make_demo_data.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = ['--root', str(tmp_path / 'VOCdevkit'), '--num-trainval', '6',
            '--num-test', '4', '--image-size', '96', '--subset', 'VOC2007',
            '--quiet']
    assert not tool.main(args)['skipped']
    assert 'written' in capsys.readouterr().out
    assert tool.main(args)['skipped']
    assert 'skipped' in capsys.readouterr().out
    assert len(read_split(str(tmp_path / 'VOCdevkit'), 'test')) == 4
    tool.main(args[:-3] + ['--subset', 'DIGITS', '--quiet'])
    assert read_manifest(str(tmp_path / 'VOCdevkit'), 'DIGITS')['params'] \
        == read_manifest(str(tmp_path / 'VOCdevkit'))['params']
    # a setting out of range is named, without a traceback
    with pytest.raises(SystemExit, match=r'make_demo_data.py: '
                       r'digits_per_image must be \(min, max\) with 1 <= '
                       r'min <= max <= 10, got \(0, 3\)'):
        tool.main(args + ['--digits-per-image', '0', '3'])
    # and settings that each pass but do not fit together: ten digits of
    # 0.6 of a 32-pixel image (a RuntimeError traceback before 2026-11-30)
    with pytest.raises(SystemExit, match=r'make_demo_data.py: could not '
                       r'place digit \d+ of 10 on a 32x32 image \(digit_size '
                       r'\[0.6, 0.6\], max_overlap [\d.]+\); lower '
                       'digit_size or digits_per_image, or raise image_size'):
        tool.main(['--root', str(tmp_path / 'crowded'), '--num-trainval',
                   '4', '--num-test', '2', '--image-size', '32',
                   '--digit-size', '0.6', '0.6', '--digits-per-image', '10',
                   '10', '--quiet'])
    # so is a root under a file
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(SystemExit, match=re.escape(
            'make_demo_data.py: cannot make the set under --root '
            f'{blocker}/VOCdevkit: ')):
        tool.main(['--root', str(blocker / 'VOCdevkit')] + args[2:])


def _voc_dataset(root, split):
    # Pipeline transforms live in mmdet's scope, as in a config.
    register_all_modules(init_default_scope=True)
    return DATASETS.build(
        dict(
            type='VOCDataset',
            data_root=root,
            ann_file=f'VOC2007/ImageSets/Main/{split}.txt',
            data_prefix=dict(sub_data_root='VOC2007/'),
            metainfo=dict(classes=DIGIT_CLASSES),
            test_mode=True,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True),
                dict(type='PackDetInputs',
                     meta_keys=('img_id', 'img_path', 'ori_shape',
                                'img_shape'))
            ]))


def _voc_map(dataset, shift=0.0):
    """VOCMetric's mAP when the ground truth (boxes moved right by
    ``shift`` of their width) is the prediction."""
    metric = METRICS.build(dict(type='VOCMetric', eval_mode='11points'))
    metric.dataset_meta = dataset.metainfo
    for index in range(len(dataset)):
        sample = dataset[index]['data_samples']
        bboxes = sample.gt_instances.bboxes.tensor.clone()
        bboxes[:, 0::2] += shift * (bboxes[:, 2:3] - bboxes[:, 0:1])
        pred = copy.deepcopy(sample.gt_instances)
        pred.bboxes = bboxes
        pred.scores = torch.ones(len(bboxes))
        sample.pred_instances = pred
        metric.process({}, [sample.to_dict()])
    return metric.evaluate(len(dataset))['pascal_voc/mAP']


def test_mmdet_voc_dataset_and_metric(digits_root):
    root, _ = digits_root
    dataset = _voc_dataset(root, 'test')
    assert len(dataset) == SMALL['num_test']
    assert dataset.metainfo['dataset_type'] == 'VOC2007'
    assert tuple(dataset.metainfo['classes']) == DIGIT_CLASSES
    annotations = read_split(root, 'test')
    first = dataset[0]
    image_id = first['data_samples'].img_id
    expected = [[v - 1 for v in box]
                for _, box in annotations[image_id]['objects']]
    assert first['data_samples'].gt_instances.bboxes.tensor.tolist() == \
        expected
    assert first['inputs'].shape[1:] == (SMALL['image_size'][1],
                                         SMALL['image_size'][0])
    assert _voc_map(dataset) == pytest.approx(1.0)
    # Half a box width off is IoU 1/3 < 0.5: every prediction misses.
    assert _voc_map(dataset, shift=0.5) == pytest.approx(0.0)


def test_a_manifest_cut_off_while_written_leaves_the_set_unfinished(
        tmp_path, monkeypatch):
    """A full disk while the manifest is written leaves no manifest and no
    temporary file, and the partial-write marker stays, so the next call
    makes the set again instead of taking it for finished."""
    root = str(tmp_path / 'VOCdevkit')
    params = dict(num_trainval=3, num_test=2, image_size=64)
    with monkeypatch.context() as patch:
        fill_disk_on_write(patch)
        with pytest.raises(OSError, match='No space left'):
            make_digits_voc(root, **params)
    base = osp.join(root, 'VOC2007')
    assert not osp.exists(osp.join(base, 'digits_voc.json'))
    assert [name for name in os.listdir(base) if name.startswith('.')] == [
        '.digits_voc.partial']
    assert not make_digits_voc(root, **params)['skipped']
    assert read_manifest(root)['params']['num_trainval'] == 3
