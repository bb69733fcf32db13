# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Reproduce the synthetic numbers that ``docs/slf.md`` quotes.

Each check runs the package's own weighting on a small problem stated here,
in about ten seconds on a CPU, and prints what the page says, so the page's
numbers can be rebuilt after a change:

1. the KL guard's fixed point ``p_i ~ prior_i exp(-l_i / (kl_weight *
   prior . l))``: how close gradient descent through ``SLFWeighting`` gets
   to it with the expected weights (per-image rows) and with one-hot Gumbel
   draws at several temperatures;
2. the mean and variance of soft Gumbel-softmax samples (``hard=False``);
3. FAMO's weight decay pulling ``z`` to uniform when every term falls at
   the same rate;
4. the ``'progress'`` signal of terms that stand still, with and without
   ``signal_min_scale``.

Usage::

    python tools/slf_toy_numbers.py
"""
import argparse

import torch

from mmdet_slf.slf import FAMOWeighting, SLFWeighting
from mmdet_slf.slf.gumbel import multiple_gumbel_softmax
from mmdet_slf.slf.objectives import ProgressSignal

TERMS = ['coord', 'pred', 'obj', 'noobj']
PRIOR = [5.0, 1.0, 1.0, 0.5]
KL_WEIGHT = 5.0


def gibbs(rows: torch.Tensor) -> torch.Tensor:
    """The guard's fixed point for per-image rows ``[N, n]``: each image's
    own row in the exponent, the batch's mean row in ``beta``."""
    prior = torch.tensor(PRIOR) / sum(PRIOR)
    beta = KL_WEIGHT * (prior * rows.mean(0)).sum()
    unnormalised = prior * torch.exp(-rows / beta)
    return unnormalised / unnormalised.sum(-1, keepdim=True)


def train_decision(weighting: SLFWeighting, rows: torch.Tensor, steps: int,
                   lr: float, average_last: int) -> torch.Tensor:
    """Adam on the weighting's whole objective (Eq. 11 and the guard) for
    fixed terms; the decision's ``p`` averaged over the last steps."""
    optimizer = torch.optim.Adam(weighting.parameters(), lr=lr)
    raw = {f'loss_{t}': rows[:, i] for i, t in enumerate(TERMS)}
    total = torch.zeros_like(rows)
    for step in range(steps):
        out = weighting(raw)
        objective = sum(v.sum() for k, v in out.items() if 'loss' in k)
        optimizer.zero_grad()
        objective.backward()
        optimizer.step()
        if step >= steps - average_last:
            with torch.no_grad():
                logits = weighting.decision_net(torch.log1p(rows))
                total += torch.softmax(logits, -1)
    return total / average_last


def kl_fixed_point() -> None:
    rows = torch.tensor([[0.5, 2.0, 1.5, 3.0], [1.0, 0.5, 2.0, 0.2]])
    target = gibbs(rows)
    torch.manual_seed(0)
    expected = SLFWeighting(
        TERMS, prior=PRIOR, decision_objective='joint', estimator='expected',
        kl_weight=KL_WEIGHT)
    probs = train_decision(expected, rows, 3000, 1e-2, 1)
    print('1. KL guard fixed point, expected weights, two images: '
          f'max |p - p*| = {(probs - target).abs().max():.1e}')
    for tau in (0.5, 1.0, 2.0, 5.0):
        torch.manual_seed(0)
        gumbel = SLFWeighting(
            TERMS, prior=PRIOR, decision_objective='joint',
            estimator='gumbel', num_samples=4, temperature=tau,
            kl_weight=KL_WEIGHT)
        probs = train_decision(gumbel, rows, 3000, 1e-2, 1000)
        print(f'   one-hot Gumbel K = 4, tau = {tau}: max |p - p*| = '
              f'{(probs - target).abs().max():.3f} (p averaged over the last '
              '1,000 of 3,000 steps)')


def soft_samples(draws: int = 400_000) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = (torch.tensor(PRIOR) / sum(PRIOR)).log().expand(draws, 4)
    soft = multiple_gumbel_softmax(
        logits, 4, tau=1.0, hard=False, generator=generator)
    print(f'2. soft Gumbel-softmax, K = 4, tau = 1, {draws:,} draws: the '
          f'weight of p = 0.133 has mean {soft[:, 1].mean():.3f}, variance '
          f'{soft[:, 1].var():.4f}')


def famo_decay(calls: int = 1200) -> None:
    start = torch.tensor([0.05, 2.0, 0.5, 0.3])
    for decay in (1e-3, 0.0):
        famo = FAMOWeighting(TERMS, init_weights=PRIOR, weight_decay=decay)
        for call in range(calls):
            terms = start * 0.999**call  # every term falls at one rate
            famo({f'loss_{t}': terms[i] for i, t in enumerate(TERMS)})
        z = torch.softmax(famo.logits, 0).tolist()
        print(f'3. FAMO, terms falling at one rate, weight_decay {decay:g}, '
              f'{calls} calls: z from (0.667, 0.133, 0.133, 0.067) to '
              f'({", ".join(f"{v:.2f}" for v in z)})')


def progress_on_still_terms(steps: int = 500) -> None:
    terms = torch.tensor([[0.37, 1.3, 0.05, 2.2]])
    prior = torch.tensor(PRIOR) / sum(PRIOR)
    for min_scale in (0.0, 1e-3):
        signal = ProgressSignal(4, min_scale=min_scale)
        first = signal(terms, prior)
        for _ in range(steps - 1):
            last = signal(terms, prior)
        print(f'4. progress signal of constant terms, signal_min_scale '
              f'{min_scale:g}: largest |s| {first.abs().max():.2g} at step 1, '
              f'{last.abs().max():.2g} at step {steps}')


def main(argv=None) -> None:
    argparse.ArgumentParser(
        description=__doc__.splitlines()[0]).parse_args(argv)
    # Tensors of a few numbers: one thread is ten times faster than two
    # contending ones, and gives the same numbers.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        kl_fixed_point()
        soft_samples()
        famo_decay()
        progress_on_still_terms()
    finally:
        torch.set_num_threads(threads)


if __name__ == '__main__':
    main()
