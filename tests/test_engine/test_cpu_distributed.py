# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""``setup_cpu_distributed``: nothing for other launchers; for
``--launcher pytorch`` without CUDA, a gloo process group and the CPU DDP
wrapper, keeping a wrapper the config sets itself."""
from datetime import timedelta

import pytest
import torch
from mmengine.config import Config

from mmdet_slf.engine.runner import cpu_distributed, setup_cpu_distributed


@pytest.fixture
def no_cuda(monkeypatch) -> list:
    """A machine without CUDA and without a process group yet; starting
    the group is recorded (its keyword arguments), not done."""
    calls = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(cpu_distributed.torch_dist, 'is_initialized',
                        lambda: False)
    monkeypatch.setattr(cpu_distributed.torch_dist, 'init_process_group',
                        lambda **kwargs: calls.append(kwargs))
    return calls


def test_other_launchers_change_nothing(no_cuda):
    for launcher in ('none', 'slurm'):
        cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
        assert setup_cpu_distributed(cfg, launcher) is False
        assert 'model_wrapper_cfg' not in cfg
    assert no_cuda == []


def test_pytorch_without_cuda_uses_gloo_and_the_cpu_wrapper(no_cuda):
    """The config's nccl is replaced by gloo, its timeout (seconds) is
    kept, and the wrapper takes the config's find_unused_parameters."""
    dist_cfg = dict(backend='nccl', timeout=120)
    cfg = Config(dict(env_cfg=dict(dist_cfg=dist_cfg),
                      find_unused_parameters=True))
    assert setup_cpu_distributed(cfg, 'pytorch') is True
    assert no_cuda == [dict(backend='gloo', timeout=timedelta(seconds=120))]
    assert cfg.model_wrapper_cfg == dict(type='CPUDistributedDataParallel',
                                         broadcast_buffers=False,
                                         find_unused_parameters=True)


def test_a_wrapper_of_the_config_is_kept(no_cuda):
    wrapper = dict(type='CPUDistributedDataParallel', broadcast_buffers=True)
    cfg = Config(dict(model_wrapper_cfg=wrapper))
    assert setup_cpu_distributed(cfg, 'pytorch') is True
    assert no_cuda == [dict(backend='gloo')]
    assert cfg.model_wrapper_cfg == wrapper
