# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""A Runner that checks a config's data before building it, chosen by the
config's ``runner_type``, so that mmdet's own ``tools/train.py`` (which
builds ``RUNNERS.build(cfg)`` when the key is set) runs it too."""
from typing import Dict, Union

from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.base_loop import BaseLoop

from ..checks import (check_ann_files, check_data_roots, check_nonfinite_skip,
                      explain_empty_dataset)
from .cpu_distributed import setup_cpu_distributed

LoopType = Union[BaseLoop, Dict]


# In mmengine's root registry, not mmdet's child: the tools build runners
# before any default scope is set, and a root lookup does not search children.
@RUNNERS.register_module()
class CheckedRunner(Runner):
    """mmengine's ``Runner`` with start-up checks and CPU distributed runs.

    Before a dataloader is built, its data roots and image lists must exist
    and list images (``check_data_roots``, ``check_ann_files``); before
    training, ``nonfinite='skip'`` needs ``SkipNonFiniteOptimWrapper``
    (``check_nonfinite_skip``), and a training set that ``filter_cfg``
    empties is reported with its files and classes instead of numpy's "need
    at least one array to concatenate". Each loop checks only its own
    dataloader, so a test run does not need the training data. With
    ``launcher='pytorch'`` and no CUDA, a gloo process group and
    ``CPUDistributedDataParallel`` are set up before the Runner is built (see
    :func:`setup_cpu_distributed`).

    Selected in a config with ``runner_type = 'CheckedRunner'``; every other
    behaviour is ``Runner``'s.
    """

    @classmethod
    def from_cfg(cls, cfg) -> 'CheckedRunner':
        """Set up CPU distributed training if needed, then build the runner.

        Args:
            cfg (Config): The full config; ``launcher`` is read from it, as
                mmdet's tools set it from ``--launcher``.

        Returns:
            CheckedRunner: The runner.
        """
        setup_cpu_distributed(cfg, cfg.get('launcher', 'none'))
        return super().from_cfg(cfg)

    def build_train_loop(self, loop: LoopType) -> BaseLoop:
        if isinstance(loop, BaseLoop):
            return loop
        check_nonfinite_skip(self.cfg)
        self._check_data('train')
        try:
            return super().build_train_loop(loop)
        except ValueError as error:
            explained = explain_empty_dataset(self.cfg, error)
            if explained is error:
                raise
            raise explained from error

    def build_val_loop(self, loop: LoopType) -> BaseLoop:
        if not isinstance(loop, BaseLoop):
            self._check_data('val')
        return super().build_val_loop(loop)

    def build_test_loop(self, loop: LoopType) -> BaseLoop:
        if not isinstance(loop, BaseLoop):
            self._check_data('test')
        return super().build_test_loop(loop)

    def _check_data(self, split: str) -> None:
        check_data_roots(self.cfg, splits=(split, ))
        check_ann_files(self.cfg, splits=(split, ))
