# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""CheckpointCheckHook on a model whose loss weighting a checkpoint lacks
(or has, where the model has none): evaluation goes on, since prediction
does not run the weighting; resuming stays strict."""
import logging
from types import SimpleNamespace

import pytest
import torch
from mmdet.models import DetTTAModel
from mmengine.runner import BaseLoop
from torch import nn

import mmdet_slf  # noqa: F401
from mmdet_slf.engine.checkpoint import CheckpointError
from mmdet_slf.engine.hooks.checkpoint_check_hook import (
    CheckpointCheckHook, only_weighting_state)
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

    def test_step(self, data):  # what a test-time-augmentation model calls
        raise NotImplementedError


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


def test_a_name_that_merely_contains_weighting_is_no_weighting_state(
        tmp_path):
    """Only ``weighting.*`` and ``*.weighting.*`` keys are a loss
    weighting's state; ``backbone.reweighting.weight`` is a model weight,
    so an evaluation checkpoint that lacks it is refused."""
    def report(*missing):
        return dict(missing=list(missing), unexpected=[], mismatched=[],
                    matched=1)

    assert only_weighting_state(report('weighting.fc.bias',
                                       'roi_head.weighting.fc.weight'))
    assert not only_weighting_state(report('backbone.reweighting.weight'))
    assert not only_weighting_state(report('weighting.fc.bias',
                                           'head.reweighting_conv.bias'))
    model = Detector(False)
    model.backbone.reweighting = nn.Linear(1, 1)
    checkpoint = dict(state_dict=Detector(False).state_dict())
    with pytest.raises(CheckpointError,
                       match=r'cannot evaluate ckpt\.pth') as error:
        CheckpointCheckHook().after_load_checkpoint(
            fake_runner(model, tmp_path), checkpoint)
    # backbone.weight and backbone.bias fit; the two reweighting keys miss
    assert '2 of 4 model weights fit' in str(error.value)


def test_explicit_strict_refuses_a_weighting_only_mismatch(
        tmp_path, caplog):
    """The weighting-only leniency of evaluation is the default's (strict
    None) decision; ``strict=True`` raises on any mismatch, this one too.
    With the default the same checkpoint only warns."""
    model = Detector(True)
    checkpoint = dict(state_dict=Detector(False).state_dict())
    with caplog.at_level(logging.WARNING):
        CheckpointCheckHook().after_load_checkpoint(
            fake_runner(model, tmp_path), checkpoint)
    assert "only in the loss weighting's training state" in caplog.text
    refusal = r'cannot evaluate ckpt\.pth: it is a checkpoint of another'
    with pytest.raises(CheckpointError, match=refusal):
        CheckpointCheckHook(strict=True).after_load_checkpoint(
            fake_runner(model, tmp_path), checkpoint)


def test_training_load_from_with_no_fitting_key_is_refused(tmp_path,
                                                           caplog):
    """``load_from`` in training is lenient (fine-tuning), but a checkpoint
    that shares no key with the model is refused: nn.Linear(3, 2) has 2
    weights (weight, bias), none of which the checkpoint holds, and the
    checkpoint's one key is not in the model."""
    model = nn.Linear(3, 2)
    checkpoint = dict(state_dict={'other.weight': torch.zeros(1)})
    with pytest.raises(CheckpointError) as error:
        CheckpointCheckHook().after_load_checkpoint(
            fake_runner(model, tmp_path, training=True), checkpoint)
    assert str(error.value).startswith(
        'cannot initialise from ckpt.pth: it is a checkpoint of another '
        'model (0 of 2 model weights fit, 1 checkpoint keys not in the '
        'model):\n')
    # One key that fits (bias) is enough for a partial load with a warning.
    checkpoint['state_dict']['bias'] = torch.zeros(2)
    with caplog.at_level(logging.WARNING):
        CheckpointCheckHook().after_load_checkpoint(
            fake_runner(model, tmp_path, training=True), checkpoint)
    assert 'load_from ckpt.pth fits the model only partly (1 weights fit)' \
        in caplog.text


def test_the_refusal_counts_every_model_weight(tmp_path):
    """The total in ``m of n model weights fit`` is the model's number of
    weights, whether they fit, miss or have another shape: the model below
    has 4 (two Linear layers' weight and bias); the checkpoint lacks
    ``0.bias`` and has ``1.weight`` of shape [5, 2], so 2 of 4 fit."""
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    state = model.state_dict()
    del state['0.bias']
    state['1.weight'] = torch.zeros(5, 2)
    with pytest.raises(CheckpointError) as error:
        CheckpointCheckHook().after_load_checkpoint(
            fake_runner(model, tmp_path, resume=True, training=True),
            dict(state_dict=state))
    assert 'cannot resume from ckpt.pth: it is a checkpoint of another ' \
        'model (2 of 4 model weights fit):\n' in str(error.value)


@pytest.mark.parametrize('resume, training', [(False, False), (True, True),
                                              (False, True)],
                         ids=['evaluate', 'resume', 'load_from'])
@pytest.mark.parametrize('wrapped', ['no', 'DataParallel', 'TTA',
                                     'DataParallel of TTA'])
def test_a_checkpoint_of_this_model_loads_without_a_word(
        tmp_path, caplog, resume, training, wrapped):
    """Good input passes: a checkpoint of this very model (saved from the
    unwrapped model, as mmengine saves) neither raises nor warns, in any
    run and whether the model is wrapped (``DataParallel``), inside a
    test-time-augmentation model (``tools/test.py --tta``; its keys gain
    ``module.``, which mmengine's loading strips), both, or neither."""
    model = Detector(True)
    checkpoint = dict(state_dict=Detector(True).state_dict())
    if 'TTA' in wrapped:
        model = DetTTAModel(module=model)
    if 'DataParallel' in wrapped:
        model = nn.DataParallel(model)
    with caplog.at_level(logging.WARNING):
        CheckpointCheckHook().after_load_checkpoint(
            fake_runner(model, tmp_path, resume=resume, training=training),
            checkpoint)
    assert caplog.text == ''


def test_the_refusal_names_the_resumed_file_and_its_run(tmp_path):
    """An automatic resume has no ``load_from``: the file is the one
    ``last_checkpoint`` names, and the run that wrote it (the meta's
    ``experiment_name``) is named too."""
    latest = '/runs/other/iter_3.pth'
    (tmp_path / 'last_checkpoint').write_text(latest)
    runner = fake_runner(nn.Linear(3, 2), tmp_path, resume=True,
                         training=True)
    runner._load_from = None
    checkpoint = dict(state_dict={'other.weight': torch.zeros(1)},
                      meta=dict(experiment_name='yolo_20240101_120000'))
    with pytest.raises(CheckpointError) as error:
        CheckpointCheckHook().after_load_checkpoint(runner, checkpoint)
    assert str(error.value).startswith(
        f'cannot resume from {latest} (written by run yolo_20240101_120000)'
        ': it is a checkpoint of another model (0 of 2 model weights fit, 1 '
        'checkpoint keys not in the model)')


def test_an_evaluation_where_no_weight_fits_is_refused(tmp_path):
    """The weighting-only leniency needs at least one weight that fits:
    a model that is only a loss weighting, evaluated with a checkpoint
    that has none of its weights, is refused (0 fit)."""
    model = nn.Module()
    model.weighting = SLFWeighting(['cls', 'box'])
    total = len(model.state_dict())
    with pytest.raises(CheckpointError,
                       match=f'cannot evaluate ckpt.pth: it is a checkpoint '
                       rf'of another model \(0 of {total} model weights fit'):
        CheckpointCheckHook().after_load_checkpoint(
            fake_runner(model, tmp_path), dict(state_dict={}))
