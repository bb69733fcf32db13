# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""IterSeedHook's sampler seed: the checkpoint's seed after a resume, one
seed on every rank, and a seed set in the config left alone."""
from types import SimpleNamespace

import mmengine.dataset.sampler as sampler_module
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import DefaultSampler

import mmdet_slf.engine.hooks.iter_seed_hook as hook_module
from mmdet_slf.engine.hooks import IterSeedHook

NUM_IMAGES = 8


def shard(monkeypatch, rank, sampler_seed, runner_seed, randomness,
          configured=None):
    """The indices one of two ranks reads after the hook has run."""
    monkeypatch.setattr(sampler_module, 'get_dist_info', lambda: (rank, 2))
    monkeypatch.setattr(hook_module, 'get_rank', lambda: rank)
    sampler = DefaultSampler(list(range(NUM_IMAGES)), seed=sampler_seed)
    loop = SimpleNamespace(
        dataloader=SimpleNamespace(sampler=sampler, worker_init_fn=None))
    cfg = Config(dict(train_dataloader=dict(
        sampler=dict(type='DefaultSampler', seed=configured))))
    runner = SimpleNamespace(seed=runner_seed, train_loop=loop, cfg=cfg,
                             _randomness_cfg=randomness)
    IterSeedHook._follow_resumed_seed(runner, loop)
    return sampler.seed, list(sampler)


def test_ranks_with_their_own_seeds_shuffle_alike(monkeypatch):
    """``randomness=dict(seed=100, diff_rank_seed=True)``: rank r has
    ``runner.seed`` 100 + r, and mmengine gives every sampler one synced
    seed. The ranks must keep one order, so their slices are disjoint and
    cover the data; each rank's own seed there lost image 2 and read image 5
    twice."""
    randomness = dict(seed=100, diff_rank_seed=True)
    seeds, shards = zip(*[
        shard(monkeypatch, rank, 987654, 100 + rank, randomness)
        for rank in (0, 1)
    ])
    assert seeds == (100, 100)
    assert sorted(shards[0] + shards[1]) == list(range(NUM_IMAGES))


def test_a_resumed_run_takes_the_checkpoints_seed(monkeypatch):
    """No seed in the config: the sampler was built with the new process's
    seed 7 before the resume restored 100."""
    seed, indices = shard(monkeypatch, 0, 7, 100, dict(seed=100))
    assert seed == 100
    # DefaultSampler's order: a permutation drawn from a generator seeded
    # with its seed, of which rank 0 of 2 takes every other index.
    order = torch.randperm(NUM_IMAGES,
                           generator=torch.Generator().manual_seed(100))
    assert indices == order.tolist()[0::2]


@pytest.mark.parametrize('randomness', [dict(seed=100),
                                        dict(seed=100, diff_rank_seed=True)])
def test_a_sampler_seed_set_in_the_config_is_kept(monkeypatch, randomness):
    assert shard(monkeypatch, 1, 123, 101, randomness, configured=123)[0] \
        == 123
