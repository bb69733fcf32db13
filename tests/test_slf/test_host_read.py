# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The weighting's one host read comes after its own device work.

On an asynchronous device (CUDA) the host runs ahead of the device until it
reads a value; the device then idles while the host issues what comes next.
A weighting's non-finite check is such a read, so every strategy issues its
work first and reads last. What follows the read is the application of the
weights in :meth:`BaseWeighting.forward`, the same three operators for every
strategy. A call with non-finite terms leaves the strategy's buffers as
they were.
"""
import copy

import pytest
import torch
from mmdet.registry import MODELS
from torch.utils._python_dispatch import TorchDispatchMode

import mmdet_slf  # noqa: F401

TERMS = ['coord', 'pred', 'obj', 'noobj']
LAMBDAS = [5.0, 1.0, 1.0, 0.5]
STRATEGIES = {
    'fixed': dict(type='FixedWeighting', weights=LAMBDAS),
    'slf-default': dict(type='SLFWeighting', prior=LAMBDAS),
    'slf-progress-k4': dict(type='SLFWeighting', prior=LAMBDAS,
                            decision_objective='progress',
                            estimator='gumbel'),
    'slf-teacher': dict(type='SLFWeighting', prior=LAMBDAS,
                        decision_objective='teacher'),
    'slf-joint': dict(type='SLFWeighting', prior=LAMBDAS,
                      decision_objective='joint', estimator='gumbel'),
    'famo': dict(type='FAMOWeighting'),
    'dwa': dict(type='DWAWeighting'),
    'rlw': dict(type='RandomWeighting'),
    'uncertainty': dict(type='UncertaintyWeighting', init_weights=LAMBDAS),
}
# mul: weights * raw; sum: over the images; unbind: one value per term.
APPLICATION = ['mul', 'sum', 'unbind']


class OperatorLog(TorchDispatchMode):
    """The names of the operators dispatched, in order."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def build(key, **kwargs):
    return MODELS.build(dict(STRATEGIES[key], terms=TERMS, **kwargs)).train()


def per_image_terms(seed, bad=None):
    generator = torch.Generator().manual_seed(seed)
    raw = {f'loss_{t}': torch.rand(8, generator=generator) + 0.1
           for t in TERMS}
    if bad is not None:
        raw[f'loss_{bad}'][3] = float('nan')
    return raw


@pytest.mark.parametrize('key', sorted(STRATEGIES))
def test_the_host_read_is_the_last_thing_a_weighting_issues(key):
    weighting = build(key)
    weighting(per_image_terms(0))  # past any first-call branch
    with OperatorLog() as log:
        weighting(per_image_terms(1))
    reads = [i for i, name in enumerate(log.names)
             if name == '_local_scalar_dense']
    assert len(reads) == 1, log.names
    assert log.names[reads[0] + 1:] == APPLICATION
    # The strategy's own work all comes before the read (the decision
    # network and its objective alone take some 50 operators).
    assert reads[0] >= (50 if key.startswith('slf') else 10)


def state(weighting):
    return {name: value.clone()
            for name, value in weighting.state_dict().items()}


@pytest.mark.parametrize('key', sorted(STRATEGIES))
@pytest.mark.parametrize('mode', ['raise', 'skip'])
def test_a_bad_call_leaves_the_buffers_as_they_were(key, mode):
    weighting = build(key, nonfinite=mode)
    for seed in range(3):
        weighting(per_image_terms(seed))
    before = state(weighting)
    diagnostics = dict(weighting.last_diagnostics)
    if mode == 'raise':
        with pytest.raises(FloatingPointError, match=r"\['obj'\]"):
            weighting(per_image_terms(3, bad='obj'))
    else:
        out = weighting(per_image_terms(3, bad='obj'))
        assert out['slf_skipped'].item() == 1.0
        assert all(out[f'loss_{t}'].item() == 0.0 for t in TERMS)
    after = state(weighting)
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    # The diagnostics still show the last good call's weights.
    kept = weighting.last_diagnostics
    assert kept['slf_skipped'] == (1.0 if mode == 'skip' else 0.0)
    for t in TERMS:
        assert kept[f'slf_w_{t}'] == diagnostics[f'slf_w_{t}']


@pytest.mark.parametrize('key', sorted(STRATEGIES))
def test_a_call_copies_exactly_the_state_a_checkpoint_saves(key):
    """Saved for the restore: the buffers in ``state_dict``, not the
    constants (a prior, fixed lambdas), and nothing else."""
    weighting = build(key)
    parameters = {id(p) for p in weighting.parameters()}
    saved = [value for value in weighting.state_dict(keep_vars=True).values()
             if id(value) not in parameters]
    assert [id(b) for b in weighting.state_buffers()] == [id(b)
                                                          for b in saved]
    # FAMO: logits, prev_log_gap, has_prev, adam_m, adam_v, adam_step (its
    # min_losses are a constant of the config).
    expected = {'fixed': 0, 'slf-default': 3, 'famo': 6, 'dwa': 5}
    if key in expected:
        assert len(saved) == expected[key]
    weighting(per_image_terms(0))
    with OperatorLog() as log:
        weighting(per_image_terms(1))
    assert log.names.count('clone') == len(saved)
    # Where the buffers sit is found at the first call; a move to another
    # dtype (or device) replaces the tensors, and the new ones are saved.
    weighting.double()
    moved = [value for value in weighting.state_dict(keep_vars=True).values()
             if id(value) not in parameters]
    assert [id(b) for b in weighting.state_buffers()] == [id(b)
                                                          for b in moved]
    # A deep copy (an EMA hook's model) saves its own buffers, not these.
    twin = copy.deepcopy(weighting)
    copied = [value for value in twin.state_dict(keep_vars=True).values()
              if not isinstance(value, torch.nn.Parameter)]
    assert [id(b) for b in twin.state_buffers()] == [id(b) for b in copied]


@pytest.mark.parametrize('key', ['slf-default', 'famo', 'dwa'])
def test_after_a_skipped_call_training_goes_on_as_if_it_never_was(key):
    """The stateful, deterministic strategies give, after a skipped call,
    bitwise the weights of a twin that never saw it."""
    torch.manual_seed(0)
    skipping = build(key, nonfinite='skip')
    torch.manual_seed(0)
    twin = build(key, nonfinite='skip')
    for seed in range(3):
        skipping(per_image_terms(seed))
        twin(per_image_terms(seed))
    skipping(per_image_terms(3, bad='pred'))
    for seed in range(4, 7):
        ours, theirs = skipping(per_image_terms(seed)), twin(
            per_image_terms(seed))
        for t in TERMS:
            assert torch.equal(ours[f'loss_{t}'], theirs[f'loss_{t}'])


@pytest.mark.parametrize('key', ['slf-default', 'slf-teacher'])
def test_the_decision_probabilities_are_computed_once(key):
    """``p`` serves the expected weights, ``J`` and the diagnostics; one
    softmax forward and, from ``J`` alone, one backward."""
    weighting = build(key)
    weighting(per_image_terms(0))
    raw = per_image_terms(1)
    with OperatorLog() as log:
        out = weighting(raw)
        out['loss_slf_decision'].backward()
    assert log.names.count('_softmax') == 1
    assert log.names.count('_softmax_backward_data') == 1
