# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""FAMOWeighting against a hand computation of its update rule."""
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS

import mmdet_slf  # noqa: F401
from mmdet_slf.slf import FAMOWeighting

TERMS = ['a', 'b', 'c']
CALLS = [[2.0, 1.0, 0.5], [1.0, 0.9, 0.45], [0.8, 0.85, 0.2]]
LR, DECAY, EPS = 0.025, 1e-3, 1e-8


def raw(values):
    return {f'loss_{t}': torch.tensor(v) for t, v in zip(TERMS, values)}


def weights_of(out):
    return np.array([out[f'slf_w_{t}'].item() for t in TERMS])


def hand_famo(calls, logits, scale):
    """Weights of each call: w = scale (z / D) / sum(z / D); before each
    call after the first, one Adam step on xi with gradient
    J_softmax^T delta + decay * xi, delta = log D(prev) - log D(now)."""
    logits = np.asarray(logits, dtype=np.float64)
    m, v, step = np.zeros(3), np.zeros(3), 0
    prev, out = None, []
    for losses in calls:
        log_gap = np.log(np.asarray(losses) + EPS)
        if prev is not None:
            delta = prev - log_gap
            z = np.exp(logits) / np.exp(logits).sum()
            jacobian = np.diag(z) - np.outer(z, z)  # d softmax / d xi
            grad = jacobian.T @ delta + DECAY * logits
            step += 1
            m = 0.9 * m + 0.1 * grad
            v = 0.999 * v + 0.001 * grad**2
            m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
            logits = logits - LR * m_hat / (np.sqrt(v_hat) + 1e-8)
        z = np.exp(logits) / np.exp(logits).sum()
        inverse = z / np.exp(log_gap)
        out.append(scale * inverse / inverse.sum())
        prev = log_gap
    return out, logits


def test_weights_after_two_steps_match_the_hand_computation():
    famo = FAMOWeighting(TERMS)
    got = [weights_of(famo(raw(values))) for values in CALLS]
    expected, logits = hand_famo(CALLS, np.zeros(3), scale=3.0)
    # First call, worked by hand: z uniform, 1 / D = [0.5, 1, 2].
    np.testing.assert_allclose(got[0], 3 * np.array([0.5, 1, 2]) / 3.5,
                               rtol=1e-6)
    for step in range(3):
        np.testing.assert_allclose(got[step], expected[step], rtol=1e-5)
    np.testing.assert_allclose(famo.logits.numpy(), logits, rtol=1e-5,
                               atol=1e-7)
    # Term 'a' fell fastest at the first step, so its logit went down.
    assert famo.logits[0] < famo.logits[1]
    assert int(famo.adam_step) == 2


def test_min_losses_offset_the_gaps():
    """D = l - min + eps: with min = [1, 0.5, 0] the first call's gaps
    are [1, 0.5, 0.5] (z uniform), so w = 3 * [1, 2, 2] / 5 (without the
    offset, 3 * [1, 2, 4] / 7)."""
    famo = FAMOWeighting(TERMS, min_losses=[1.0, 0.5, 0.0])
    np.testing.assert_allclose(weights_of(famo(raw(CALLS[0]))),
                               3 * np.array([1, 2, 2]) / 5, rtol=1e-6)


def test_update_matches_the_reference_procedure_with_torch_adam():
    """The rule as FAMO's reference code runs it: autograd through softmax
    with grad_outputs=delta, then torch.optim.Adam on the logits."""
    famo = FAMOWeighting(TERMS, init_weights=[3.0, 1.0, 1.0])
    logits = torch.tensor([3.0, 1.0, 1.0]).div(5).log().requires_grad_(True)
    optimizer = torch.optim.Adam([logits], lr=LR, weight_decay=DECAY)
    prev = None
    for values in CALLS:
        out = famo(raw(values))
        log_gap = (torch.tensor(values) + EPS).log()
        if prev is not None:
            grad = torch.autograd.grad(torch.softmax(logits, -1), logits,
                                       grad_outputs=prev - log_gap)[0]
            optimizer.zero_grad()
            logits.grad = grad
            optimizer.step()
        prev = log_gap
        z = torch.softmax(logits.detach(), -1)
        expected = 5.0 * (z / log_gap.exp()) / (z / log_gap.exp()).sum()
        torch.testing.assert_close(
            torch.tensor(weights_of(out), dtype=torch.float32), expected)
        torch.testing.assert_close(famo.logits, logits.detach())


def test_state_resumes_exactly_and_eval_does_not_update():
    first = FAMOWeighting(TERMS, lr=0.1)
    for values in CALLS[:2]:
        first(raw(values))
    state = first.state_dict()
    assert {'logits', 'prev_log_gap', 'has_prev', 'adam_m', 'adam_v',
            'adam_step'} <= set(state)
    resumed = FAMOWeighting(TERMS, lr=0.1)
    resumed.load_state_dict(state)
    torch.testing.assert_close(
        resumed(raw(CALLS[2]))['slf_w_a'], first(raw(CALLS[2]))['slf_w_a'])
    first.eval()
    before = first.logits.clone()
    first(raw([5.0, 5.0, 5.0]))
    assert torch.equal(first.logits, before)


def test_min_losses_come_from_the_config_not_the_checkpoint(monkeypatch):
    """The bounds are a constant of the config: not saved, and a checkpoint
    of an earlier version that saved them loads strictly, the config's
    bounds apply, and a difference is reported."""
    messages = []
    monkeypatch.setattr('mmdet_slf.slf.famo.print_log',
                        lambda msg, **kwargs: messages.append(msg))
    first = FAMOWeighting(TERMS, lr=0.1, min_losses=[0.0, 0.0, 0.0])
    first(raw(CALLS[0]))
    state = first.state_dict()
    assert 'min_losses' not in state
    older = dict(state, min_losses=torch.zeros(3))
    resumed = FAMOWeighting(TERMS, lr=0.1, min_losses=[0.5, 0.25, 0.0])
    resumed.load_state_dict(older)  # strict: no unexpected key
    assert resumed.min_losses.tolist() == [0.5, 0.25, 0.0]
    assert messages == [
        'min_losses: the checkpoint holds [0.0, 0.0, 0.0], the config '
        "[0.5, 0.25, 0.0]; the config's bounds are used"]
    FAMOWeighting(TERMS, lr=0.1).load_state_dict(older)  # the same: silent
    assert len(messages) == 1


def test_per_image_terms_use_the_batch_sums_and_no_parameters():
    famo = FAMOWeighting(TERMS, init_weights=[2.0, 1.0, 1.0], scale=4.0)
    per_image = {f'loss_{t}': torch.tensor([v / 2, v / 2])
                 for t, v in zip(TERMS, CALLS[0])}
    out = famo(per_image)
    z = np.array([0.5, 0.25, 0.25])
    inverse = z / (np.array(CALLS[0]) + EPS)
    np.testing.assert_allclose(weights_of(out),
                               4.0 * inverse / inverse.sum(), rtol=1e-6)
    assert out['slf_p_a'].item() == pytest.approx(0.5)
    assert list(famo.parameters()) == []


@pytest.mark.parametrize('kwargs, match', [
    (dict(lr=0.0), 'lr must be > 0'),
    (dict(weight_decay=-1.0), 'weight_decay must be >= 0'),
    (dict(init_weights=[1.0, 0.0, 1.0]), 'init_weights entries must be > 0'),
    (dict(min_losses=[0.0, 0.0]), 'min_losses must have one entry per term'),
    (dict(betas=(0.9, 1.0)), r'betas must be two numbers in \[0, 1\)'),
    (dict(betas=0.9), r'betas must be two numbers in \[0, 1\), got 0.9'),
    (dict(betas=(0.9, False)), r'betas must be two numbers in \[0, 1\)'),
    (dict(betas=(float('nan'), 0.9)), r'betas must be two numbers in'),
])
def test_bad_famo_settings_fail_at_build(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='FAMOWeighting', terms=TERMS, **kwargs))
