# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The start-up checks of a config and of a built dataset, on small
hand-made configs and annotations: each bad input is refused with a
message that names it, and good input passes."""
import re

import pytest
from mmengine.config import Config

import mmdet_slf  # noqa: F401
from mmdet_slf.engine.checks import (check_ann_files, check_data_roots,
                                     check_nonfinite_skip, describe_files,
                                     explain_empty_dataset,
                                     find_degenerate_boxes)
from mmdet_slf.engine.optimizers import SkipNonFiniteOptimWrapper


def loaders(**datasets) -> Config:
    """A config whose ``<split>_dataloader`` reads ``datasets[split]``."""
    return Config({
        f'{split}_dataloader': dict(batch_size=1, dataset=dataset)
        for split, dataset in datasets.items()
    })


def test_a_missing_root_names_the_keys_of_every_split_that_reads_it(
        tmp_path):
    """The runner checks one split at a time, but the fix must name every
    dataset that reads the missing root: here train and test read
    ``gone``, val reads an existing folder, so the train check lists the
    train and the test key, not the val one."""
    gone = str(tmp_path / 'gone')
    cfg = loaders(train=dict(data_root=gone), val=dict(data_root=str(
        tmp_path)), test=dict(data_root=gone))
    with pytest.raises(FileNotFoundError) as error:
        check_data_roots(cfg, splits=('train', ))
    message = str(error.value)
    assert message.startswith(
        f'train_dataloader: data_root "{gone}" does not exist')
    assert re.findall(r'(\S+)\.data_root=\.\.\.', message) == [
        'train_dataloader.dataset', 'test_dataloader.dataset']
    check_data_roots(cfg, splits=('val', ))


def test_datasets_on_other_storage_are_not_checked_on_this_disk(tmp_path):
    """mmdet's configs read data through a storage backend (``backend_args``)
    or from a URI: those paths are not on the local file system, so the
    check leaves them to the backend; a local root beside them is still
    checked."""
    remote = 's3://openmmlab/datasets/detection/VOCdevkit/'
    gone = str(tmp_path / 'gone')
    cfg = loaders(
        train=dict(data_root=remote, ann_file='VOC2007/ImageSets/x.txt'),
        val=dict(data_root='data/VOCdevkit/', backend_args=dict(
            backend='petrel', path_mapping={'data/': 's3://openmmlab/'})),
        test=dict(data_root=gone, backend_args=dict(backend='local')))
    check_data_roots(cfg, splits=('train', 'val'))
    with pytest.raises(FileNotFoundError, match=f'test_dataloader: '
                       f'data_root "{gone}" does not exist'):
        check_data_roots(cfg)


def test_a_dataset_without_data_root_reads_its_ann_file_as_given(tmp_path):
    """No ``data_root``: the ``ann_file`` path is checked as it stands. A
    loader without a dataset (here val) has nothing to check."""
    ann_file = tmp_path / 'trainval.txt'
    ann_file.write_text('000005\n')
    cfg = loaders(train=dict(type='VOCDataset', ann_file=str(ann_file)),
                  val=None)
    cfg.test_dataloader = dict(batch_size=1)
    check_data_roots(cfg)
    check_ann_files(cfg)
    missing = str(tmp_path / 'missing.txt')
    cfg.train_dataloader.dataset.ann_file = missing
    with pytest.raises(FileNotFoundError,
                       match=re.escape(f'ann_file "{missing}" of '
                                       'train_dataloader.dataset does not '
                                       'exist')):
        check_data_roots(cfg)


def test_an_image_list_of_blank_lines_lists_no_ids(tmp_path):
    """Blank lines are no image ids: a list of only blank lines is
    refused like an empty one; one id is enough. A missing list is left to
    ``check_data_roots``, which names it as missing."""
    ann_file = tmp_path / 'trainval.txt'
    ann_file.write_text('\n  \n\n')
    cfg = loaders(train=dict(data_root=str(tmp_path),
                             ann_file='trainval.txt'))
    with pytest.raises(ValueError,
                       match=re.escape(f'train_dataloader: ann_file '
                                       f'"{ann_file}" lists no image ids')):
        check_ann_files(cfg)
    ann_file.write_text('\n000005\n')
    check_ann_files(cfg)
    cfg.train_dataloader.dataset.ann_file = 'missing.txt'
    check_ann_files(cfg)


def skip_cfg(bbox_head, **optim_wrapper) -> Config:
    return Config(dict(model=dict(roi_head=dict(bbox_head=bbox_head)),
                       optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1),
                                          **optim_wrapper)))


def test_skip_in_a_list_of_heads_needs_the_skipping_wrapper():
    """A cascade's ``bbox_head`` is a list: the second head's weighting
    skips, so the default wrapper (no ``type``: mmengine's
    ``OptimWrapper``) is refused, naming that head by its index."""
    heads = [dict(type='A'), dict(type='B', weighting=dict(nonfinite='skip'))]
    with pytest.raises(ValueError,
                       match=re.escape(
                           'model.roi_head.bbox_head[1].weighting.nonfinite='
                           '"skip" needs optim_wrapper.type="SkipNonFinite'
                           'OptimWrapper" to leave the parameters untouched'
                           ' on a skipped step, got "OptimWrapper"')):
        check_nonfinite_skip(skip_cfg(heads))
    check_nonfinite_skip(skip_cfg(heads, type='SkipNonFiniteOptimWrapper'))
    check_nonfinite_skip(skip_cfg(heads[:1]))  # nothing skips


def test_a_subclass_of_the_skipping_wrapper_skips_too():
    """The wrapper type may be a class: a subclass of
    ``SkipNonFiniteOptimWrapper`` skips steps, a plain ``OptimWrapper``
    subclass does not and is named in the message."""
    from mmengine.optim import OptimWrapper

    class Skipping(SkipNonFiniteOptimWrapper):
        pass

    class Plain(OptimWrapper):
        pass

    head = dict(weighting=dict(nonfinite='skip'))
    check_nonfinite_skip(skip_cfg(head, type=Skipping))
    check_nonfinite_skip(
        skip_cfg(head, type='mmdet.SkipNonFiniteOptimWrapper'))
    with pytest.raises(ValueError, match='got "Plain"'):
        check_nonfinite_skip(skip_cfg(head, type=Plain))


def test_an_empty_training_set_names_its_own_files(tmp_path):
    """Only the training split's image lists are named (the val list is
    not the one that emptied it); any other error is returned as is."""
    cfg = loaders(
        train=dict(data_root='/data', ann_file='train.txt',
                   filter_cfg=dict(filter_empty_gt=True),
                   metainfo=dict(classes=('Dog', ))),
        val=dict(data_root='/data', ann_file='val.txt'))
    error = ValueError('need at least one array to concatenate')
    message = str(explain_empty_dataset(cfg, error))
    assert message.startswith(
        "train_dataloader.dataset has no images after loading "
        "['/data/train.txt'] with filter_cfg [{'filter_empty_gt': True}]: "
        'every image was dropped.')
    assert "metainfo.classes ([('Dog',)]" in message
    other = ValueError('another problem')
    assert explain_empty_dataset(cfg, other) is other


class Boxes:
    """A dataset of one box per image, read from ``<index>.xml``."""

    def __init__(self, boxes) -> None:
        self.boxes = boxes

    def __len__(self) -> int:
        return len(self.boxes)

    def get_data_info(self, index: int) -> dict:
        return dict(xml_path=f'{index}.xml',
                    instances=[dict(bbox=self.boxes[index])])


def test_degenerate_boxes_in_each_direction():
    """(x1, y1, x2, y2): x2 == x1 or y2 == y1 is a box of zero size (kept,
    reported), x2 < x1 or y2 < y1 an inverted one (refused); a proper
    box is neither."""
    zero_size, inverted = find_degenerate_boxes(Boxes([
        [10, 10, 10, 20],  # zero width
        [10, 10, 20, 10],  # zero height
        [20, 10, 10, 20],  # xmax < xmin
        [10, 20, 20, 10],  # ymax < ymin
        [10, 10, 20, 20],  # proper
    ]))
    assert zero_size == [('0.xml', [10, 10, 10, 20]),
                         ('1.xml', [10, 10, 20, 10])]
    assert inverted == [('2.xml', [20, 10, 10, 20]),
                        ('3.xml', [10, 20, 20, 10])]


def test_describe_files_names_each_file_once():
    """Three files at most, each once (an XML with two bad boxes is one
    file), then how many more."""
    assert describe_files(['a.xml', 'a.xml', 'b.xml']) == 'a.xml, b.xml'
    assert describe_files(['a', 'b', 'c']) == 'a, b, c'
    assert describe_files(['a', 'b', 'c', 'd', 'e', 'd']) == \
        'a, b, c (and 2 more)'
