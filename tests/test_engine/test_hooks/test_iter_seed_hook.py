# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""IterSeedHook's sampler seed: the checkpoint's seed after a resume, one
seed on every rank, and a seed set in the config left alone."""
import itertools
from types import SimpleNamespace

import mmengine.dataset.sampler as sampler_module
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import DefaultSampler, InfiniteSampler
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, MODELS
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

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
    # The dict mmengine's Runner keeps (and builds the dataloader from).
    train_dataloader = dict(sampler=dict(type='DefaultSampler',
                                         seed=configured))
    runner = SimpleNamespace(seed=runner_seed, train_loop=loop,
                             _train_dataloader=train_dataloader,
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


def test_a_started_infinite_sampler_takes_the_new_seed(monkeypatch):
    """An iteration-based loop's workers start the sampler's index stream
    before the hook runs; the resumed run must still read seed 100's."""
    monkeypatch.setattr(sampler_module, 'get_dist_info', lambda: (0, 1))
    sampler = InfiniteSampler(list(range(NUM_IMAGES)), seed=7)
    next(iter(sampler))  # prefetched with the new process's seed
    loop = SimpleNamespace(
        dataloader=SimpleNamespace(sampler=sampler, worker_init_fn=None))
    runner = SimpleNamespace(seed=100, train_loop=loop,
                             _train_dataloader=dict(),
                             _randomness_cfg=dict(seed=100))
    IterSeedHook._follow_resumed_seed(runner, loop)
    expected = InfiniteSampler(list(range(NUM_IMAGES)), seed=100)
    assert list(itertools.islice(iter(sampler), 2 * NUM_IMAGES)) == list(
        itertools.islice(iter(expected), 2 * NUM_IMAGES))


@pytest.mark.parametrize('randomness', [dict(seed=100),
                                        dict(seed=100, diff_rank_seed=True)])
def test_a_sampler_seed_set_in_the_config_is_kept(monkeypatch, randomness):
    assert shard(monkeypatch, 1, 123, 101, randomness, configured=123)[0] \
        == 123


@MODELS.register_module(force=True)
class IterSeedToyModel(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return dict(loss=self.linear(inputs.float()[:, None]).sum())


@DATASETS.register_module(force=True)
class IterSeedToyDataset(Dataset):

    def __len__(self) -> int:
        return NUM_IMAGES

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=index)


@pytest.mark.parametrize('from_cfg', [True, False])
def test_a_runner_keeps_the_sampler_seed_of_its_dataloader_dict(
        tmp_path, from_cfg):
    """The dict given to ``Runner(train_dataloader=...)`` counts as much as
    a config's: mmengine builds the dataloader from a copy of it."""
    loader = dict(dataset=dict(type='IterSeedToyDataset'),
                  sampler=dict(type='DefaultSampler', seed=123),
                  batch_size=2, num_workers=0,
                  collate_fn=dict(type='default_collate'))
    kwargs = dict(model=dict(type='IterSeedToyModel'),
                  work_dir=str(tmp_path), train_dataloader=loader,
                  train_cfg=dict(by_epoch=True, max_epochs=1),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
                  randomness=dict(seed=0), default_scope='mmdet',
                  custom_hooks=[dict(type='IterSeedHook')])
    runner = Runner.from_cfg(Config(kwargs)) if from_cfg else Runner(
        **kwargs)
    runner.train()
    assert runner.train_dataloader.sampler.seed == 123


def _draws(seed, stream, index, rank, count=4):
    hook_module.seed_everything(seed, stream, index, rank)
    return torch.rand(count)


def test_each_rank_and_iteration_gets_its_own_stream():
    """The seed is a function of the whole ``(seed, stream, index, rank)``
    tuple: the same tuple repeats the draws, changing the rank (so that
    GPUs draw independent Gumbel noise) or the iteration changes them."""
    step = hook_module.STEP_STREAM
    base = _draws(100, step, 3, 0)
    assert torch.equal(base, _draws(100, step, 3, 0))
    assert not torch.equal(base, _draws(100, step, 3, 1))
    assert not torch.equal(base, _draws(100, step, 4, 0))
    assert not torch.equal(base, _draws(100, hook_module.EPOCH_STREAM, 3,
                                        0))


def test_batch_k_is_loaded_with_the_seed_of_index_k():
    """The data iterator seeds before loading batch ``k`` from ``(seed,
    DATA_STREAM, k, rank)``, counting up from 0, so a replayed batch draws
    what it drew the first time."""

    def batches():
        while True:
            yield torch.rand(4)  # what a random augmentation would draw

    iterator = hook_module._SeededIterator(batches(), seed=100, rank=1)
    loaded = [next(iterator) for _ in range(3)]
    for index, batch in enumerate(loaded):
        expected = _draws(100, hook_module.DATA_STREAM, index, 1)
        assert torch.equal(batch, expected), index
    assert iterator.index == 3


@pytest.mark.parametrize('per_rank', [True, False])
def test_the_hook_seeds_epochs_and_steps_from_their_own_streams(
        monkeypatch, per_rank):
    """Rank 1 of a run with seed 100, at epoch 2 and iteration 2: the epoch
    is seeded from the epoch stream and the step from the step stream (the
    same index in both must not repeat the draws), with the rank mixed in
    only under ``per_rank``."""
    monkeypatch.setattr(hook_module, 'get_rank', lambda: 1)
    hook = IterSeedHook(per_rank=per_rank)
    runner = SimpleNamespace(seed=100, epoch=2, iter=2)
    rank = 1 if per_rank else 0
    hook.before_train_epoch(runner)
    epoch_draws = torch.rand(4)
    hook.before_train_iter(runner, batch_idx=0)
    step_draws = torch.rand(4)
    assert torch.equal(epoch_draws,
                       _draws(100, hook_module.EPOCH_STREAM, 2, rank))
    assert torch.equal(step_draws,
                       _draws(100, hook_module.STEP_STREAM, 2, rank))
    assert not torch.equal(epoch_draws, step_draws)


def test_a_loop_whose_seeds_already_fit_keeps_its_iterator():
    """The sampler and the workers already have the run's seed: nothing
    changes, so the started data iterator (and its prefetching workers) is
    kept rather than started again."""

    class Iterator:

        def __init__(self, dataloader):
            self.dataloader = dataloader

    sampler = DefaultSampler(list(range(NUM_IMAGES)), seed=100)
    dataloader = SimpleNamespace(sampler=sampler, worker_init_fn=None)
    iterator = Iterator(dataloader)
    loop = SimpleNamespace(dataloader=dataloader,
                           dataloader_iterator=iterator)
    runner = SimpleNamespace(seed=100, train_loop=loop,
                             _train_dataloader=dict(sampler=dict(
                                 type='DefaultSampler')),
                             _randomness_cfg=dict(seed=100))
    IterSeedHook._follow_resumed_seed(runner, loop)
    assert loop.dataloader_iterator is iterator and sampler.seed == 100
