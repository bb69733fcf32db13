# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Check the training data and the model against each other at start-up."""
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmdet.registry import HOOKS

from ..checks import (check_num_classes, describe_files,
                      find_degenerate_boxes, find_unknown_class_names,
                      leaf_datasets)
from .unwrap import unwrap_model

MODES = ('raise', 'warn')


@HOOKS.register_module()
class DatasetCheckHook(Hook):
    """Fail early, naming the file and the fix, on data mmdet leaves silent.

    Before training: the train set is not empty; every head's
    ``num_classes`` equals the number of dataset classes; no XML object has
    a name that is not a class of the dataset type (a typo such as
    ``persn``; names of the dataset type left out of ``metainfo.classes``
    are a deliberate subset and only logged); no box is inverted
    (``xmax < xmin``). Boxes of zero width or height are kept and reported
    with their files (``YOLOV1Head`` skips boxes under 0.005 of the input,
    as darknet does; other heads train on them as tiny boxes, without
    NaN). Before testing:
    ``num_classes`` against the test set.

    Args:
        unknown_class_names (str): ``'raise'`` or ``'warn'`` on XML names
            that are not classes of the dataset type. Defaults to 'raise'.
        check_xml (bool): Read every XML of ``XMLDataset`` training sets
            for unknown names (about a second per 10k images).
            Defaults to True.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 unknown_class_names: str = 'raise',
                 check_xml: bool = True) -> None:
        if unknown_class_names not in MODES:
            raise ValueError(f'unknown_class_names must be one of {MODES}, '
                             f'got {unknown_class_names!r}')
        self.unknown_class_names = unknown_class_names
        self.check_xml = check_xml

    @staticmethod
    def _model(runner):
        return unwrap_model(runner.model)

    def before_train(self, runner) -> None:
        dataset = runner.train_dataloader.dataset
        if len(dataset) == 0:
            raise ValueError(
                'train_dataloader.dataset has no images: check ann_file and '
                'filter_cfg (filter_empty_gt drops images with no object of '
                'metainfo.classes)')
        check_num_classes(self._model(runner), dataset, 'train')
        for leaf in leaf_datasets(dataset):
            self._check_boxes(leaf)
            if self.check_xml and hasattr(leaf, 'ann_subdir'):
                self._check_names(leaf)

    def before_test(self, runner) -> None:
        check_num_classes(self._model(runner),
                          runner.test_dataloader.dataset, 'test')

    @staticmethod
    def _check_boxes(dataset) -> None:
        zero_size, inverted = find_degenerate_boxes(dataset)
        if inverted:
            raise ValueError(
                f'{len(inverted)} inverted boxes (xmax < xmin or ymax < '
                f'ymin), e.g. {inverted[0][1]} in {inverted[0][0]}; files: '
                f'{describe_files([f for f, _ in inverted])}. Fix the '
                'annotations (swap the coordinates or delete the objects).')
        if zero_size:
            print_log(
                f'{len(zero_size)} boxes of zero width or height, e.g. '
                f'{zero_size[0][1]} in {zero_size[0][0]}; YOLOV1Head skips '
                'them (under 0.005 of the input), other heads train on them '
                'as tiny boxes. Fix the annotations if they are mistakes.',
                logger='current', level=30)

    def _check_names(self, dataset) -> None:
        unknown, excluded = find_unknown_class_names(dataset)
        if excluded:
            print_log(
                f'objects of classes left out of metainfo.classes are '
                f'skipped, as mmdet does: {dict(excluded)}',
                logger='current')
        if not unknown:
            return
        names = ', '.join(f'{name!r} in {describe_files(files)}'
                          for name, files in sorted(unknown.items()))
        message = (
            f'XML objects with class names that {type(dataset).__name__} '
            f'does not know: {names}. mmdet skips them silently. Fix the '
            '<name> in these files, or add the names to '
            'metainfo=dict(classes=...) (and num_classes) to train on them')
        if self.unknown_class_names == 'raise':
            raise ValueError(message)
        print_log(message, logger='current', level=30)
