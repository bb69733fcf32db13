# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The weighting's helpers against hand-worked values: the floor and
finiteness flags, the mean over ranks, wide buffers after ``.half()``, and
the option checks at their boundaries."""
import pytest
import torch
from torch import nn

from mmdet_slf.slf import NonFinitePolicy
from mmdet_slf.slf import ranks
from mmdet_slf.slf.checks import (as_lambdas, check_momentum,
                                  check_repeatable, resolve_scale,
                                  stack_terms)
from mmdet_slf.slf.precision import (buffers_before_conversion,
                                     keep_buffers_wide)

TERMS = ['a', 'b']


def test_all_valid_is_true_exactly_at_or_above_the_floor():
    """``max(x, floor) - x == 0`` holds for ``x >= floor`` only: 0.5 at a
    floor of 0.5 is valid, 0.4 and a NaN are not, and a term far above the
    floor (7.0) is valid."""
    valid = NonFinitePolicy.all_valid
    assert bool(valid(torch.tensor([0.5, 7.0]), 0.5))
    assert not bool(valid(torch.tensor([0.4, 7.0]), 0.5))
    assert not bool(valid(torch.tensor([float('nan'), 7.0]), 0.5))
    # A per-term floor [n]: 1.0 >= 1.0 and 0.0 >= -1.0.
    assert bool(valid(torch.tensor([1.0, 0.0]), torch.tensor([1.0, -1.0])))
    assert not bool(valid(torch.tensor([0.9, 0.0]),
                          torch.tensor([1.0, -1.0])))
    # One bad entry of three makes the whole flag false.
    assert not bool(NonFinitePolicy.all_finite(
        torch.tensor([1.0, float('inf'), 2.0])))


def test_check_floor_names_the_lowest_image_of_a_term():
    """Per-image terms ``[N, n]``: the floor is checked on each term's
    least entry (the min over images), so term ``a`` with images 3.0 and
    -0.25 is reported as -0.25; a value equal to the floor (0 for ``b``)
    is allowed."""
    raw = torch.tensor([[3.0, 0.0], [-0.25, 2.0]])
    with pytest.raises(ValueError, match=r'loss_a = -0\.25 < 0') as info:
        NonFinitePolicy.check_floor(raw, 0.0, TERMS, 'Owner')
    assert 'loss_b' not in str(info.value)
    NonFinitePolicy.check_floor(torch.tensor([[3.0, 0.0], [0.0, 2.0]]), 0.0,
                                TERMS, 'Owner')


def fake_ranks(monkeypatch, others):
    """Two or more ranks: this one plus ``others``, each a packed
    ``[sum..., count]`` vector that ``all_reduce`` adds in."""
    monkeypatch.setattr(ranks, 'get_world_size', lambda: 1 + len(others))

    def all_reduce(packed, op):
        assert op == 'sum'
        for other in others:
            packed += other

    monkeypatch.setattr(ranks, 'all_reduce', all_reduce)


def test_mean_over_ranks_averages_only_the_finite_ranks(monkeypatch):
    """Two ranks with statistics [1, 2] (this one) and [3, 6]: the mean
    is [2, 4]. A third rank that passed ``finite=False`` contributes 0 to
    the sum and 0 to the count."""
    fake_ranks(monkeypatch, [torch.tensor([3.0, 6.0, 1.0])])
    out = ranks.mean_over_ranks(torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(out, torch.tensor([2.0, 4.0]))
    # This rank is not finite (NaN statistic): only the other rank counts,
    # [3, 6] / 1.
    fake_ranks(monkeypatch, [torch.tensor([3.0, 6.0, 1.0])])
    out = ranks.mean_over_ranks(torch.tensor([float('nan'), 2.0]),
                                finite=torch.tensor(False))
    torch.testing.assert_close(out, torch.tensor([3.0, 6.0]))


def test_keep_buffers_wide_restores_the_values_before_half():
    """``.half()`` rounds 1e5 to inf and 1/3 to 0.33325; the buffers come
    back with their float32 values from before, a float64 buffer as
    float64, and a bfloat16 buffer is widened too."""
    module = nn.Module()
    module.register_buffer('big', torch.tensor([1e5, 1 / 3]))
    module.register_buffer('wide', torch.tensor([1 / 3], dtype=torch.float64))
    before = buffers_before_conversion(module)
    module.half()
    assert torch.isinf(module.big[0])
    keep_buffers_wide(module, before)
    assert module.big.dtype == torch.float32
    assert module.big.tolist() == torch.tensor([1e5, 1 / 3]).tolist()
    assert module.wide.dtype == torch.float64
    assert module.wide.item() == 1 / 3

    # A buffer already in half precision before has no wide value: float32.
    module = nn.Module()
    module.register_buffer('low', torch.tensor([0.5], dtype=torch.float16))
    before = buffers_before_conversion(module)
    assert before == {}
    module.to(torch.bfloat16)
    keep_buffers_wide(module, before)
    assert module.low.dtype == torch.float32 and module.low.item() == 0.5


def test_lambdas_and_scale_at_their_boundaries():
    """A lambda of 0 switches a term off and is allowed; three values for
    two terms are refused; with no scale the total is the lambdas' sum
    (5 + 0.5 = 5.5), or n = 2 without a prior."""
    assert as_lambdas([0, 2], TERMS, 'weights').tolist() == [0.0, 2.0]
    with pytest.raises(ValueError, match='one entry per term'):
        as_lambdas([1, 2, 3], TERMS, 'weights')
    assert resolve_scale(None, torch.tensor([5.0, 0.5]), 2) == 5.5
    assert resolve_scale(None, None, 2) == 2.0
    assert check_momentum('momentum', 0.0) == 0.0
    with pytest.raises(ValueError, match=r'momentum must be in \[0, 1\)'):
        check_momentum('momentum', 1.0)


def test_check_repeatable_allows_a_norm_without_running_stats():
    """A batch norm with ``track_running_stats=False`` changes no state
    and is repeatable; one that tracks them is refused by name."""
    check_repeatable(nn.Sequential(nn.BatchNorm1d(3,
                                                  track_running_stats=False)),
                     'net', 'why')
    with pytest.raises(ValueError, match="BatchNorm1d at '0'"):
        check_repeatable(nn.Sequential(nn.BatchNorm1d(3)), 'net', 'why')


def test_stack_terms_refuses_two_dimensional_terms():
    """Terms are scalars ``[]`` or per-image ``[N]``; a ``[2, 2]`` term is
    refused, and two ``[3]`` terms stack to ``[3, 2]``."""
    with pytest.raises(ValueError, match='all be scalars or all be'):
        stack_terms({'loss_a': torch.ones(2, 2), 'loss_b': torch.ones(2, 2)},
                    TERMS, 'Owner')
    stacked = stack_terms({'loss_a': torch.ones(3), 'loss_b': torch.zeros(3)},
                          TERMS, 'Owner')
    assert stacked.shape == (3, 2) and stacked[:, 0].tolist() == [1.0] * 3
