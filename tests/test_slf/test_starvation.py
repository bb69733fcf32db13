# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""No starvation: on a synthetic problem whose terms start at very different
sizes, the non-joint objectives keep every term's mean weight >= 25% of its
prior weight, and 'joint' (Algorithm 1, with or without the KL guard)
takes the weight of the largest term away."""
import pytest
import torch

from mmdet_slf.slf import SLFWeighting

TERMS = ['coord', 'pred', 'obj', 'noobj']
LAMBDAS = [5.0, 1.0, 1.0, 0.5]
PRIOR = torch.tensor(LAMBDAS) / sum(LAMBDAS)
# Start sizes: the classification-like term is 400x the coordinate term.
SIZES = torch.tensor([0.05, 20.0, 1.0, 0.3])
FLOOR = 0.25  # the criterion: mean weight >= 25% of scale * prior


def train(steps=300, **kwargs):
    """A "detector" with one parameter per term, l_ni = size_i theta_i^2
    e_ni (e ~ U(0.5, 1.5) per image), trained by SGD on the weighted terms
    together with the decision network. A term with no weight stays at its
    start size. Returns each term's mean weight over training divided by
    scale * prior_i."""
    torch.manual_seed(0)
    weighting = SLFWeighting(TERMS, prior=LAMBDAS, **kwargs)
    theta = torch.nn.Parameter(torch.ones(4))
    optimizer = torch.optim.SGD([
        dict(params=[theta], lr=0.003),
        dict(params=weighting.parameters(), lr=0.05)
    ])
    weights = []
    for _ in range(steps):
        raw = SIZES * theta.square() * (torch.rand(8, 4) + 0.5)  # [8, n]
        out = weighting({f'loss_{t}': raw[:, i] for i, t in enumerate(TERMS)})
        objective = sum(v for k, v in out.items() if 'loss' in k) / 8
        optimizer.zero_grad()
        objective.backward()
        optimizer.step()
        weights.append(torch.stack([out[f'slf_w_{t}'] for t in TERMS]))
    return torch.stack(weights).mean(0) / (weighting.scale * PRIOR)


@pytest.mark.parametrize('objective', ['scale_free', 'progress', 'teacher'])
@pytest.mark.parametrize('estimator', ['gumbel', 'stratified', 'expected'])
def test_non_joint_objectives_keep_every_term(objective, estimator):
    ratio = train(decision_objective=objective, estimator=estimator)
    assert (ratio >= FLOOR).all(), ratio


def test_default_keeps_every_term():
    # SLFWeighting's own defaults: 'scale_free' with the expected weights.
    ratio = train()
    assert (ratio >= FLOOR).all(), ratio


PAPER = dict(decision_objective='joint', estimator='gumbel')


@pytest.mark.parametrize('kwargs', [
    PAPER,  # with this project's KL guard (kl_weight=5)
    dict(PAPER, kl_weight=0.0),  # Algorithm 1 from the prior start
])
def test_joint_starves_the_largest_term(kwargs):
    ratio = train(**kwargs)
    assert ratio[1] < 0.1, ratio  # 'pred' keeps < 10% of its prior weight
    assert ratio.argmax().item() == 0  # moved to the smallest term
