# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The caller's ``weight``: the shapes each loss takes, and the ones that
only broadcast, which are refused instead of weighting other elements."""
import pytest
import torch

import mmdet_slf  # noqa: F401
from mmdet_slf.models.losses import (BiTemperedLogisticLoss,
                                     IoUBalancedClsLoss,
                                     IoUBalancedSmoothL1Loss)
from mmdet_slf.models.losses.utils import element_weight


def test_element_weight_shapes_and_dtype():
    loss_1d = torch.zeros(3, dtype=torch.float64)
    loss_2d = torch.zeros(3, 4)
    weight = torch.tensor([1, 2, 3])
    assert element_weight(None, loss_2d, 'L') is None
    got = element_weight(weight, loss_1d, 'L')
    assert got.dtype == torch.float64 and got.tolist() == [1, 2, 3]
    assert element_weight(weight, loss_2d, 'L').tolist() == [[1], [2], [3]]
    assert element_weight(weight[:, None], loss_2d, 'L').shape == (3, 1)
    assert element_weight(torch.ones(3, 4), loss_2d, 'L').shape == (3, 4)
    for bad in ([1], [1, 4], [4], [3, 2], [3, 4, 1]):
        with pytest.raises(ValueError, match=r'L: weight must have shape '
                           r'\[3\] or \[3, 1\] or \[3, 4\] for its '
                           r'element-wise loss of shape \[3, 4\], got ' +
                           str(bad).replace('[', r'\[').replace(']', r'\]')):
            element_weight(torch.ones(bad), loss_2d, 'L')
    # [N, N] on a softmax loss [N] would broadcast to an [N, N] loss
    with pytest.raises(ValueError, match=r'weight must have shape \[3\] '
                       r'for its element-wise loss of shape \[3\]'):
        element_weight(torch.ones(3, 3), loss_1d, 'L')


def reduced_with(loss, args, weight):
    return loss(*args, weight=weight, reduction_override='sum').item()


CASES = {
    'bi-tempered sigmoid':
    (lambda: BiTemperedLogisticLoss(t1=0.8, t2=1.2, use_sigmoid=True),
     lambda g: (torch.randn(3, 4, generator=g), torch.tensor([0, 2, 4]))),
    'bi-tempered softmax':
    (lambda: BiTemperedLogisticLoss(t1=0.8, t2=1.2),
     lambda g: (torch.randn(3, 5, generator=g), torch.tensor([0, 2, 4]))),
    'IoU-balanced classification':
    (lambda: IoUBalancedClsLoss(eta=1.5, use_sigmoid=True, loss_cls=dict(
        type='FocalLoss', use_sigmoid=True, reduction='none')),
     lambda g: (torch.randn(3, 4, generator=g),
                (torch.tensor([0, 2, 4]), torch.rand(3, generator=g)))),
    'IoU-balanced smooth L1':
    (lambda: IoUBalancedSmoothL1Loss(exponent=1.5),
     lambda g: (torch.rand(3, 4, generator=g) * 5,
                torch.rand(3, 4, generator=g) * 5)),
}


@pytest.mark.parametrize('name', list(CASES))
def test_losses_take_sample_weights_and_refuse_broadcast_ones(name):
    build, batch = CASES[name]
    loss = build()
    args = batch(torch.Generator().manual_seed(0))
    per_sample = torch.tensor([0.5, 1.0, 2.0])
    unweighted = reduced_with(loss, args, None)
    weighted = reduced_with(loss, args, per_sample)
    assert weighted != pytest.approx(unweighted)
    if name != 'bi-tempered softmax':  # a softmax loss is [N]
        assert reduced_with(loss, args, per_sample[:, None]) == \
            pytest.approx(weighted, rel=1e-6)
        assert reduced_with(loss, args, per_sample[:, None].expand(
            3, 4).clone()) == pytest.approx(weighted, rel=1e-6)
    # weights that broadcast without being per sample: one row for all
    # samples, one number, a square matrix over a softmax loss
    for bad in (torch.ones(1, 4), torch.ones(1), torch.ones(3, 3)):
        with pytest.raises(ValueError, match=f'{type(loss).__name__}: '
                           'weight must have shape'):
            reduced_with(loss, args, bad)
