# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""A demo detection dataset in PASCAL VOC format from real handwritten digits.

The 1,797 8x8 scans of ``sklearn.datasets.load_digits`` (shipped with
scikit-learn, no download) are split per class into disjoint trainval and
test pools, then composited (:mod:`.digits_render`) several per image onto
cluttered backgrounds. The result is an ordinary VOC tree::

    <root>/VOC2007/Annotations/<id>.xml
    <root>/VOC2007/JPEGImages/<id>.jpg
    <root>/VOC2007/ImageSets/Main/{trainval,test}.txt
    <root>/VOC2007/digits_voc.json     # parameters, counts, source digits

that mmdet's own ``VOCDataset`` reads with
``metainfo=dict(classes=DIGIT_CLASSES)`` and
``data_prefix=dict(sub_data_root='VOC2007/')``. Everything is a function of
the parameters: the same seed gives byte-identical files.
"""
import json
import os
import os.path as osp
import shutil
import time
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from mmdet_slf.engine.checkpoint.atomic_io import atomic_write
from .digits_render import box_overlap, compose_image

DIGIT_CLASSES = tuple(str(digit) for digit in range(10))
MANIFEST_NAME = 'digits_voc.json'
# Bump when the rendering changes, so existing sets are regenerated.
GENERATOR_VERSION = 1
_PARTIAL_NAME = '.digits_voc.partial'
SPLIT_CODES = {'trainval': 1, 'test': 2}


def load_digit_scans() -> Tuple[np.ndarray, np.ndarray]:
    """The 1,797 scans ``[1797, 8, 8]`` (0..16) and their labels."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    return digits.images, digits.target


def split_source_digits(targets: np.ndarray, test_fraction: float,
                        seed: int) -> Dict[str, np.ndarray]:
    """Split scan indices per class into disjoint trainval / test pools.

    Args:
        targets (np.ndarray): Label of every scan.
        test_fraction (float): Share of each class's scans kept for test.
        seed (int): Seed of the split.

    Returns:
        dict[str, np.ndarray]: Sorted scan indices by split name.
    """
    rng = np.random.RandomState([seed, 0])
    pools = {'trainval': [], 'test': []}
    for label in range(len(DIGIT_CLASSES)):
        indices = rng.permutation(np.flatnonzero(targets == label))
        num_test = int(round(len(indices) * test_fraction))
        pools['test'].append(indices[:num_test])
        pools['trainval'].append(indices[num_test:])
    return {k: np.sort(np.concatenate(v)) for k, v in pools.items()}


def plan_split(pool: np.ndarray, targets: np.ndarray, num_images: int,
               digits_per_image: Tuple[int, int],
               rng: np.random.RandomState) -> List[List[int]]:
    """Choose the source scans of every image of one split.

    Labels are drawn as consecutive permutations of the ten classes, so
    class counts differ by at most one; each class cycles through its
    shuffled pool so every scan is used about equally often.

    Returns:
        list[list[int]]: Scan indices per image.
    """
    counts = rng.randint(digits_per_image[0], digits_per_image[1] + 1,
                         size=num_images)
    total = int(counts.sum())
    num_classes = len(DIGIT_CLASSES)
    labels = np.concatenate([
        rng.permutation(num_classes)
        for _ in range(-(-total // num_classes))
    ])[:total]
    queues = {label: [] for label in range(num_classes)}
    by_class = {label: pool[targets[pool] == label]
                for label in range(num_classes)}
    sources = []
    for label in labels:
        if not queues[label]:
            queues[label] = list(rng.permutation(by_class[label]))
        sources.append(int(queues[label].pop()))
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return [sources[bounds[i]:bounds[i + 1]] for i in range(num_images)]


def write_voc_annotation(path: str,
                         filename: str,
                         image_size: Tuple[int, int],
                         names: Sequence[str],
                         boxes: Sequence[Sequence[int]],
                         folder: str = 'VOC2007') -> None:
    """Write a VOC XML; ``boxes`` are 0-based inclusive pixel boxes, stored
    1-based as in VOC (mmdet's ``XMLDataset`` subtracts 1 again)."""
    width, height = image_size
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = folder
    ET.SubElement(root, 'filename').text = filename
    size = ET.SubElement(root, 'size')
    ET.SubElement(size, 'width').text = str(width)
    ET.SubElement(size, 'height').text = str(height)
    ET.SubElement(size, 'depth').text = '3'
    ET.SubElement(root, 'segmented').text = '0'
    for name, box in zip(names, boxes):
        obj = ET.SubElement(root, 'object')
        ET.SubElement(obj, 'name').text = name
        ET.SubElement(obj, 'pose').text = 'Unspecified'
        ET.SubElement(obj, 'truncated').text = '0'
        ET.SubElement(obj, 'difficult').text = '0'
        bndbox = ET.SubElement(obj, 'bndbox')
        for key, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), box):
            ET.SubElement(bndbox, key).text = str(int(value) + 1)
    if hasattr(ET, 'indent'):  # Python >= 3.9
        ET.indent(root)
    ET.ElementTree(root).write(path, encoding='utf-8', xml_declaration=False)


def _normalize_params(num_trainval, num_test, image_size, seed,
                      digits_per_image, digit_size, max_overlap,
                      overlap_prob, test_fraction, jpeg_quality) -> dict:
    """Check every parameter; return them JSON-ready for the manifest."""
    if isinstance(image_size, (int, np.integer)) and \
            not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    whole = dict(num_trainval=num_trainval, num_test=num_test,
                 image_size=image_size, seed=seed,
                 digits_per_image=digits_per_image, jpeg_quality=jpeg_quality)
    for key, value in whole.items():
        parts = list(value) if isinstance(
            value, (tuple, list, np.ndarray)) else [value]
        if not all(isinstance(v, (int, np.integer)) and
                   not isinstance(v, (bool, np.bool_)) for v in parts):
            # int() would truncate 2.7 to 2 without a word.
            raise ValueError(f'{key} must be made of ints, got {value!r}')
    image_size = tuple(int(v) for v in image_size)
    checks = [
        ('seed', seed, 0 <= seed < 2**32, 'in [0, 2**32)'),
        ('num_trainval', num_trainval, num_trainval >= 1, '>= 1'),
        ('num_test', num_test, num_test >= 1, '>= 1'),
        ('image_size', image_size,
         len(image_size) == 2 and min(image_size) >= 32,
         'an int or (width, height), each >= 32'),
        ('digits_per_image', digits_per_image,
         len(digits_per_image) == 2
         and 1 <= digits_per_image[0] <= digits_per_image[1] <= 10,
         '(min, max) with 1 <= min <= max <= 10'),
        ('digit_size', digit_size, len(digit_size) == 2
         and 0.05 <= digit_size[0] <= digit_size[1] <= 0.6,
         '(min, max) with 0.05 <= min <= max <= 0.6'),
        ('max_overlap', max_overlap, 0 <= max_overlap < 1, 'in [0, 1)'),
        ('overlap_prob', overlap_prob, 0 <= overlap_prob <= 1,
         'in [0, 1]'),
        ('test_fraction', test_fraction, 0.05 <= test_fraction <= 0.95,
         'in [0.05, 0.95]'),
        ('jpeg_quality', jpeg_quality, 50 <= jpeg_quality <= 100,
         'in [50, 100]'),
    ]
    for key, value, ok, allowed in checks:
        if not ok:
            raise ValueError(f'{key} must be {allowed}, got {value!r}')
    return dict(
        version=GENERATOR_VERSION,
        num_trainval=int(num_trainval),
        num_test=int(num_test),
        image_size=list(image_size),
        seed=int(seed),
        digits_per_image=[int(v) for v in digits_per_image],
        digit_size=[float(v) for v in digit_size],
        max_overlap=float(max_overlap),
        overlap_prob=float(overlap_prob),
        test_fraction=float(test_fraction),
        jpeg_quality=int(jpeg_quality))


def read_manifest(root: str, subset: str = 'VOC2007') -> Optional[dict]:
    """The manifest of a complete set under ``root``, or None."""
    path = osp.join(root, subset, MANIFEST_NAME)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _is_complete(root: str, subset: str, params: dict) -> Optional[dict]:
    """The manifest if the set under ``root`` was made with ``params`` and
    all its files are present (the split lists with the manifest's ids),
    else None."""
    base = osp.join(root, subset)
    if osp.exists(osp.join(base, _PARTIAL_NAME)):
        return None  # a write that did not finish
    manifest = read_manifest(root, subset)
    if manifest is None or manifest.get('params') != params:
        return None
    for image_id in manifest['images']:
        for sub, ext in (('Annotations', 'xml'), ('JPEGImages', 'jpg')):
            if not osp.isfile(osp.join(base, sub, f'{image_id}.{ext}')):
                return None
    for split in ('trainval', 'test'):
        path = osp.join(base, 'ImageSets', 'Main', f'{split}.txt')
        if not osp.isfile(path):
            return None
        with open(path) as f:
            listed = f.read().split()
        expected = [image_id for image_id, info in manifest['images'].items()
                    if info['split'] == split]
        if listed != expected:
            return None
    return manifest


def _prepare_dir(base: str) -> None:
    """Empty ``base`` if it holds a set made here; refuse other data."""
    if osp.isdir(base) and os.listdir(base):
        ours = (osp.isfile(osp.join(base, MANIFEST_NAME))
                or osp.isfile(osp.join(base, _PARTIAL_NAME)))
        if not ours:
            raise FileExistsError(
                f'{base} exists and does not hold a digits demo set; choose '
                'another root instead of overwriting it')
        shutil.rmtree(base)
    for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
        os.makedirs(osp.join(base, sub), exist_ok=True)
    open(osp.join(base, _PARTIAL_NAME), 'w').close()


def make_digits_voc(root: str = 'data/digits_voc/VOCdevkit',
                    num_trainval: int = 2000,
                    num_test: int = 300,
                    image_size: Union[int, Tuple[int, int]] = 192,
                    seed: int = 0,
                    digits_per_image: Tuple[int, int] = (1, 5),
                    digit_size: Tuple[float, float] = (0.14, 0.36),
                    max_overlap: float = 0.25,
                    overlap_prob: float = 0.3,
                    test_fraction: float = 0.25,
                    jpeg_quality: int = 90,
                    subset: str = 'VOC2007',
                    force: bool = False,
                    progress: bool = False) -> dict:
    """Write the digits demo set in VOC format, or reuse a complete one.

    Args:
        root (str): VOCdevkit directory; the set goes to ``root/subset``.
            Defaults to 'data/digits_voc/VOCdevkit'.
        num_trainval (int): Trainval images. Defaults to 2000.
        num_test (int): Test images. Defaults to 300.
        image_size (int | tuple[int, int]): Side, or ``(width, height)``.
            Defaults to 192.
        seed (int): Seed of the source split and every image. Defaults to 0.
        digits_per_image (tuple[int, int]): Inclusive range of digits per
            image. Defaults to (1, 5).
        digit_size (tuple[float, float]): Range of the height of a scan's 8
            rows as a fraction of the shorter image side (log-uniform); the
            ink box is usually a little smaller. Defaults to (0.14, 0.36).
        max_overlap (float): Largest intersection over the smaller box area
            of two digits of an image. Defaults to 0.25.
        overlap_prob (float): Chance that a digit is placed against an
            earlier one (overlapping, within ``max_overlap``).
            Defaults to 0.3.
        test_fraction (float): Share of each class's scans reserved for
            the test images. Defaults to 0.25.
        jpeg_quality (int): JPEG quality. Defaults to 90.
        subset (str): Directory under ``root``; 'VOC2007' makes mmdet's
            ``VOCDataset`` report VOC2007 (11-point mAP). Defaults to
            'VOC2007'.
        force (bool): Regenerate even if a complete set with the same
            parameters exists. Defaults to False.
        progress (bool): Show a progress bar. Defaults to False.

    Returns:
        dict: ``root``, ``subset``, ``skipped`` (reused an existing set),
        ``seconds``, ``params``, ``classes`` and per split ``splits[name]``
        with ``num_images``, ``num_objects``, ``class_counts``,
        ``num_images_with_overlap``, ``source_pool`` (scan indices reserved
        for the split) and ``used_sources`` (scan indices in its images).
    """
    params = _normalize_params(num_trainval, num_test, image_size, seed,
                               digits_per_image, digit_size, max_overlap,
                               overlap_prob, test_fraction, jpeg_quality)
    start = time.perf_counter()
    manifest = None if force else _is_complete(root, subset, params)
    skipped = manifest is not None
    if not skipped:
        manifest = _generate(root, subset, params, progress)
    summary = {k: v for k, v in manifest.items() if k != 'images'}
    summary.update(
        root=root,
        subset=subset,
        skipped=skipped,
        seconds=time.perf_counter() - start)
    return summary


def _generate(root: str, subset: str, params: dict, progress: bool) -> dict:
    """Render and write every image; return the manifest."""
    scans, targets = load_digit_scans()
    pools = split_source_digits(targets, params['test_fraction'],
                                params['seed'])
    size = tuple(params['image_size'])
    base = osp.join(root, subset)
    _prepare_dir(base)
    jobs, splits, images = [], {}, {}
    first_id = 0
    for split in ('trainval', 'test'):
        num_images = params[f'num_{split}']
        plan_rng = np.random.RandomState([params['seed'], SPLIT_CODES[split]])
        plan = plan_split(pools[split], targets, num_images,
                          params['digits_per_image'], plan_rng)
        ids = [f'{first_id + i:06d}' for i in range(num_images)]
        first_id += num_images
        jobs += [(split, i, image_id, sources)
                 for i, (image_id, sources) in enumerate(zip(ids, plan))]
        with open(osp.join(base, 'ImageSets', 'Main', f'{split}.txt'),
                  'w') as f:
            f.write('\n'.join(ids) + '\n')
        used = sorted({s for sources in plan for s in sources})
        labels = np.concatenate([targets[s] for s in plan])
        splits[split] = dict(
            num_images=num_images,
            num_objects=int(labels.size),
            class_counts={
                name: int((labels == i).sum())
                for i, name in enumerate(DIGIT_CLASSES)
            },
            num_images_with_overlap=0,
            source_pool=pools[split].tolist(),
            used_sources=used)

    if progress:
        from tqdm import tqdm
        jobs = tqdm(jobs, desc='digits demo', unit='img')
    for split, index, image_id, sources in jobs:
        # One random state per image: any image can be re-rendered alone.
        rng = np.random.RandomState(
            [params['seed'], SPLIT_CODES[split], index + 1])
        out = compose_image([scans[s] for s in sources], size,
                            params['digit_size'], params['max_overlap'],
                            params['overlap_prob'], rng)
        names = [DIGIT_CLASSES[targets[s]] for s in sources]
        cv2.imwrite(
            osp.join(base, 'JPEGImages', f'{image_id}.jpg'), out['image'],
            [cv2.IMWRITE_JPEG_QUALITY, params['jpeg_quality']])
        write_voc_annotation(
            osp.join(base, 'Annotations', f'{image_id}.xml'),
            f'{image_id}.jpg', size, names, out['boxes'], folder=subset)
        boxes = out['boxes']
        if any(box_overlap(a, b) > 0 for i, a in enumerate(boxes)
               for b in boxes[i + 1:]):
            splits[split]['num_images_with_overlap'] += 1
        images[image_id] = dict(
            split=split, index=index, sources=[int(s) for s in sources])

    manifest = dict(
        params=params,
        classes=list(DIGIT_CLASSES),
        splits=splits,
        images=images)
    text = json.dumps(manifest, sort_keys=True)  # fails before writing
    path = osp.join(base, MANIFEST_NAME)
    atomic_write(path, text.encode())
    os.remove(osp.join(base, _PARTIAL_NAME))
    return manifest


def render_digits_image(manifest: dict, image_id: str) -> dict:
    """Re-render one image of a set exactly as it was written, with the
    clean background and the per-digit ink masks (for checking boxes).

    Args:
        manifest (dict): The set's manifest (:func:`read_manifest`).
        image_id (str): Image id, e.g. '000012'.

    Returns:
        dict: The output of :func:`compose_image` plus ``names``.
    """
    scans, targets = load_digit_scans()
    params, info = manifest['params'], manifest['images'][image_id]
    rng = np.random.RandomState(
        [params['seed'], SPLIT_CODES[info['split']], info['index'] + 1])
    out = compose_image([scans[s] for s in info['sources']],
                        tuple(params['image_size']), params['digit_size'],
                        params['max_overlap'], params['overlap_prob'], rng)
    out['names'] = [DIGIT_CLASSES[targets[s]] for s in info['sources']]
    return out
