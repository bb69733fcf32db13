# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The visualization package imports OpenCV and matplotlib inside the
functions that draw, so importing it (or mmdet_slf) never pulls them in."""
import ast
import glob
import os.path as osp

import pytest

PACKAGE = osp.join(osp.dirname(__file__), '..', '..', 'mmdet_slf',
                   'visualization')
DRAWING_LIBRARIES = ('cv2', 'matplotlib')


def module_level_imports(path):
    """Top-level module names imported outside any function or class."""
    with open(path) as f:
        tree = ast.parse(f.read())
    names = []
    for node in tree.body:  # module level only
        if isinstance(node, ast.Import):
            names += [alias.name.split('.')[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.level == 0:
            names.append(node.module.split('.')[0])
    return names


@pytest.mark.parametrize(
    'path', sorted(glob.glob(osp.join(PACKAGE, '*.py'))),
    ids=lambda p: osp.basename(p))
def test_no_drawing_library_on_import(path):
    imported = module_level_imports(path)
    assert not set(imported) & set(DRAWING_LIBRARIES), imported


def test_mmdet_slf_does_not_import_visualization():
    with open(osp.join(PACKAGE, '..', '__init__.py')) as f:
        assert 'visualization' not in f.read()
