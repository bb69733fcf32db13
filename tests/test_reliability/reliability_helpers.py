# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""A tiny SLF YOLO config and test-only hooks shared by the reliability
tests (also imported by the 2-process run through ``custom_imports``)."""
import json
import os
import os.path as osp
import sys
import uuid
from typing import Optional, Sequence

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmdet.registry import HOOKS

HERE = osp.dirname(osp.abspath(__file__))
TESTS_DIR = osp.dirname(HERE)
REPO_ROOT = osp.dirname(TESTS_DIR)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

from conftest import patch_cfg_for_tiny_voc  # noqa: E402

import mmdet_slf  # noqa: E402,F401
from mmdet_slf.engine.hooks.slf_logger_hook import \
    collect_diagnostics  # noqa: E402

YOLO_CONFIG = osp.join(REPO_ROOT, 'configs', 'fast-yolo_slf_voc.py')
WIDEN_FACTOR = 0.125  # Fast YOLO at 1/8 width: 128 channels at the end
IMAGE_SIZE = (64, 64)  # one 1 x 1 cell of stride 64 feeding the FC head


def tiny_yolo_cfg(data_root: str,
                  work_dir: str,
                  max_iters: int,
                  batch_size: int = 2,
                  config: str = YOLO_CONFIG):
    """The SLF Fast YOLO config shrunk to run a step in well under a second:
    tiny data, 64 x 64 input, 1/8 width, a 32-unit FC layer, no validation,
    a checkpoint after the last iteration.

    Args:
        data_root (str): Root of a tiny VOC tree (``make_tiny_voc``).
        work_dir (str): Work directory.
        max_iters (int): Training iterations (iteration-based loop).
        batch_size (int): Images per batch. Defaults to 2.
        config (str): Config file. Defaults to ``YOLO_CONFIG``.

    Returns:
        Config: The config.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    patch_cfg_for_tiny_voc(cfg, data_root, work_dir, IMAGE_SIZE, batch_size,
                           max_iters)
    cfg.model.backbone.widen_factor = WIDEN_FACTOR
    cfg.model.bbox_head.in_channels = int(1024 * WIDEN_FACTOR)
    cfg.model.bbox_head.fc_channels = 32
    cfg.val_dataloader = None
    cfg.val_cfg = None
    cfg.val_evaluator = None
    cfg.randomness = dict(seed=0)
    # mmengine names a run's logger after the config file and its start
    # second: two runs of one config started in one second would share a
    # logger, and the second would log into the first's file.
    cfg.experiment_name = f'tiny_yolo_{uuid.uuid4().hex[:12]}'
    cfg.default_hooks.pop('visualization', None)
    # The last iteration's checkpoint, iter_<max_iters>.pth, only.
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=10**6, by_epoch=False, save_last=True)
    return cfg


def unwrap(model):
    return model.module if is_model_wrapper(model) else model


def weighting_of(model):
    """The SLF weighting of the YOLO head."""
    return unwrap(model).bbox_head.weighting


@HOOKS.register_module()
class InjectNonFiniteHook(Hook):
    """Test-only: make one raw term of one weighting NaN/Inf at chosen
    iterations (and ranks), keeping the term in the autograd graph.

    Args:
        term (str): Term name, e.g. 'coord'.
        iters (Sequence[int]): 0-based iterations to corrupt.
        value (float): ``nan`` or ``inf``. Defaults to nan.
        ranks (Sequence[int], optional): Ranks to corrupt. Defaults to all.
        module (str): Dotted path of the weighting. Defaults to
            'bbox_head.weighting'.
    """

    priority = 'LOWEST'

    def __init__(self,
                 term: str,
                 iters: Sequence[int],
                 value: float = float('nan'),
                 ranks: Optional[Sequence[int]] = None,
                 module: str = 'bbox_head.weighting') -> None:
        self.term = term
        self.iters = set(iters)
        self.value = float(value)
        self.ranks = None if ranks is None else set(ranks)
        self.module = module
        self.handle = None

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter not in self.iters or (self.ranks is not None and
                                             get_rank() not in self.ranks):
            return
        weighting = unwrap(runner.model).get_submodule(self.module)
        key = f'loss_{self.term}'

        def corrupt(module, args, kwargs):
            losses = dict(args[0])
            losses[key] = losses[key] * self.value  # NaN/Inf, still in graph
            return (losses, ) + tuple(args[1:]), kwargs

        self.handle = weighting.register_forward_pre_hook(
            corrupt, with_kwargs=True)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


def parameter_digest(model) -> float:
    """Sum of ``|p|`` over every parameter, in float64: any step moves it."""
    return float(sum(p.detach().double().abs().sum()
                     for p in unwrap(model).parameters()))


@HOOKS.register_module()
class RankRecordHook(Hook):
    """Test-only: write what each rank saw to ``<out_dir>/rank<r>.json`` and
    its final weights to ``rank<r>.pth``. Per iteration: the local
    diagnostics of the weightings (before any reduction), every ``slf_*``
    value the message hub logged (after :class:`SLFLoggerHook`), and a
    digest of the parameters before and after the step.

    Args:
        out_dir (str): Where to write.
    """

    priority = 'LOWEST'  # after SLFLoggerHook (NORMAL) has logged

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir
        self.records = []
        self.digest_before = None

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.digest_before = parameter_digest(runner.model)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        logged = {
            key[len('train/'):]: buffer.current()
            for key, buffer in runner.message_hub.log_scalars.items()
            if key.startswith('train/slf_')
        }
        self.records.append(
            dict(iter=runner.iter,
                 local=collect_diagnostics(unwrap(runner.model)),
                 logged=logged,
                 digest_before=self.digest_before,
                 digest_after=parameter_digest(runner.model)))

    def after_train(self, runner) -> None:
        os.makedirs(self.out_dir, exist_ok=True)
        rank = get_rank()
        with open(osp.join(self.out_dir, f'rank{rank}.json'), 'w') as f:
            json.dump(self.records, f)
        torch.save(unwrap(runner.model).state_dict(),
                   osp.join(self.out_dir, f'rank{rank}.pth'))


def snapshot(runner) -> dict:
    """Copies of every parameter, buffer and optimizer state tensor."""
    model_state = {
        key: value.detach().clone()
        for key, value in unwrap(runner.model).state_dict().items()
    }
    optim_state = {}
    for index, state in runner.optim_wrapper.optimizer.state.items():
        for key, value in state.items():
            if torch.is_tensor(value):
                optim_state[f'{index}.{key}'] = value.detach().clone()
    return dict(model=model_state, optim=optim_state)


@HOOKS.register_module()
class SnapshotHook(Hook):
    """Test-only: snapshot model and optimizer state around iterations."""

    priority = 'LOWEST'

    def __init__(self, iters: Sequence[int]) -> None:
        self.iters = set(iters)
        self.before = {}
        self.after = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter in self.iters:
            self.before[runner.iter] = snapshot(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter in self.iters:
            self.after[runner.iter] = snapshot(runner)


def find_hook(runner, hook_type):
    return next(h for h in runner.hooks if isinstance(h, hook_type))


def read_log(work_dir: str) -> str:
    """Text of every mmengine log file under ``work_dir``."""
    text = []
    for root, _, files in os.walk(work_dir):
        for name in files:
            if name.endswith('.log'):
                with open(osp.join(root, name)) as f:
                    text.append(f.read())
    return '\n'.join(text)


def load_tool(name: str):
    """``tools/<name>.py`` as a module (``test`` would clash with the
    standard library's package of that name)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        f'mmdet_slf_tools_{name}', osp.join(REPO_ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(name: str, args: Sequence[str]):
    """Call ``tools/<name>.py`` with ``args`` in this process."""
    tool = load_tool(name)
    old_argv, sys.argv = sys.argv, [f'{name}.py'] + list(args)
    try:
        return tool.main()
    finally:
        sys.argv = old_argv
