# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""What each strategy costs: its training-step time and inference FPS,
measured interleaved in one process from the same weights and batches, so
that the ratios to the reference are free of drifts in machine speed."""
from itertools import islice
from typing import Dict

import torch
from mmengine.config import Config

from .runs import run_config


def measure_cost(reference_cfg: Config,
                 strategy_cfgs: Dict[str, Config],
                 init_path: str,
                 seed: int,
                 work_dir: str,
                 rounds: int,
                 num_train_batches: int = 4,
                 num_test_images: int = 20) -> dict:
    """Seconds per training step and FPS of every strategy.

    Every strategy's detector starts from the weights in ``init_path`` (its
    weighting from its own initialisation) and steps with its own optimizer
    on the same ``num_train_batches`` batches of the reference's training
    data; the inference models run on the same ``num_test_images`` test
    images at batch 1. The strategies take turns within each of ``rounds``
    rounds (:func:`mmdet_slf.utils.timing.train_step_seconds` and
    :func:`~mmdet_slf.utils.timing.inference_fps`).

    Args:
        reference_cfg (Config): The reference strategy, whose data are used.
        strategy_cfgs (dict[str, Config]): Strategy key -> config.
        init_path (str): Initial detector weights (``state_dict``).
        seed (int): Seed of the reference run config.
        work_dir (str): Work dir of the runner that builds the data.
        rounds (int): Interleaved rounds.
        num_train_batches (int): Training batches, cycled through (fewer
            if an epoch of the data is shorter). Defaults to 4.
        num_test_images (int): Test images. Defaults to 20.

    Returns:
        dict: ``step_seconds`` and ``fps``, each strategy key -> value.
    """
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.optim import build_optim_wrapper
    from mmengine.runner import Runner

    from mmdet_slf.utils.timing import inference_fps, train_step_seconds
    register_all_modules(init_default_scope=True)
    weights = torch.load(init_path, map_location='cpu',
                         weights_only=True)['state_dict']
    cfg = run_config(reference_cfg, seed, work_dir, init_path)
    runner = Runner.from_cfg(cfg)
    train_batches = list(islice(
        runner.build_dataloader(
            dict(cfg.train_dataloader, num_workers=0,
                 persistent_workers=False)), num_train_batches))
    test_batches = list(islice(
        runner.build_dataloader(
            dict(cfg.test_dataloader, batch_size=1, num_workers=0,
                 persistent_workers=False)), num_test_images))
    runs, models = {}, {}
    for key, strategy_cfg in strategy_cfgs.items():
        model = MODELS.build(strategy_cfg.model)
        model.init_weights()
        model.load_state_dict(weights, strict=False)
        runs[key] = (model,
                     build_optim_wrapper(model, strategy_cfg.optim_wrapper))
        inference_model = MODELS.build(strategy_cfg.model)
        inference_model.load_state_dict(weights, strict=False)
        models[key] = inference_model
    step = train_step_seconds(runs, train_batches, rounds=rounds,
                              calls_per_round=3, warmup=2)
    fps = inference_fps(models, test_batches, rounds=rounds,
                        calls_per_round=20, warmup=5)
    return dict(step_seconds=step, fps=fps)
