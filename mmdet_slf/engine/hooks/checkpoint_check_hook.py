# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Refuse to resume or evaluate with a checkpoint of another model."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.runner import BaseLoop, find_latest_checkpoint
from mmdet.registry import HOOKS

from ..checkpoint import (CheckpointError, checkpoint_state_dict,
                          compare_state_dicts, describe_mismatch, has_mismatch)
from .unwrap import unwrap_model


def only_weighting_state(report: dict) -> bool:
    """Whether every key of a :func:`compare_state_dicts` mismatch belongs
    to a loss weighting (``weighting.*`` or ``*.weighting.*``)."""
    keys = report['missing'] + report['unexpected'] + [
        key for key, _, _ in report['mismatched']
    ]
    return bool(keys) and all(
        key.startswith('weighting.') or '.weighting.' in key for key in keys)


@HOOKS.register_module()
class CheckpointCheckHook(Hook):
    """Compare a checkpoint with the model before mmengine loads it.

    mmengine loads with ``strict=False``: keys that do not fit are logged and
    the rest of the model keeps its random initialisation. That is what
    fine-tuning wants (``load_from`` with another ``num_classes``), but a
    resumed run or an evaluation with a checkpoint of another model silently
    trains or scores a half-random network. This hook raises
    :class:`CheckpointError` listing the missing, unexpected and
    shape-mismatched keys when resuming or evaluating, and when a
    ``load_from`` for training shares no weight with the model at all. An
    evaluation whose mismatch lies only in loss weightings' state (an SLF
    checkpoint in its fixed-lambda config, or a parent checkpoint in its
    ``SLFDetector`` config) warns and goes on: prediction does not run the
    weighting.

    Args:
        strict (bool, optional): Raise on any mismatch (True), only when no
            key fits (False), or decide by the run: strict when resuming or
            evaluating, lenient for ``load_from`` in training (None).
            Defaults to None.
    """

    priority = 'VERY_HIGH'

    def __init__(self, strict: Optional[bool] = None) -> None:
        self.strict = strict

    @staticmethod
    def _checkpoint_name(runner) -> str:
        load_from = getattr(runner, '_load_from', None)
        if load_from:
            return str(load_from)
        latest = find_latest_checkpoint(runner.work_dir)
        return str(latest) if latest else 'the checkpoint'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        model = unwrap_model(runner.model)
        name = self._checkpoint_name(runner)
        report = compare_state_dicts(model.state_dict(),
                                     checkpoint_state_dict(checkpoint, name))
        if not has_mismatch(report):
            return
        resuming = bool(getattr(runner, '_resume', False))
        training = isinstance(getattr(runner, '_train_loop', None), BaseLoop)
        strict = self.strict
        if strict is None:
            strict = resuming or not training
        details = describe_mismatch(report)
        if self.strict is None and not training and not resuming \
                and report['matched'] > 0 and only_weighting_state(report):
            # Prediction never runs the loss weighting: an SLF checkpoint
            # evaluates in its fixed-lambda config and a parent checkpoint
            # in its SLF config.
            runner.logger.warning(
                f'{name} differs from the model only in the loss '
                'weighting\'s training state, which prediction does not '
                f'use; evaluating with the {report["matched"]} weights that '
                f'fit:\n{details}')
            return
        if strict or report['matched'] == 0:
            action = 'resume from' if resuming else (
                'initialise from' if training else 'evaluate')
            experiment = checkpoint.get('meta', {}).get('experiment_name')
            origin = f' (written by run {experiment})' if experiment else ''
            total = report['matched'] + len(report['missing']) + len(
                report['mismatched'])
            extra = len(report['unexpected'])
            beside = f', {extra} checkpoint keys not in the model' \
                if extra else ''
            raise CheckpointError(
                f'cannot {action} {name}{origin}: it is a checkpoint of '
                f'another model ({report["matched"]} of {total} model '
                f'weights fit{beside}):\n{details}\nUse the config the '
                'checkpoint was trained with, or point to a checkpoint of '
                'this config; to fine-tune from another model use load_from '
                'without --resume.')
        runner.logger.warning(
            f'load_from {name} fits the model only partly '
            f'({report["matched"]} weights fit); the rest keeps its '
            f'initialisation:\n{details}')
