# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Grouping loss keys into raw terms, checked against mmengine's reduction."""
import pytest
import torch
from mmengine.model import BaseModel

from mmdet_slf.models.detectors import LossGroups, reduce_loss_value


class _Parser(BaseModel):
    """Only for mmengine's own ``parse_losses``, the reference reduction."""

    def forward(self, *args, **kwargs):
        raise NotImplementedError


def parse(losses):
    return _Parser().parse_losses(losses)


def faster_rcnn_like_losses():
    return {
        'loss_rpn_cls': [torch.tensor(0.5), torch.tensor(0.25),
                         torch.tensor(0.125)],
        'loss_rpn_bbox': [torch.tensor([0.1, 0.3]), torch.tensor(0.2)],
        'loss_cls': torch.tensor(2.0),
        'acc': torch.tensor([87.5]),
        'loss_bbox': torch.tensor([1.0, 3.0]),
    }


def test_group_sums_levels_like_parse_losses():
    losses = faster_rcnn_like_losses()
    groups = LossGroups(
        dict(rpn=['loss_rpn_cls', 'loss_rpn_bbox'], roi_cls='loss_cls'))
    raw, passthrough, members = groups.group(losses)
    _, log_vars = parse(losses)
    # Hand-worked: 0.5 + 0.25 + 0.125 + mean(0.1, 0.3) + 0.2.
    assert raw['rpn'].item() == pytest.approx(1.275)
    assert raw['rpn'].item() == pytest.approx(
        float(log_vars['loss_rpn_cls'] + log_vars['loss_rpn_bbox']))
    assert raw['roi_cls'].item() == 2.0
    assert members == dict(
        rpn=['loss_rpn_cls', 'loss_rpn_bbox'], roi_cls=['loss_cls'])
    # Ungrouped keys come back as the very same objects.
    assert set(passthrough) == {'acc', 'loss_bbox'}
    assert passthrough['loss_bbox'] is losses['loss_bbox']


def test_group_keeps_the_graph():
    weight = torch.tensor(2.0, requires_grad=True)
    groups = LossGroups(dict(cls=['loss_cls']))
    raw, _, _ = groups.group({'loss_cls': [weight * 1.5, weight * 0.5]})
    raw['cls'].backward()
    assert weight.grad.item() == pytest.approx(2.0)


def test_patterns_group_decoder_layers():
    losses = {
        'loss_cls': torch.tensor(1.0),
        'd0.loss_cls': torch.tensor(2.0),
        'd1.loss_cls': torch.tensor(4.0),
        'loss_bbox': torch.tensor(8.0),
        'd0.loss_bbox': torch.tensor(16.0),
        'd0.acc_cls': torch.tensor(50.0),
    }
    groups = LossGroups(dict(cls=['*loss_cls'], box=['*loss_bbox']))
    raw, passthrough, members = groups.group(losses)
    assert raw['cls'].item() == 7.0 and raw['box'].item() == 24.0
    assert sorted(members['cls']) == ['d0.loss_cls', 'd1.loss_cls',
                                      'loss_cls']
    assert list(passthrough) == ['d0.acc_cls']
    # A pattern never pulls a key without "loss" into the objective.
    with pytest.raises(KeyError, match=r"terms.acc names '\*acc\*'"):
        LossGroups(dict(acc=['*acc*'])).group(losses)


@pytest.mark.parametrize('terms, message', [
    (dict(cls=['loss_cls'], box=['loss_cls']),
     r"'loss_cls' is in terms.cls and terms.box"),
    (dict(cls=['loss_cls', 'loss_cls']), r"'loss_cls' is twice in terms.cls"),
    (dict(cls=[], box=['loss_bbox']), r'terms.cls is empty'),
    (dict(cls={'loss_cls'}), r"terms.cls must be a list of the loss keys it "
     r"groups, e.g. terms.cls=\['loss_cls'\]; got set \{'loss_cls'\}"),
    (dict(), r'terms must be a non-empty dict'),
    (['loss_cls'], r'terms must be a non-empty dict'),
    (dict(loss_cls=['loss_cls']), r"term name 'loss_cls' .* must not contain"),
    (dict(acc=['acc']), r"terms.acc names 'acc', which does not contain"),
    (dict(cls=[3]), r'terms.cls entries must be loss keys'),
    (dict(cls=['']), r"terms.cls entries must be loss keys \(non-empty "
     r"strings\), got ''$"),
])
def test_bad_groups_fail_at_build(terms, message):
    with pytest.raises(ValueError, match=message):
        LossGroups(terms)


def test_missing_key_names_key_and_existing_keys():
    groups = LossGroups(dict(cls=['loss_cls'], box=['loss_bboxx']))
    with pytest.raises(KeyError) as info:
        groups.group(faster_rcnn_like_losses())
    message = str(info.value)
    assert "terms.box names 'loss_bboxx'" in message
    assert "['acc', 'loss_bbox', 'loss_cls', 'loss_rpn_bbox', " \
        "'loss_rpn_cls']" in message


def test_pattern_overlap_fails_at_step():
    groups = LossGroups(dict(cls=['loss_cls'], all=['loss_*']))
    with pytest.raises(ValueError,
                       match=r"'loss_cls' is matched by terms.cls and "
                       r'terms.all'):
        groups.group(faster_rcnn_like_losses())
    # A pattern and a key of one group that overlap.
    groups = LossGroups(dict(cls=['*loss_cls', 'loss_cls']))
    with pytest.raises(ValueError, match=r"'loss_cls' is matched twice by "
                       r'terms.cls; a key may be in one group only, once'):
        groups.group(faster_rcnn_like_losses())


def test_reduce_rejects_non_tensors():
    assert reduce_loss_value('loss_x', torch.tensor([1.0, 3.0])).item() == 2
    with pytest.raises(TypeError, match="loss key 'loss_x' holds float"):
        reduce_loss_value('loss_x', 1.0)


def test_bracket_sets_are_patterns():
    """'[' marks an fnmatch pattern like '*' and '?': 'd[01].loss_cls'
    groups layers d0 and d1 (2 + 4 = 6), not d2 nor the final 'loss_cls'."""
    losses = {
        'loss_cls': torch.tensor(1.0),
        'd0.loss_cls': torch.tensor(2.0),
        'd1.loss_cls': torch.tensor(4.0),
        'd2.loss_cls': torch.tensor(8.0),
    }
    raw, passthrough, members = LossGroups(
        dict(early=['d[01].loss_cls'])).group(losses)
    assert raw['early'].item() == 6.0
    assert members == dict(early=['d0.loss_cls', 'd1.loss_cls'])
    assert list(passthrough) == ['loss_cls', 'd2.loss_cls']


def test_reduce_rejects_an_empty_list():
    """An empty per-level list has no loss to reduce: refused, rather than
    the int 0 of an empty sum (no tensor, no graph)."""
    with pytest.raises(TypeError, match="loss key 'loss_cls' holds list; "
                       'expected a tensor or a list of tensors'):
        reduce_loss_value('loss_cls', [])
