# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Test-only pieces of the 2-process tests: a hook that makes a rank die or
hang, and (run as a script under ``torch.distributed.run``) a worker that
trains several configs in one process group.

Usage as a worker::

    python -m torch.distributed.run --nproc_per_node 2 dist_helpers.py \
        CONFIG [CONFIG ...]
"""
import os
import os.path as osp
import signal
import sys
import time

import torch.distributed as torch_dist
from mmengine.hooks import Hook
from mmdet.registry import HOOKS


# force: the worker runs this file as __main__ and its configs import it again.
@HOOKS.register_module(force=True)
class StopRankHook(Hook):
    """Test-only: stop a rank at the end of an iteration, as a crash would,
    writing the time to ``<work_dir>/rank<r>_stopped`` first.

    Args:
        iteration (int): 0-based iteration after which to stop.
        how (str): 'die' (SIGKILL) or 'hang' (sleep for an hour).
        ranks (Sequence[int], optional): Ranks to stop. Defaults to all.
        barrier (bool): Wait for every rank first, so that rank 0 has
            written the iteration's checkpoint. Defaults to False.
    """

    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW) has saved

    def __init__(self, iteration: int, how: str = 'die', ranks=None,
                 barrier: bool = False) -> None:
        self.iteration = iteration
        self.how = how
        self.ranks = ranks
        self.barrier = barrier

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter != self.iteration:
            return
        rank = torch_dist.get_rank() if torch_dist.is_initialized() else 0
        if self.barrier:
            torch_dist.barrier()
        if self.ranks is not None and rank not in self.ranks:
            return
        with open(osp.join(runner.work_dir, f'rank{rank}_stopped'), 'w') as f:
            f.write(repr(time.time()))
        if self.how == 'hang':
            time.sleep(3600)
        os.kill(os.getpid(), signal.SIGKILL)


def train_configs(paths) -> None:
    """Train each config in the ranks' gloo process group (CPU DDP)."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    torch_dist.init_process_group('gloo')
    for path in paths:
        cfg = Config.fromfile(path)
        cfg.launcher = 'pytorch'
        cfg.model_wrapper_cfg = dict(
            type='CPUDistributedDataParallel', broadcast_buffers=False)
        Runner.from_cfg(cfg).train()
    torch_dist.destroy_process_group()


if __name__ == '__main__':
    train_configs(sys.argv[1:])
