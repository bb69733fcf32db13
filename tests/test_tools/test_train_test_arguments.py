# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""tools/train.py and tools/test.py name a missing config, checkpoint or
--resume file, and a dump file that is no pickle, before anything is
built; good arguments pass."""
import importlib.util
import os.path as osp

import pytest

from conftest import REPO_ROOT, refusal

CONFIG = osp.join(REPO_ROOT, 'configs', 'demo', 'fast-yolo_digits.py')


def load(name):
    spec = importlib.util.spec_from_file_location(
        f'mmdet_{name}_tool', osp.join(REPO_ROOT, 'tools', f'{name}.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


@pytest.fixture(scope='module')
def train():
    return load('train')


@pytest.fixture(scope='module')
def test():
    return load('test')


@pytest.fixture(autouse=True)
def local_rank(monkeypatch):
    """The tools set LOCAL_RANK where it is unset; set here, it is unset
    again after each test."""
    monkeypatch.setenv('LOCAL_RANK', '0')


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / 'iter_600.pth'
    path.write_bytes(b'')
    return str(path)


def test_train_names_a_missing_config_or_resume_file(train, tmp_path,
                                                     checkpoint, capsys):
    missing = str(tmp_path / 'nope.py')
    assert f'config file {missing} does not exist' in refusal(
        train.parse_args, [missing], capsys)
    gone = str(tmp_path / 'iter_9.pth')
    assert f'checkpoint file {gone} (--resume) does not exist' in refusal(
        train.parse_args, [CONFIG, '--resume', gone], capsys)
    for resume in ([], ['--resume'], ['--resume', checkpoint],
                   ['--resume', 's3://bucket/iter_9.pth']):
        args = train.parse_args([CONFIG] + resume)
        assert args.config == CONFIG
    assert train.parse_args([CONFIG, '--resume']).resume == 'auto'


def test_test_names_a_missing_config_or_checkpoint_and_a_bad_dump(
        test, tmp_path, checkpoint, capsys, monkeypatch):
    missing = str(tmp_path / 'nope.py')
    assert f'config file {missing} does not exist' in refusal(
        test.parse_args, [missing, checkpoint], capsys)
    gone = str(tmp_path / 'iter_9.pth')
    assert f'checkpoint file {gone} does not exist' in refusal(
        test.parse_args, [CONFIG, gone], capsys)
    assert '--out results.json: the dump file must be a .pkl' in refusal(
        test.parse_args, [CONFIG, checkpoint, '--out', 'results.json'],
        capsys)
    monkeypatch.setenv('HOME', str(tmp_path))
    for argv in ([CONFIG, checkpoint], [CONFIG, '~/iter_600.pth'],
                 [CONFIG, 'https://example.org/iter_600.pth'],
                 [CONFIG, checkpoint, '--out', 'results.pkl']):
        assert test.parse_args(argv).checkpoint == argv[1]
