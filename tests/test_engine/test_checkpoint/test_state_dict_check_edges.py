# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""state_dict_check: the report of what does not fit between a model and a
checkpoint, and the lines that name it, on hand-made state dicts."""
import torch

from mmdet_slf.engine.checkpoint.state_dict_check import (
    compare_state_dicts, describe_mismatch, has_mismatch)


def test_a_shape_mismatch_names_the_checkpoint_shape_first():
    """``mismatched`` holds ``(key, checkpoint shape, model shape)`` and
    the message says which is which: swapping them would tell the user to
    fix the wrong side."""
    model = {'head.weight': torch.zeros(2, 3), 'head.bias': torch.zeros(2)}
    checkpoint = {'head.weight': torch.zeros(5, 3),
                  'head.bias': torch.zeros(2)}
    report = compare_state_dicts(model, checkpoint)
    assert report == dict(missing=[], unexpected=[],
                          mismatched=[('head.weight', (5, 3), (2, 3))],
                          matched=1)
    assert describe_mismatch(report) == (
        '  1 keys of another shape: '
        'head.weight (checkpoint [5, 3] vs model [2, 3])')


def test_a_shape_mismatch_alone_is_a_mismatch():
    """Equal key sets with one tensor of another shape still do not fit:
    loading would skip that tensor."""
    report = compare_state_dicts({'w': torch.zeros(4)}, {'w': torch.zeros(3)})
    assert report['missing'] == [] and report['unexpected'] == []
    assert has_mismatch(report)
    assert not has_mismatch(
        compare_state_dicts({'w': torch.zeros(4)}, {'w': torch.ones(4)}))


def test_each_line_shows_at_most_max_keys_and_counts_the_rest():
    """``max_keys`` keys are shown; ``... (n more)`` appears only when
    there are more than that, with the exact number left out."""
    model = {f'k{i}': torch.zeros(1) for i in range(5)}
    report = compare_state_dicts(model, {})
    assert describe_mismatch(report, max_keys=5) == (
        '  5 model keys missing from the checkpoint: k0, k1, k2, k3, k4')
    assert describe_mismatch(report, max_keys=3) == (
        '  5 model keys missing from the checkpoint: k0, k1, k2, '
        '... (2 more)')
