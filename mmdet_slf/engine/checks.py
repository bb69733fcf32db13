# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Start-up checks that fail early with a message naming the file and the fix.

Two kinds: checks of a config, run by :class:`CheckedRunner` before it builds
a dataloader (missing data roots, empty image lists, ``nonfinite='skip'``
without the skipping optimizer wrapper, a dataset emptied by
``filter_cfg``), and checks of a built dataset and model, run by
:class:`DatasetCheckHook`, for what mmdet leaves silent: ``XMLDataset`` skips
objects whose ``<name>`` is not in ``metainfo.classes`` without a word (that
is how a subset of the classes is trained), keeps boxes of zero width, and no
one compares the head's ``num_classes`` with the dataset's classes. Both walk
dataset wrappers with :func:`leaf_datasets`.
"""
import os.path as osp
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Dict, Iterator, List, Sequence, Tuple

from mmengine.fileio import list_from_file


def leaf_datasets(dataset) -> Iterator:
    """The datasets under Concat/Repeat/ClassBalanced wrappers.

    Args:
        dataset (dict | BaseDataset | None): A dataset config or a built
            dataset; a wrapper holds its children under ``datasets`` (a
            list) or ``dataset``.

    Yields:
        dict | BaseDataset: Each leaf, in order.
    """
    for _, leaf in keyed_leaf_datasets(dataset, 'dataset'):
        yield leaf


def keyed_leaf_datasets(dataset, key: str) -> Iterator[Tuple[str, object]]:
    """:func:`leaf_datasets` with each leaf's config key below ``key``
    (``train_dataloader.dataset.datasets.0`` for the first child of a
    ConcatDataset), the key a ``--cfg-options`` override must name."""
    if dataset is None:
        return
    if isinstance(dataset, dict):
        children, child = dataset.get('datasets'), dataset.get('dataset')
    else:
        children = getattr(dataset, 'datasets', None)
        child = getattr(dataset, 'dataset', None)
    if children is not None:
        for index, item in enumerate(children):
            yield from keyed_leaf_datasets(item, f'{key}.datasets.{index}')
    elif child is not None:
        yield from keyed_leaf_datasets(child, f'{key}.dataset')
    else:
        yield key, dataset


def reads_local_files(dataset) -> bool:
    """Whether a dataset config reads local files: no ``backend_args``
    naming another backend than mmengine's local one, and no URI as its
    data root or annotation file."""
    backend = (dataset.get('backend_args') or {}).get('backend', 'local')
    paths = (dataset.get('data_root') or '', dataset.get('ann_file') or '')
    return backend == 'local' and not any('://' in str(path)
                                          for path in paths)


def dataset_files(cfg, splits: Sequence[str] = ('train', 'val', 'test')
                  ) -> Iterator[Tuple[str, str, str, str]]:
    """Yield ``(split, kind, path, key)`` of every data root and annotation
    file the config's dataloaders would read from the local file system,
    ``key`` the config key of the dataset that reads it. A dataset read
    through another storage backend (``backend_args`` naming one, or a URI
    such as ``s3://...``) has no local files to check and is left out."""
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader or 'dataset' not in loader:
            continue
        for key, dataset in keyed_leaf_datasets(
                loader['dataset'], f'{split}_dataloader.dataset'):
            if not reads_local_files(dataset):
                continue
            data_root = dataset.get('data_root') or ''
            if data_root:
                yield split, 'data_root', data_root, key
            ann_file = dataset.get('ann_file')
            if ann_file:
                yield split, 'ann_file', osp.join(data_root, ann_file), key


def check_data_roots(cfg, splits: Sequence[str] = ('train', 'val',
                                                   'test')) -> None:
    """Raise ``FileNotFoundError`` naming the first missing dataset path,
    with the ``--cfg-options`` keys that set it.

    Without this check a missing VOC directory surfaces as an error deep in
    the dataset's ``load_data_list``.

    Args:
        cfg (Config): The full config.
        splits (Sequence[str]): Dataloaders to check. Defaults to all three.
    """
    for split, kind, path, key in dataset_files(cfg, splits):
        if osp.exists(path):
            continue
        if kind == 'data_root':
            # every dataset of the config that reads this root, in any split
            keys = [f'{other}.data_root=...' for _, other_kind, other_path,
                    other in dataset_files(cfg) if other_kind == 'data_root'
                    and other_path == path]
            raise FileNotFoundError(
                f'{split}_dataloader: data_root "{path}" does not exist. Put '
                'the data there (PASCAL VOC: VOC2007 and VOC2012 under '
                'data/VOCdevkit, a link to them will do; the digits demo '
                'set: python tools/make_demo_data.py), or override it with '
                f'--cfg-options {" ".join(keys)}')
        raise FileNotFoundError(
            f'{split}_dataloader: ann_file "{path}" of {key} does not exist: '
            'the data there is incomplete (PASCAL VOC needs the image lists '
            'ImageSets/Main/*.txt of each year), or set --cfg-options '
            f'{key}.ann_file=... to a list that exists')


def check_ann_files(cfg, splits: Sequence[str] = ('train', 'val',
                                                  'test')) -> None:
    """Raise ``ValueError`` naming an image-list ``ann_file`` (VOC's
    ``ImageSets/Main/*.txt``) that lists no image id.

    mmengine would fail later with numpy's "need at least one array to
    concatenate".

    Args:
        cfg (Config): The full config.
        splits (Sequence[str]): Dataloaders to check. Defaults to all three.
    """
    for split, kind, path, _ in dataset_files(cfg, splits):
        if kind != 'ann_file' or not path.endswith('.txt') or \
                not osp.isfile(path):
            continue
        with open(path) as f:
            if not any(line.strip() for line in f):
                raise ValueError(
                    f'{split}_dataloader: ann_file "{path}" lists no image '
                    'ids (one id per line, e.g. 000005). Regenerate the '
                    'image list, or point ann_file to a non-empty one.')


def _find_nonfinite_skip(node, path: str = 'model') -> Iterator[str]:
    """Config paths of every ``nonfinite='skip'`` under ``node``."""
    if isinstance(node, dict):
        if node.get('nonfinite') == 'skip':
            yield path
        for key, value in node.items():
            yield from _find_nonfinite_skip(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from _find_nonfinite_skip(value, f'{path}[{index}]')


def _skips_steps(wrapper) -> bool:
    """Whether the optimizer wrapper type ``wrapper`` (a registered name,
    with or without a scope such as ``'mmdet.'``, or a class) is
    ``SkipNonFiniteOptimWrapper`` or a subclass of it."""
    from mmdet.registry import OPTIM_WRAPPERS

    from .optimizers import SkipNonFiniteOptimWrapper
    if isinstance(wrapper, str):
        try:
            wrapper = OPTIM_WRAPPERS.get(wrapper)
        except KeyError:
            return False
    return isinstance(wrapper, type) and issubclass(
        wrapper, SkipNonFiniteOptimWrapper)


def check_nonfinite_skip(cfg) -> None:
    """Raise ``ValueError`` when a weighting skips non-finite steps but the
    optimizer wrapper would still step.

    With ``nonfinite='skip'`` the weighting only drops its terms; the step
    itself is skipped by ``SkipNonFiniteOptimWrapper``. Any other wrapper
    still applies momentum, weight decay and the remaining losses.

    Args:
        cfg (Config): The full config.
    """
    paths = list(_find_nonfinite_skip(cfg.get('model')))
    wrapper = (cfg.get('optim_wrapper') or {}).get('type', 'OptimWrapper')
    if paths and not _skips_steps(wrapper):
        name = wrapper.__name__ if isinstance(wrapper, type) else wrapper
        if name == 'AmpOptimWrapper':
            # tools/train.py --amp sets it over any --cfg-options
            raise ValueError(
                f'{paths[0]}.nonfinite="skip" needs '
                'optim_wrapper.type="SkipNonFiniteOptimWrapper", and mixed '
                'precision (--amp, optim_wrapper.type="AmpOptimWrapper") '
                'cannot skip steps: train without --amp, or use '
                'nonfinite="raise".')
        raise ValueError(
            f'{paths[0]}.nonfinite="skip" needs '
            'optim_wrapper.type="SkipNonFiniteOptimWrapper" to leave the '
            f'parameters untouched on a skipped step, got "{name}". Set '
            '--cfg-options optim_wrapper.type=SkipNonFiniteOptimWrapper, '
            'or use nonfinite="raise" (AMP is not supported with "skip").')


def explain_empty_dataset(cfg, error: Exception,
                          split: str = 'train') -> Exception:
    """Turn mmengine's error on an empty dataset into one that names it.

    An empty image list, or ``filter_cfg`` dropping every image (e.g. when
    ``metainfo.classes`` matches none of the XML names), makes mmengine fail
    with numpy's "need at least one array to concatenate".

    Args:
        cfg (Config): The full config.
        error (Exception): The error raised while building the dataset.
        split (str): The dataloader. Defaults to 'train'.

    Returns:
        Exception: A ``ValueError`` that names the files and the fix, or
        ``error`` itself when it is another error.
    """
    if 'need at least one array to concatenate' not in str(error):
        return error
    loader = cfg.get(f'{split}_dataloader') or {}
    datasets = list(leaf_datasets(loader.get('dataset')))
    files = [path for _, kind, path, _ in dataset_files(cfg, (split, ))
             if kind == 'ann_file']
    filters = [d.get('filter_cfg') for d in datasets]
    classes = [(d.get('metainfo') or {}).get('classes') for d in datasets]
    return ValueError(
        f'{split}_dataloader.dataset has no images after loading {files} '
        f'with filter_cfg {filters}: every image was dropped. '
        'filter_empty_gt=True drops images without an object of '
        f'metainfo.classes ({classes}, None means all of the dataset '
        'type); check that these names match the <name> tags of the '
        'annotations, or set filter_cfg.filter_empty_gt=False.')


def xml_paths(dataset) -> List[str]:
    """Every annotation file an ``XMLDataset`` lists in its ``ann_file``,
    including images that ``filter_cfg`` later drops."""
    ids = list_from_file(dataset.ann_file, backend_args=dataset.backend_args)
    return [
        osp.join(dataset.sub_data_root, dataset.ann_subdir, f'{img_id}.xml')
        for img_id in ids if img_id.strip()
    ]


def find_unknown_class_names(dataset) -> Tuple[Dict[str, List[str]],
                                               Counter]:
    """Object names of an ``XMLDataset`` that are not in its classes.

    Args:
        dataset (XMLDataset): A built dataset.

    Returns:
        tuple[dict, Counter]: ``{name: [xml files]}`` for names that are
        not classes of the dataset type at all (typos, foreign labels), and
        counts of names the dataset type knows but ``metainfo.classes``
        leaves out (a deliberate subset; mmdet skips them).
    """
    classes = set(dataset.metainfo['classes'])
    known = set(type(dataset).METAINFO.get('classes') or ())
    unknown: Dict[str, List[str]] = {}
    excluded: Counter = Counter()
    for path in xml_paths(dataset):
        if not osp.isfile(path):
            continue  # mmdet itself raises on a missing file
        for obj in ET.parse(path).getroot().findall('object'):
            name_el = obj.find('name')
            name = name_el.text if name_el is not None else None
            if name in classes:
                continue
            if name in known:
                excluded[name] += 1
            else:
                unknown.setdefault(str(name), []).append(path)
    return unknown, excluded


def find_degenerate_boxes(dataset) -> Tuple[List[Tuple[str, list]],
                                            List[Tuple[str, list]]]:
    """Boxes of zero width or height, and inverted boxes (x2 < x1).

    Args:
        dataset (BaseDetDataset): A built dataset.

    Returns:
        tuple[list, list]: ``(file, bbox)`` of zero-size boxes and of
        inverted boxes, in mmdet's pixel coordinates.
    """
    zero_size, inverted = [], []
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        source = info.get('xml_path') or info.get('img_path', str(index))
        for instance in info.get('instances', []):
            x1, y1, x2, y2 = instance['bbox']
            if x2 < x1 or y2 < y1:
                inverted.append((source, list(instance['bbox'])))
            elif x2 == x1 or y2 == y1:
                zero_size.append((source, list(instance['bbox'])))
    return zero_size, inverted


def class_heads(model) -> Iterator[Tuple[str, int]]:
    """``(name, num_classes)`` of every detection head that classifies
    into the dataset's classes (the class-agnostic proposal heads, RPN and
    guided-anchoring RPN with their one class, are left out)."""
    from mmdet.models.dense_heads import GARPNHead, RPNHead
    from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
    from mmdet.models.roi_heads.bbox_heads import BBoxHead
    for name, module in model.named_modules():
        if isinstance(module, (RPNHead, GARPNHead)):
            continue
        if isinstance(module, (BaseDenseHead, BBoxHead)) and isinstance(
                getattr(module, 'num_classes', None), int):
            yield name, module.num_classes


def check_num_classes(model, dataset, split: str = 'train') -> None:
    """Raise ``ValueError`` when a head's ``num_classes`` differs from the
    number of classes of ``dataset``. A panoptic dataset's ``classes`` are
    its things and stuff; its box heads detect the things only, so the
    number of ``thing_classes`` is accepted too.

    Args:
        model (nn.Module): The (unwrapped) detector.
        dataset (BaseDataset): The dataset it is trained or tested on.
        split (str): Dataloader name for the message. Defaults to 'train'.
    """
    metainfo = dataset.metainfo or {}
    classes = tuple(metainfo.get('classes') or ())
    if not classes:
        return
    accepted = {len(classes), len(metainfo.get('thing_classes') or classes)}
    for name, num_classes in class_heads(model):
        if num_classes not in accepted:
            shown = classes if len(classes) <= 8 else classes[:8] + ('...', )
            raise ValueError(
                f'model.{name}.num_classes={num_classes} but '
                f'{split}_dataloader.dataset has {len(classes)} classes '
                f'{shown}: set model.{name}.num_classes={len(classes)}, or '
                f'set {split}_dataloader.dataset.metainfo=dict(classes=...) '
                f'to the {num_classes} classes the model predicts')


def describe_files(files: Sequence[str], limit: int = 3) -> str:
    """``'a.xml, b.xml (and 4 more)'``."""
    files = list(dict.fromkeys(files))
    more = len(files) - limit
    return ', '.join(files[:limit]) + (f' (and {more} more)'
                                       if more > 0 else '')
