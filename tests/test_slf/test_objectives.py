# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Decision objectives: the signals on hand-worked values, and training the
decision network by SGD lands on each derived fixed point
p_i ~ prior_i * exp(-s_i / beta)."""
import math

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS

import mmdet_slf  # noqa: F401
from mmdet_slf.slf import (ProgressSignal, ScaleFreeSignal, SLFWeighting,
                           TeacherSignal, decision_objective)

TERMS = ['coord', 'pred', 'obj', 'noobj']
LAMBDAS = [5.0, 1.0, 1.0, 0.5]
PRIOR = torch.tensor(LAMBDAS) / sum(LAMBDAS)
TOLERANCE = 0.01  # max |p - p*| after training, stated for every objective


def gibbs(signal, beta):
    """The minimiser of E[p.s] + beta KL(p || prior) over the simplex."""
    unnormalised = PRIOR * torch.exp(-signal / beta)
    return unnormalised / unnormalised.sum(-1, keepdim=True)


def ema_reference(values, momentum):
    """Bias-corrected EMA written as its explicit weighted average."""
    values = np.asarray(values, dtype=np.float64)
    count = len(values)
    weights = (1 - momentum) * momentum**np.arange(count - 1, -1, -1)
    return (weights[:, None] * values).sum(0) / (1 - momentum**count)


def test_sgd_on_j_reaches_the_gibbs_minimiser():
    signal = torch.tensor([[0.5, 2.0, 1.0, 0.0], [3.0, -1.0, 0.0, 0.5]])
    beta = 0.7
    logits = torch.zeros(2, 4, requires_grad=True)
    optimizer = torch.optim.SGD([logits], lr=2.0)
    for _ in range(600):
        objective = decision_objective(
            torch.softmax(logits, -1), signal, PRIOR, beta)
        optimizer.zero_grad()
        objective.backward()
        optimizer.step()
    probs = torch.softmax(logits, -1).detach()
    assert (probs - gibbs(signal, beta)).abs().max() < 1e-3


def test_scale_free_signal_hand_values():
    signal = ScaleFreeSignal(2, momentum=0.5)
    first = signal(torch.tensor([[1.0, 2.0], [3.0, 6.0]]), PRIOR[:2])
    # One update: the corrected mean is the batch mean [2, 4].
    torch.testing.assert_close(first, torch.tensor([[0.5, 0.5], [1.5, 1.5]]))
    second = signal(torch.tensor([[2.0, 2.0], [2.0, 2.0]]), PRIOR[:2])
    mean = ema_reference([[2.0, 4.0], [2.0, 2.0]], 0.5)  # [2, 8/3]
    expected = torch.tensor(2.0 / mean, dtype=torch.float32).expand(2, 2)
    torch.testing.assert_close(second, expected)
    signal.eval()
    evaluated = signal(torch.tensor([[100.0, 100.0]]), PRIOR[:2])
    assert int(signal.mean.count) == 2  # evaluation does not update
    # ... and divides by the running mean of training, [2, 8/3] (weights
    # 0.25, 0.5 over 1 - 0.5**2 = 0.75), not by this batch's mean (which
    # would give [1, 1]): 100 / [2, 8/3] = [50, 37.5].
    torch.testing.assert_close(
        evaluated, torch.tensor(100.0 / mean, dtype=torch.float32)[None])
    torch.testing.assert_close(evaluated, torch.tensor([[50.0, 37.5]]))


def test_scale_free_weighting_passes_its_scale_momentum_on():
    """SLFWeighting(scale_momentum=0.5) gives its 'scale_free' signal that
    momentum: after the batch means [2, 4] and [2, 2] the running scale is
    [2, 8/3] (the hand-worked values above), not the [2, ~3] of 0.99."""
    weighting = SLFWeighting(['a', 'b'], decision_objective='scale_free',
                             scale_momentum=0.5)
    weighting.signal(torch.tensor([[1.0, 2.0], [3.0, 6.0]]), PRIOR[:2])
    second = weighting.signal(torch.tensor([[2.0, 2.0]]), PRIOR[:2])
    torch.testing.assert_close(second, torch.tensor([[1.0, 0.75]]))


def test_progress_weighting_passes_its_scale_momentum_on():
    """SLFWeighting(scale_momentum=0.5) gives its 'progress' signal that
    momentum for sigma^2. Log-loss of term a drops by 1 once and stays:
    the gap peaks at step 3 and shrinks, so at step 6 the running sigma^2
    (0.00374 with momentum 0.5) is above the last square (0.00266) and
    s_a = 0.0729 / sqrt(0.00374) = 1.192; momentum 0.99 would average in
    the early zero square too and give 1.114."""
    weighting = SLFWeighting(['a', 'b'], decision_objective='progress',
                             scale_momentum=0.5, fast_momentum=0.5,
                             slow_momentum=0.8)
    losses = [[1.0, 1.0]] + [[math.exp(-1), 1.0]] * 5
    for loss in losses:
        out = weighting.signal(torch.tensor([loss]), PRIOR[:2])
    logs = np.log(np.asarray(losses))
    gaps = [ema_reference(logs[:k], 0.8) - ema_reference(logs[:k], 0.5)
            for k in range(1, len(losses) + 1)]
    squares = [[np.mean(g**2)] for g in gaps]
    sigma2 = max(ema_reference(squares, 0.5)[0], squares[-1][0])
    assert sigma2 > 1.3 * squares[-1][0]  # the running one counts
    expected = gaps[-1] / math.sqrt(sigma2)
    assert abs(expected[0] - 1.192) < 1e-3 and expected[1] == 0
    torch.testing.assert_close(
        out, torch.tensor(expected, dtype=torch.float32)[None])


def test_progress_weighting_passes_its_signal_min_scale_on():
    """SLFWeighting(signal_min_scale=1) gives its 'progress' signal that
    floor. Log-losses [0, 0] then [-1, 0] with fast 0.5 and slow 0.8: the
    corrected averages of [0, -1] are -1 / 1.5 and -1 / 1.8, so the gap is
    [1/9, 0]; its rms (0.079) is below the floor 1, so s = [1/9, 0]. With
    no floor the gap over its own rms would be [sqrt(2), 0]."""
    weighting = SLFWeighting(['a', 'b'], decision_objective='progress',
                             fast_momentum=0.5, slow_momentum=0.8,
                             signal_min_scale=1.0)
    first = weighting.signal(torch.tensor([[1.0, 1.0]]), PRIOR[:2])
    assert torch.equal(first, torch.zeros(1, 2))  # both averages are 0
    second = weighting.signal(torch.tensor([[math.exp(-1), 1.0]]), PRIOR[:2])
    torch.testing.assert_close(second, torch.tensor([[1 / 9, 0.0]]))


def test_progress_signal_hand_values():
    signal = ProgressSignal(2, fast_momentum=0.5, slow_momentum=0.8,
                            scale_momentum=0.8)
    losses = [[1.0, 1.0], [math.exp(-1), 1.0], [math.exp(-1.5), 0.5]]
    logs = np.log(np.asarray(losses))
    squares, outs = [], []
    for step, loss in enumerate(losses, start=1):
        out = signal(torch.tensor([loss, loss]), PRIOR[:2])
        gap = ema_reference(logs[:step], 0.8) - ema_reference(logs[:step],
                                                              0.5)
        squares.append([np.mean(gap**2)])
        sigma2 = max(ema_reference(squares, 0.8)[0], squares[-1][0])
        expected = gap / math.sqrt(sigma2) if sigma2 > 0 else 0 * gap
        torch.testing.assert_close(
            out, torch.tensor(expected, dtype=torch.float32)[None])
        outs.append(out)
        # sum_j s_j^2 <= n at every step.
        assert float(out.square().sum()) <= 2 + 1e-6
    # Step 2: only the first term fell, so s = [sqrt(2), 0], the bound.
    torch.testing.assert_close(outs[1], torch.tensor([[math.sqrt(2), 0.0]]))


def test_progress_min_scale_keeps_the_first_step_near_zero():
    # Step 1: slow and fast have seen one value each, so d is rounding error
    # (~1e-6 of log l in float32); the floor keeps s ~ d / 1e-3.
    losses = [[0.37, 1.3, 0.05, 2.2], [0.3, 1.25, 0.05, 2.0]]
    signal = ProgressSignal(4, min_scale=1e-3)
    first = signal(torch.tensor([losses[0]]), PRIOR)
    assert float(first.abs().max()) < 1e-2
    # Step 2 against the formula: d / max(sigma, rms d, min_scale).
    second = signal(torch.tensor([losses[1]]), PRIOR)
    logs = np.log(np.asarray(losses))
    gaps = [ema_reference(logs[:k], 0.99) - ema_reference(logs[:k], 0.9)
            for k in (1, 2)]
    squares = [[np.mean(g**2)] for g in gaps]
    sigma = math.sqrt(max(ema_reference(squares, 0.99)[0], squares[-1][0]))
    torch.testing.assert_close(
        second,
        torch.tensor(gaps[-1] / max(sigma, 1e-3), dtype=torch.float32)[None],
        # float32 slow - fast cancels to ~2e-6, divided by a scale ~1e-3.
        atol=5e-3, rtol=1e-3)
    with pytest.raises(ValueError, match='min_scale must be >= 0'):
        ProgressSignal(4, min_scale=-1.0)


def test_signals_follow_the_given_batch_mean():
    # The whole batch's mean row (over ranks) replaces this rank's.
    rows = torch.tensor([[1.0, 4.0], [3.0, 2.0]])
    whole = torch.tensor([4.0, 6.0])
    scale_free = ScaleFreeSignal(2, momentum=0.5)
    torch.testing.assert_close(
        scale_free(rows, PRIOR[:2], batch_mean=whole), rows / whole)
    given, own = ProgressSignal(2), ProgressSignal(2)
    given(rows, PRIOR[:2], batch_mean=whole)
    own(whole[None], PRIOR[:2])
    for name, buffer in own.named_buffers():
        torch.testing.assert_close(dict(given.named_buffers())[name], buffer)


def test_mean_over_ranks_is_the_identity_in_one_process():
    from mmdet_slf.slf.ranks import mean_over_ranks
    statistic = torch.tensor([0.5, 2.0, 1.5])
    assert mean_over_ranks(statistic) is statistic


def test_teacher_signal_hand_values():
    rows = torch.tensor([[1.0, 3.0], [3.0, 1.0]])
    prior = torch.tensor([0.75, 0.25])
    # Each row's own M: 0.75 * 1 + 0.25 * 3 = 1.5 and 0.75 * 3 + 0.25 = 2.5.
    torch.testing.assert_close(
        TeacherSignal()(rows, prior),
        torch.tensor([[-1 / 1.5, -3 / 1.5], [-3 / 2.5, -1 / 2.5]]))


def per_image_weighting(objective, beta, **kwargs):
    """One free logit vector per image: identity features into a linear
    decision network, so any per-image fixed point is representable."""
    return SLFWeighting(
        TERMS, prior=LAMBDAS, in_channels=3, kl_weight=beta,
        decision_objective=objective, estimator='expected',
        decision_net=dict(type='SLFDecisionNetwork', hidden_channels=0,
                          norm_input=False), **kwargs)


def train_decision(weighting, raw_at, steps, lr=1.0):
    optimizer = torch.optim.SGD(weighting.parameters(), lr=lr)
    features = torch.eye(3)
    for step in range(steps):
        raw = raw_at(step)  # [3, n]
        out = weighting({f'loss_{t}': raw[:, i] for i, t in enumerate(TERMS)},
                        features=features)
        optimizer.zero_grad()
        out['loss_slf_decision'].backward()
        optimizer.step()
    with torch.no_grad():
        return torch.softmax(weighting.decision_net(features), -1)


RAW = torch.tensor([[0.05, 2.0, 0.5, 0.2], [0.02, 1.0, 0.8, 0.4],
                    [0.08, 3.0, 0.2, 0.3]])


def test_teacher_fixed_point():
    beta = 2.0
    probs = train_decision(per_image_weighting('teacher', beta),
                           lambda step: RAW, steps=300)
    magnitude = (PRIOR * RAW).sum(1, keepdim=True)  # one M per image
    expected = gibbs(-RAW / magnitude, beta)  # prior * exp(l / (beta M))
    assert (probs - expected).abs().max() < TOLERANCE, (probs, expected)
    # The hardest term gains weight; every ratio keeps the derived bound
    # exp(-(max_j l_j - l_i) / (beta M)).
    ratio = probs / PRIOR
    assert (ratio[:, 1] > 1).all()
    bound = torch.exp(-(RAW.max(1, keepdim=True)[0] - RAW) /
                      (beta * magnitude))
    assert (ratio >= bound - TOLERANCE).all()


def teacher_floor(beta):
    """The floor of p_i* / prior_i derived in docs/slf.md: the worst row
    puts all of M on one other term j, l_j / M = 1 / prior_j."""
    worst = 1 - PRIOR + PRIOR * torch.exp(1 / (beta * PRIOR))
    return 1 / worst.max()


def test_teacher_floor_holds_for_any_row_and_is_attained():
    beta = 5.0
    floor = teacher_floor(beta)
    # 1 / (1 - 1/15 + e**3 / 15) = 0.44007: YOLO's prior, no-object term.
    assert abs(floor.item() - 0.44007) < 1e-5
    rows = torch.cat([
        torch.rand(2000, 4, generator=torch.Generator().manual_seed(0)) *
        torch.tensor([0.1, 30.0, 1.0, 3.0]),
        torch.eye(4) * 7.0,  # the vertices: one term carries all of M
    ])
    ratio = gibbs(TeacherSignal()(rows, PRIOR), beta) / PRIOR
    assert ratio.min() >= floor - 1e-6
    # Attained where the no-object term (the smallest prior) is alone.
    torch.testing.assert_close(ratio[-1, :3], floor.expand(3))


def test_teacher_keeps_the_floor_for_an_image_far_above_its_batch():
    """One image's ``pred`` at 20 in a batch of 8 whose other images have
    the terms 0.05 / 1 / 0.5 / 0.1: with M the batch mean that image's coord
    term kept 0.006 of its prior; with each image's own M it keeps the
    floor."""
    beta = 5.0
    raw = torch.tensor([[0.05, 1.0, 0.5, 0.1]]).repeat(8, 1)
    raw[0, 1] = 20.0
    ratio = gibbs(TeacherSignal()(raw, PRIOR), beta) / PRIOR
    assert ratio.min() >= teacher_floor(beta)
    batch_mean = (PRIOR * raw.mean(0)).sum()
    old = gibbs(-raw / batch_mean, beta) / PRIOR
    assert old.min() < 0.01  # what the batch-mean M gave


def test_scale_free_fixed_point():
    beta = 0.5
    probs = train_decision(per_image_weighting('scale_free', beta),
                           lambda step: RAW, steps=300)
    ratio_to_mean = RAW / RAW.mean(0)  # the running mean of a fixed batch
    expected = gibbs(ratio_to_mean, beta)
    assert (probs - expected).abs().max() < TOLERANCE, (probs, expected)
    # Bound p_i / prior_i >= exp(-s_i / beta), as s >= 0.
    assert (probs / PRIOR >= torch.exp(-ratio_to_mean / beta) -
            TOLERANCE).all()


def test_progress_fixed_point():
    # log l_i falls at a constant rate k_i: the averages' gap tends to
    # k_i * (lag_slow - lag_fast) = 3 k_i, and s_i to k_i / rms(k).
    rates = torch.tensor([0.02, 0.005, 0.01, 0.0])
    start = torch.tensor([0.5, 2.0, 1.0, 0.3])
    beta = 1.0
    weighting = per_image_weighting('progress', beta, fast_momentum=0.5,
                                    slow_momentum=0.8, scale_momentum=0.8)
    probs = train_decision(
        weighting, lambda step: (start * torch.exp(-rates * step)).expand(
            3, 4), steps=300)
    signal = rates / rates.square().mean().sqrt()
    expected = gibbs(signal, beta).expand(3, 4)
    assert (probs - expected).abs().max() < TOLERANCE, (probs, expected)
    # The term that does not improve gains the most; every ratio keeps the
    # bound exp(-sqrt(2 n) / beta).
    ratio = probs[0] / PRIOR
    assert ratio.argmax().item() == 3
    assert (ratio >= math.exp(-math.sqrt(8) / beta)).all()


def test_non_joint_objectives_train_only_the_decision_network():
    weighting = SLFWeighting(TERMS, prior=LAMBDAS, in_channels=3,
                             decision_objective='scale_free')
    features = torch.randn(2, 3, requires_grad=True)
    detector = torch.rand(2, 4, requires_grad=True)
    raw = detector * 2
    out = weighting({f'loss_{t}': raw[:, i] for i, t in enumerate(TERMS)},
                    features=features)
    detector_objective = sum(out[f'loss_{t}'] for t in TERMS)
    detector_objective.backward(retain_graph=True)
    assert all(p.grad is None for p in weighting.parameters())
    # The detector sees the detached weights: d/d raw_ni = w_ni.
    weights = torch.stack([out[f'slf_w_{t}'] for t in TERMS])
    torch.testing.assert_close(detector.grad.mean(0), 2 * weights)
    detector.grad = None
    out['loss_slf_decision'].backward()
    assert detector.grad is None and features.grad is None
    assert weighting.decision_net.fc_out.weight.grad.abs().sum() > 0
    assert {f'slf_signal_{t}' for t in TERMS} <= set(out)


def test_faithful_algorithm_1_is_one_line():
    weighting = SLFWeighting(TERMS, decision_objective='joint', kl_weight=0,
                             prior=None, prior_init=False, scale=1)
    out = weighting({f'loss_{t}': torch.rand(5) for t in TERMS})
    assert not any(k.startswith('loss_slf') for k in out)
    total = sum(out[f'slf_w_{t}'] for t in TERMS)
    assert total.item() == pytest.approx(1.0)


@pytest.mark.parametrize('kwargs, match', [
    (dict(decision_objective='greedy'),
     r"decision_objective must be one of \('joint', 'scale_free', "
     r"'progress', 'teacher'\), got 'greedy'"),
    (dict(estimator='antithetic'),
     r"estimator must be one of \('gumbel', 'stratified', 'expected'\)"),
    (dict(estimator='stratified', hard=False), "hard=False.*'gumbel' only"),
    (dict(decision_objective='scale_free', kl_weight=0.0),
     "kl_weight must be > 0 with decision_objective='scale_free'"),
    (dict(decision_objective='progress', entropy_weight=0.1),
     "entropy_weight applies to decision_objective='joint' only"),
    (dict(decision_objective='teacher', detach_features=False),
     "detach_features=False applies to decision_objective='joint' only"),
    (dict(decision_objective='progress', fast_momentum=0.99,
          slow_momentum=0.9), 'fast_momentum must be < slow_momentum'),
    (dict(decision_objective='progress', fast_momentum=0.9,
          slow_momentum=0.9), 'fast_momentum must be < slow_momentum'),
    (dict(scale_momentum=1.0), r'scale_momentum must be in \[0, 1\)'),
    (dict(scale_momentum=False), r'scale_momentum must be in \[0, 1\)'),
    (dict(decision_objective='progress', fast_momentum=float('nan')),
     r'fast_momentum must be in \[0, 1\), got nan'),
    (dict(decision_net=None), 'decision_net must be a dict with a type'),
    (dict(decision_net=dict(in_channels=7)),
     'decision_net must be a dict with a type'),
    (dict(decision_net=dict(type='SLFDecisionNetwork', in_channels=7)),
     "set in_channels on SLFWeighting, not in decision_net"),
    # Each would be overwritten by SLFWeighting's own: prior_init=False
    # here used to start at the prior all the same.
    (dict(decision_net=dict(type='SLFDecisionNetwork', prior_init=False)),
     r'set prior_init on SLFWeighting, not in decision_net \(got '
     r'decision_net prior_init=False\)'),
    (dict(decision_net=dict(type='SLFDecisionNetwork', num_terms=7,
                            prior=[1, 1, 1])),
     r'set num_terms, prior on SLFWeighting, not in decision_net'),
    (dict(per_image='yes'), 'per_image must be True or False'),
])
def test_bad_objective_settings_fail_at_build(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='SLFWeighting', terms=TERMS, **kwargs))


def test_progress_signal_does_not_update_in_eval_mode():
    """Evaluation reads the averages of training and changes none of them:
    the fast, slow and square averages, values and counts. Its signal is
    the gap of training's averages over max(sigma, rms gap), sigma^2 the
    running average of the squares: the losses drop once and then stay, so
    the gap peaks at step 3 and shrinks, and the running sigma^2 (0.00257)
    exceeds the last square (0.00213) -- the current square alone would
    give a signal 10% larger."""
    signal = ProgressSignal(2, fast_momentum=0.5, slow_momentum=0.8,
                            scale_momentum=0.8)
    losses = [[1.0, 2.0]] + [[0.5, 1.6]] * 4
    for loss in losses:
        signal(torch.tensor([loss]), PRIOR[:2])
    before = {k: v.clone() for k, v in signal.state_dict().items()}
    trained = signal(torch.tensor([[0.6, 1.6]]), PRIOR[:2])
    signal.load_state_dict(before)
    signal.eval()
    for _ in range(3):
        out = signal(torch.tensor([[0.6, 1.6]]), PRIOR[:2])
    for key, value in signal.state_dict().items():
        assert torch.equal(value, before[key]), key
    # the training call's signal from the same state differs: it updated
    assert not torch.allclose(out, trained)
    # The value, from training's averages alone (the evaluated batch enters
    # none of them), as in test_progress_signal_hand_values.
    logs = np.log(np.asarray(losses))
    gaps = [ema_reference(logs[:k], 0.8) - ema_reference(logs[:k], 0.5)
            for k in range(1, len(losses) + 1)]
    squares = [[np.mean(g**2)] for g in gaps]
    running = ema_reference(squares, 0.8)[0]
    assert running > 1.1 * squares[-1][0]  # sigma is the running one
    expected = gaps[-1] / math.sqrt(running)
    assert expected[0] > 1.2 and expected[1] > 0.35  # both terms fell
    torch.testing.assert_close(
        out, torch.tensor(expected, dtype=torch.float32)[None])


def test_scale_free_signal_before_any_training_call_reads_the_batch():
    """Evaluated before it has trained, the running mean falls back to the
    batch mean: s = rows / mean(rows), 1 for a batch of equal rows."""
    signal = ScaleFreeSignal(2).eval()
    out = signal(torch.tensor([[2.0, 0.5], [4.0, 1.5]]), PRIOR[:2])
    torch.testing.assert_close(out, torch.tensor([[2 / 3, 0.5], [4 / 3, 1.5]]))
    assert int(signal.mean.count) == 0


def test_scale_free_signal_evaluated_after_one_training_call():
    """One training call with batch mean [2, 4] (momentum 0.5): the EMA
    holds 0.5 * [2, 4] = [1, 2] and the bias correction 1 - 0.5 = 0.5
    gives the running mean [2, 4] back. Evaluation divides by it, 100 /
    [2, 4] = [50, 25], not by its own batch's mean (which gives [1, 1])."""
    signal = ScaleFreeSignal(2, momentum=0.5)
    signal(torch.tensor([[2.0, 4.0]]), PRIOR[:2])
    torch.testing.assert_close(signal.mean.value, torch.tensor([1.0, 2.0]))
    signal.eval()
    out = signal(torch.tensor([[100.0, 100.0]]), PRIOR[:2])
    torch.testing.assert_close(out, torch.tensor([[50.0, 25.0]]))
    assert int(signal.mean.count) == 1


def test_teacher_signal_of_a_batch_of_zeros_is_zero_not_nan():
    out = TeacherSignal()(torch.zeros(3, 4), PRIOR)
    assert torch.equal(out, torch.zeros(3, 4))


def test_per_batch_draws_read_the_batch_level_terms():
    """per_image=False: the decision network reads log1p of the batch-level
    terms (the sum over images), and the scale-free signal is that sum over
    its own running mean, so it is 1 on the first call whatever N is."""
    weighting = SLFWeighting(TERMS, prior=LAMBDAS, per_image=False)
    # Away from the prior start, whose zero last layer ignores the input.
    torch.nn.init.normal_(weighting.decision_net.fc_out.weight, std=0.5,
                          generator=torch.Generator().manual_seed(0))
    raw = torch.tensor([[0.2, 1.0, 0.5, 0.1], [0.4, 3.0, 0.5, 0.3],
                        [0.6, 2.0, 1.0, 0.2]])
    out = weighting({f'loss_{t}': raw[:, i] for i, t in enumerate(TERMS)})
    expected = weighting.decision_net(torch.log1p(raw.sum(0))[None])
    torch.testing.assert_close(
        torch.stack([out[f'slf_p_{t}'] for t in TERMS]),
        torch.softmax(expected[0], -1).detach())
    torch.testing.assert_close(
        torch.stack([out[f'slf_signal_{t}'] for t in TERMS]), torch.ones(4))


def test_one_feature_row_for_several_images_is_refused():
    weighting = SLFWeighting(TERMS, prior=LAMBDAS, in_channels=3)
    raw = torch.rand(4, 4) + 0.1
    with pytest.raises(ValueError, match='decision features give 1 rows but '
                       'the raw terms have 4 images'):
        weighting({f'loss_{t}': raw[:, i] for i, t in enumerate(TERMS)},
                  features=torch.rand(1, 3))
