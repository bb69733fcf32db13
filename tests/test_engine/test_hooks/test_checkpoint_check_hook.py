# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""CheckpointCheckHook on a model whose loss weighting a checkpoint lacks
(or has, where the model has none): evaluation goes on, since prediction
does not run the weighting; resuming stays strict."""
import logging
from types import SimpleNamespace

import pytest
import torch
from mmengine.runner import BaseLoop
from torch import nn

import mmdet_slf  # noqa: F401
from mmdet_slf.engine.checkpoint import CheckpointError
from mmdet_slf.engine.hooks.checkpoint_check_hook import CheckpointCheckHook
from mmdet_slf.slf import SLFWeighting


class Loop(BaseLoop):

    def __init__(self) -> None:  # a training loop, not run here
        pass

    def run(self) -> None:
        pass


class Detector(nn.Module):

    def __init__(self, weighted: bool) -> None:
        super().__init__()
        self.backbone = nn.Linear(3, 2)
        if weighted:
            self.weighting = SLFWeighting(['cls', 'box'])


def fake_runner(model, work_dir, resume=False, training=False):
    logger = logging.getLogger('test_checkpoint_check_hook')
    return SimpleNamespace(
        model=model, _resume=resume, work_dir=str(work_dir), logger=logger,
        _load_from='ckpt.pth',
        _train_loop=Loop() if training else None)


@pytest.mark.parametrize('model_weighted', [True, False])
def test_evaluation_ignores_the_weightings_state(model_weighted, tmp_path,
                                                 caplog):
    model = Detector(model_weighted)
    other = Detector(not model_weighted)
    checkpoint = dict(state_dict=other.state_dict())
    hook = CheckpointCheckHook()
    with caplog.at_level(logging.WARNING):
        hook.after_load_checkpoint(fake_runner(model, tmp_path), checkpoint)
    assert "only in the loss weighting's training state" in caplog.text
    assert 'weighting.decision_net.fc_out.bias' in caplog.text
    # resuming still refuses, and counts the checkpoint's own extra keys
    with pytest.raises(CheckpointError) as error:
        hook.after_load_checkpoint(
            fake_runner(model, tmp_path, resume=True, training=True),
            checkpoint)
    extra = len(set(other.state_dict()) - set(model.state_dict()))
    message = '2 of {} model weights fit{}'.format(
        2 + len(set(model.state_dict()) - set(other.state_dict())),
        f', {extra} checkpoint keys not in the model' if extra else '')
    assert message in str(error.value)


def test_evaluation_still_refuses_other_backbone_keys(tmp_path):
    model = Detector(True)
    state = Detector(False).state_dict()
    state['backbone.weight'] = torch.zeros(5, 3)  # another shape
    with pytest.raises(CheckpointError, match='cannot evaluate ckpt.pth'):
        CheckpointCheckHook().after_load_checkpoint(
            fake_runner(model, tmp_path), dict(state_dict=state))
