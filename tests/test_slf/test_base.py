# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The base contract: one ``weigh`` method, the non-finite policy, and
diagnostics that stay tensors until the logger hook reads them."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from torch import nn

import mmdet_slf  # noqa: F401
from mmdet_slf.engine.hooks import SLFLoggerHook, collect_diagnostics
from mmdet_slf.slf import (BaseWeighting, FixedWeighting, NonFinitePolicy,
                           SLFWeighting)
from mmdet_slf.slf.diagnostics import pack_diagnostics
from mmdet_slf.slf.builder import build_weighting

TERMS = ['coord', 'pred', 'obj', 'noobj']
LAMBDAS = [5.0, 1.0, 1.0, 0.5]


def raw_terms(values):
    return {f'loss_{t}': torch.as_tensor(v) for t, v in zip(TERMS, values)}


def test_weigh_is_the_one_contract_and_forward_applies_it():
    weighting = FixedWeighting(TERMS, weights=LAMBDAS)
    raw = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 0.0, 1.0, 0.0]])
    weights, extra = weighting.weigh(raw)
    torch.testing.assert_close(weights, torch.tensor(LAMBDAS))
    assert extra['slf_w_coord'].item() == 5.0
    out = weighting({f'loss_{t}': raw[:, i] for i, t in enumerate(TERMS)})
    # Per-image terms are weighted, then summed over the images.
    assert out['loss_coord'].item() == pytest.approx(10.0)
    assert out['loss_pred'].item() == pytest.approx(2.0)


def test_diagnostics_stay_detached_tensors_until_read():
    weighting = SLFWeighting(TERMS, prior=LAMBDAS, estimator='gumbel')
    out = weighting(raw_terms([[1.0, 2.0], [2.0, 1.0], [0.5, 0.5],
                               [1.0, 3.0]]))
    keys = {k for k in out if 'loss' not in k}
    assert keys | {'slf_skipped'} == set(weighting.diagnostics)
    assert {'slf_temperature', 'slf_entropy', 'slf_w_coord',
            'slf_p_coord', 'slf_raw_coord'} <= keys
    for key, value in weighting.diagnostics.items():
        assert isinstance(value, torch.Tensor), key
        assert not value.requires_grad and value.dim() == 0, key
    floats = weighting.last_diagnostics
    assert all(type(v) is float for v in floats.values())
    assert floats['slf_w_coord'] == out['slf_w_coord'].item()
    assert floats['slf_skipped'] == 0.0
    # The batch-level raw term: the sum over the images.
    assert floats['slf_raw_noobj'] == pytest.approx(4.0)
    # The temperature matters to the Gumbel estimator only.
    expected = SLFWeighting(TERMS, prior=LAMBDAS)
    expected(raw_terms([[1.0, 2.0], [2.0, 1.0], [0.5, 0.5], [1.0, 3.0]]))
    assert 'slf_temperature' not in expected.diagnostics


def test_a_claimed_weighting_returns_only_its_objective():
    """With SLFLoggerHook's claim, the loss dict keeps the objective terms,
    and the diagnostics are one vector in the dict's key order."""
    values = [[1.0, 2.0], [2.0, 1.0], [0.5, 0.5], [1.0, 3.0]]
    torch.manual_seed(0)
    unclaimed = SLFWeighting(TERMS, prior=LAMBDAS)
    out = unclaimed(raw_terms(values))
    torch.manual_seed(0)
    claimed = SLFWeighting(TERMS, prior=LAMBDAS)
    claimed.diagnostics_logged_by_hook = True
    kept = claimed(raw_terms(values))
    assert set(kept) == {k for k in out if 'loss' in k}
    for key, value in kept.items():
        torch.testing.assert_close(value, out[key])
    keys, vector = claimed.diagnostic_vector
    assert keys == list(claimed.diagnostics)
    assert vector.shape == (len(keys), ) and vector.dtype == torch.float32
    assert dict(zip(keys, vector.tolist())) == unclaimed.last_diagnostics
    assert FixedWeighting(TERMS).diagnostic_vector == ([], None)


def test_diagnostics_pack_into_one_vector_in_key_order():
    """A scalar keeps its key, a per-term vector under a prefix gives one key
    per term; the values are one detached float32 vector."""
    p = torch.tensor([0.5, 0.25, 0.125, 0.125], requires_grad=True)
    keys, values = pack_diagnostics(
        {'slf_entropy': torch.tensor(1.5, dtype=torch.float64),
         'slf_p_': p * 2,
         'slf_skipped': torch.zeros((), dtype=torch.bool)}, TERMS)
    assert keys == ['slf_entropy', 'slf_p_coord', 'slf_p_pred', 'slf_p_obj',
                    'slf_p_noobj', 'slf_skipped']
    assert values.tolist() == [1.5, 1.0, 0.5, 0.25, 0.25, 0.0]
    assert values.dtype == torch.float32 and not values.requires_grad
    with pytest.raises(ValueError, match=r"diagnostic 'slf_p' must be a "
                       r'scalar, or a vector of one value per term \(4\) '
                       r'under a key ending in "_", got shape \(4,\)'):
        pack_diagnostics({'slf_p': p}, TERMS)
    with pytest.raises(ValueError, match=r'got shape \(2, 4\)'):
        pack_diagnostics({'slf_p_': torch.ones(2, 4)}, TERMS)


def test_policy_finds_names_and_raises_or_drops():
    raw = torch.tensor([[1.0, float('inf'), 1.0, 1.0],
                        [1.0, 1.0, 1.0, float('nan')]])
    assert NonFinitePolicy.find(raw, TERMS) == ['pred', 'noobj']
    assert NonFinitePolicy.find(raw[0, [0, 2]], ['a', 'b']) == []
    with pytest.raises(FloatingPointError, match=r"\['pred'\] in Owner"):
        NonFinitePolicy('raise').handle(raw, ['pred'], 'Owner', True)
    with pytest.raises(ValueError, match=r"nonfinite must be one of "
                       r"\('raise', 'skip'\), got 'ignore'"):
        NonFinitePolicy('ignore')

    policy = NonFinitePolicy('skip')
    param = nn.Parameter(torch.ones(3))
    features = torch.randn(2, 3, requires_grad=True)
    leaf = torch.ones(2, 4, requires_grad=True)
    bad_raw = leaf * raw
    # No step skipping: the terms stay out of the graph, only the
    # parameters are anchored, and no skip is requested.
    zero = policy.handle(bad_raw, ['pred'], 'Owner', True, features, [param])
    zero.backward()
    assert zero.item() == 0.0 and leaf.grad is None
    assert (param.grad == 0).all() and features.grad is None
    assert policy.pop_pending() == []
    # With step skipping the raw terms and features join the graph (every
    # parameter behind them gets a gradient, NaN where the term is, which
    # the wrapper discards) and the terms are handed to the wrapper once.
    policy.enable_step_skipping()
    zero = policy.handle(bad_raw, ['pred'], 'Owner', True, features, [param])
    zero.backward()
    assert (leaf.grad[torch.isfinite(raw)] == 0).all()
    assert (features.grad == 0).all()
    assert policy.pop_pending() == ['pred']
    assert policy.pop_pending() == []
    # Evaluation never asks for a skip.
    policy.handle(bad_raw.detach(), ['pred'], 'Owner', False)
    assert policy.pending == []


def test_dropped_call_returns_none_weights_and_keeps_last_weights():
    weighting = FixedWeighting(TERMS, weights=LAMBDAS, nonfinite='skip')
    weighting(raw_terms([1.0] * 4))
    weights, extra = weighting.weigh(torch.tensor([1.0, float('nan'),
                                                   1.0, 1.0]))
    assert weights is None
    assert extra['loss_slf_nonfinite'].item() == 0.0
    assert extra['slf_skipped'].item() == 1.0
    assert weighting.last_diagnostics['slf_w_coord'] == 5.0
    assert weighting.last_diagnostics['slf_skipped'] == 1.0
    assert weighting.nonfinite == 'skip'


def test_logger_hook_reads_every_weighting_once_per_step():

    class Model(nn.Module):

        def __init__(self):
            super().__init__()
            self.weighting = FixedWeighting(TERMS, weights=LAMBDAS)
            self.loss_cls = nn.Module()
            self.loss_cls.weighting = FixedWeighting(['ce', 'focal'],
                                                     weights=[0.25, 0.75])

    model = Model()
    model.weighting(raw_terms([1.0] * 4))
    model.loss_cls.weighting({'loss_ce': torch.tensor(1.0),
                              'loss_focal': torch.tensor(2.0)})
    diagnostics = collect_diagnostics(model)
    assert diagnostics['slf_w_coord'] == 5.0
    assert diagnostics['cls.slf_w_focal'] == 0.75
    assert not any('loss' in key for key in diagnostics)

    hub = MessageHub.get_instance('test_logger_hook_reads_every_weighting')
    runner = SimpleNamespace(model=model, message_hub=hub)
    SLFLoggerHook().after_train_iter(runner, 0, outputs={})
    assert hub.get_scalar('train/slf_w_noobj').current() == 0.5
    assert hub.get_scalar('train/cls.slf_w_ce').current() == 0.25
    # A key also returned in the loss dict replaces that entry, not adds.
    hub.update_scalar('train/slf_w_coord', 99.0)
    SLFLoggerHook().after_train_iter(
        runner, 1, outputs={'slf_w_coord': torch.tensor(99.0)})
    history, _ = hub.get_scalar('train/slf_w_coord').data
    assert history.tolist() == [5.0, 5.0]


def test_build_weighting_fills_in_channels_and_checks_terms():
    built = build_weighting(dict(type='SLFWeighting', terms=TERMS), TERMS,
                            feature_channels=7, owner='Head')
    assert built.decision_net.in_channels == 7
    raw_reader = build_weighting(
        dict(type='SLFWeighting', terms=TERMS, in_channels=None), TERMS, 7,
        'Head')
    assert raw_reader.reads_terms
    # a scoped registry name, and the class itself, are the same weighting
    from mmdet_slf.slf import SLFWeighting
    for kind in ('mmdet.SLFWeighting', SLFWeighting):
        scoped = build_weighting(dict(type=kind, terms=TERMS), TERMS, 7,
                                 'Head')
        assert scoped.decision_net.in_channels == 7
        assert not scoped.reads_terms
    with pytest.raises(ValueError, match=r"weighting.terms must be "
                       r"\['coord', 'pred'\] \(any order\) for Head"):
        build_weighting(dict(type='FixedWeighting', terms=['coord']),
                        ['coord', 'pred'], 7, 'Head')
    assert isinstance(built, BaseWeighting)
    # The head's terms fill in a config that names none.
    filled = build_weighting(dict(type='FixedWeighting', weights=LAMBDAS),
                             TERMS, 7, 'Head')
    assert filled.terms == TERMS


def test_scalar_and_per_image_terms_together_are_refused():
    """All raw terms are scalars or all are per-image vectors [N]: a scalar
    first and a vector [2] after it is refused with both shapes named,
    whichever comes first."""
    weighting = FixedWeighting(['a', 'b'])
    for first, second in [(torch.tensor(1.0), torch.tensor([1.0, 2.0])),
                          (torch.tensor([1.0, 2.0]), torch.tensor(1.0))]:
        shapes = {'loss_a': tuple(first.shape),
                  'loss_b': tuple(second.shape)}
        with pytest.raises(ValueError) as info:
            weighting({'loss_a': first, 'loss_b': second})
        message = str(info.value)
        assert 'must all be scalars or all be per-image vectors' in message
        assert f'got shapes {shapes}' in message
