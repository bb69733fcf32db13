# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Let ``--launcher pytorch`` run on machines without CUDA (gloo on CPU).

mmengine 0.10.7's pytorch launcher calls ``torch.cuda.set_device`` and wraps
the model with ``device_ids=[LOCAL_RANK]``; both fail without CUDA. This is
how the 2-process tests run on CPU; on GPUs nothing changes.
"""
from datetime import timedelta

import torch
import torch.distributed as torch_dist
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
# mmengine's Runner looks wrappers up in its own registry, not in mmdet's.
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that accepts CPU modules.

    DDP takes ``device_ids`` only for single-GPU modules, but mmengine's
    Runner always passes ``[LOCAL_RANK]``; for a CPU module they are dropped.

    Args:
        module (nn.Module): The model.
        device_ids (list[int], optional): Ignored for CPU modules.
            Defaults to None.
        **kwargs: Arguments of ``MMDistributedDataParallel``.
    """

    def __init__(self, module, device_ids=None, **kwargs) -> None:
        params = list(module.parameters())
        if not params or params[0].device.type == 'cpu':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def setup_cpu_distributed(cfg, launcher: str) -> bool:
    """Initialise a gloo process group and a CPU DDP wrapper when
    ``launcher`` is 'pytorch' and CUDA is not available.

    Args:
        cfg (Config): The full config; ``model_wrapper_cfg`` is set unless
            the config has one.
        launcher (str): The ``--launcher`` argument.

    Returns:
        bool: Whether CPU distributed training was set up.
    """
    if launcher != 'pytorch' or torch.cuda.is_available():
        return False
    dist_cfg = dict((cfg.get('env_cfg') or {}).get('dist_cfg') or {})
    backend = dist_cfg.pop('backend', 'gloo')
    if backend != 'gloo':
        print_log(f'env_cfg.dist_cfg.backend={backend!r} needs GPUs; no '
                  'CUDA here, so the processes use "gloo" on CPU',
                  logger='current', level=30)
    if not torch_dist.is_initialized():
        timeout = dist_cfg.pop('timeout', None)
        kwargs = {} if timeout is None else dict(
            timeout=timedelta(seconds=timeout))
        torch_dist.init_process_group(backend='gloo', **kwargs)
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='CPUDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    return True
