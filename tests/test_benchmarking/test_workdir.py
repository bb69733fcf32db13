# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The checks that a work dir's saved runs belong to the call that finds
them, on saved results written by hand."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmdet_slf.benchmarking import workdir

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
VAL = 'val (300 of trainval, split seed 0)'


def test_runs_saved_before_the_split_was_recorded_count_as_test_runs():
    """Every run made before results recorded ``eval_split`` was scored on
    the test images: taken for a test page, refused for a validation
    one."""
    done = {'fixed': {0: dict(mAP=0.8)}}
    workdir.check_split('w', done, 'test', 'hint')
    with pytest.raises(SystemExit, match=r'^w holds fixed seed 0 scored on '
                       r'test, not on val \(300 of trainval, split seed 0\):'
                       r' hint$'):
        workdir.check_split('w', done, VAL, 'hint')
    workdir.check_split('w', {'fixed': {0: dict(eval_split=VAL)}}, VAL, '')


def test_budgets_are_checked_for_the_strategies_given():
    """A run of 1200 iterations is refused where its strategy trains 600;
    a strategy without a budget here (its config is gone) and a run saved
    before budgets were recorded are not checked."""
    done = {'fixed': {0: dict(max_iters=1200), 1: dict()},
            'gone': {0: dict(max_iters=5)}}
    workdir.check_budget('w', done, {'fixed': 1200})
    with pytest.raises(SystemExit, match='w holds fixed seed 0 trained for '
                       '1200 iterations, not 600'):
        workdir.check_budget('w', done, {'fixed': 600})


def test_the_fingerprinted_set_is_the_configs_subset():
    """The demo configs train on ``data/digits_voc/VOCdevkit/`` with the
    subset ``DIGITS/``: the set fingerprinted is that subset's folder, not
    the whole VOCdevkit."""
    cfg = Config.fromfile(osp.join(REPO, 'configs/demo/benchmark/fixed.py'))
    assert workdir.dataset_dir(cfg) == 'data/digits_voc/VOCdevkit/DIGITS/'
