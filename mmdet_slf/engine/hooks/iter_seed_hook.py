# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Seed every iteration from ``(seed, iteration)`` so resume is exact."""
import random
from functools import partial
import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmdet.registry import HOOKS

DATA_STREAM = 1
STEP_STREAM = 2
EPOCH_STREAM = 3


def seed_everything(seed: int, stream: int, index: int,
                    rank: int = 0) -> None:
    """Seed python, numpy and torch (all devices) from one tuple.

    ``numpy.random.SeedSequence`` mixes the tuple, so neighbouring
    iterations (and ranks) get unrelated streams.

    Args:
        seed (int): The run's seed.
        stream (int): Which consumer (data, step, epoch).
        index (int): Iteration or epoch index.
        rank (int): Process rank. Defaults to 0.
    """
    words = np.random.SeedSequence(
        [int(seed) & (2**63 - 1), stream, index,
         rank]).generate_state(2, np.uint32)
    value = (int(words[0]) << 32) | int(words[1])
    random.seed(value)
    np.random.seed(int(words[0]))
    torch.manual_seed(value & (2**63 - 1))


class _SeededIterator:
    """Seeds before every ``next`` with the batch's index, so the data
    pipeline of batch ``k`` draws the same numbers whether it is loaded in
    order or replayed by mmengine's dataloader fast-forward on resume."""

    def __init__(self, iterator, seed: int, rank: int) -> None:
        self.iterator = iterator
        self.seed = seed
        self.rank = rank
        self.index = 0

    def __iter__(self):
        return self

    def __next__(self):
        seed_everything(self.seed, DATA_STREAM, self.index, self.rank)
        self.index += 1
        return next(self.iterator)


def _shared_seed(runner) -> int:
    """``runner.seed`` of rank 0: mmengine's ``set_random_seed`` adds the
    rank to it under ``diff_rank_seed``."""
    randomness = getattr(runner, '_randomness_cfg', None) or {}
    if randomness.get('diff_rank_seed', False):
        return runner.seed - get_rank()
    return runner.seed


def _sampler_seed_configured(runner) -> bool:
    """Whether the runner's ``train_dataloader`` dict (from a config or
    given to ``Runner``; mmengine builds from a copy) sets
    ``sampler.seed``. A DataLoader built outside the runner says nothing
    of how its sampler's seed was chosen."""
    loader = getattr(runner, '_train_dataloader', None)
    sampler = loader.get('sampler') if isinstance(loader, dict) else None
    return isinstance(sampler, dict) and sampler.get('seed') is not None


@HOOKS.register_module()
class IterSeedHook(Hook):
    """Make the random streams a function of the iteration, not history.

    mmengine checkpoints do not hold the global RNG states, and a resumed run
    reseeds at start-up, so the Gumbel noise of SLF (and any random
    augmentation) after a resume differs from an uninterrupted run. Saving
    the states would still miss what happens between the save and the next
    batch (validation, other hooks). Instead this hook seeds python, numpy
    and torch from ``(runner.seed, iteration, rank)`` before each training
    step, from ``(runner.seed, epoch, rank)`` before each epoch, and from
    ``(runner.seed, batch index, rank)`` before each batch of an
    iteration-based loop is loaded. Both runs then draw the same numbers at
    every iteration, and nothing needs to go into the checkpoint
    (``runner.seed`` is already in its meta); a resume must keep the number
    of processes. Each rank gets its own streams, so the ``K`` Gumbel samples
    of SLF are independent across GPUs (mmengine's default seeds every rank
    alike, which repeats the same noise on every GPU).

    It also gives the train sampler and the data workers the run's seed: a
    resumed run whose config sets no seed has the checkpoint's seed there,
    and its sampler and workers would otherwise draw from a new one. The
    sampler gets the seed of rank 0 on every rank (under
    ``randomness=dict(diff_rank_seed=True)`` mmengine adds the rank to
    ``runner.seed``), since the ranks must shuffle alike to take disjoint
    slices of one order. A seed set on the sampler in the
    ``train_dataloader`` dict is kept; the sampler of a DataLoader object
    given to the runner gets the run's seed.

    Dataloader worker processes have their own generators, which mmengine
    seeds from ``(seed, worker, rank)`` when they start: without
    ``persistent_workers`` they restart every epoch and replay identically
    after a resume; with ``persistent_workers=True`` their augmentation
    draws after a resume differ from those of an uninterrupted run.

    Example::

        custom_hooks = [dict(type='IterSeedHook')]

    Args:
        seed_data (bool): Also seed before each batch of an iteration-based
            loop is loaded. Defaults to True.
        per_rank (bool): Mix the rank into the seeds. Defaults to True.
    """

    priority = 'HIGHEST'

    def __init__(self, seed_data: bool = True, per_rank: bool = True) -> None:
        self.seed_data = seed_data
        self.per_rank = per_rank

    def _rank(self) -> int:
        return get_rank() if self.per_rank else 0

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        self._follow_resumed_seed(runner, loop)
        if self.seed_data and hasattr(loop, 'dataloader_iterator') and \
                not isinstance(loop.dataloader_iterator, _SeededIterator):
            # Counting from 0 matches the fast-forward of a resumed loop,
            # which reloads batches 0..iter-1 before training on.
            loop.dataloader_iterator = _SeededIterator(
                loop.dataloader_iterator, runner.seed, self._rank())

    @staticmethod
    def _follow_resumed_seed(runner, loop) -> None:
        """Give the train sampler and the data workers the run's seed.

        mmengine builds the train dataloader before it resumes, so when the
        config sets no ``randomness.seed`` the sampler shuffles, and the
        worker processes augment, with the new process's random seed, while
        ``runner.seed`` is the one the checkpoint restored: the resumed run
        would read other images in another order. An iteration-based loop
        has started its iterator already (worker processes prefetch from
        the sampler), so it is started again.
        """
        dataloader = getattr(loop, 'dataloader', None)
        changed = False
        sampler = getattr(dataloader, 'sampler', None)
        seed = _shared_seed(runner)
        if getattr(sampler, 'seed', None) not in (None, seed) and \
                not _sampler_seed_configured(runner):
            sampler.seed = seed
            if hasattr(sampler, '_indices_of_rank'):
                # mmengine's InfiniteSampler: its index generator, which
                # worker prefetching has started, read the old seed.
                sampler.indices = sampler._indices_of_rank()
            changed = True
        init = getattr(dataloader, 'worker_init_fn', None)
        if isinstance(init, partial) and init.keywords.get(
                'seed') not in (None, runner.seed):
            dataloader.worker_init_fn = partial(
                init.func, *init.args, **dict(init.keywords,
                                              seed=runner.seed))
            changed = True
        iterator = getattr(loop, 'dataloader_iterator', None)
        if changed and iterator is not None and not isinstance(
                iterator, _SeededIterator):
            loop.dataloader_iterator = type(iterator)(dataloader)

    def before_train_epoch(self, runner) -> None:
        seed_everything(runner.seed, EPOCH_STREAM, runner.epoch,
                        self._rank())

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        seed_everything(runner.seed, STEP_STREAM, runner.iter, self._rank())
