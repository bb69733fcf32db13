# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""tools/train.py and tools/test.py name a missing config, checkpoint or
--resume file, and a dump file that is no pickle, before anything is
built; good arguments pass, and each option sets what the runner is built
from."""
import importlib.util
import os.path as osp
import sys

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
    # the predictions are dumped after the whole evaluation: a path that
    # cannot be written is refused before it (it failed after it before)
    folder = tmp_path / 'd.pkl'
    folder.mkdir()
    assert f'--out {folder} is a folder' in refusal(
        test.parse_args, [CONFIG, checkpoint, '--out', str(folder)], capsys)
    dump = f'{checkpoint}/results.pkl'
    assert f'--out {dump}: {checkpoint} is a file, not a folder' in refusal(
        test.parse_args, [CONFIG, checkpoint, '--out', dump], capsys)
    assert test.parse_args([CONFIG, checkpoint, '--out', str(
        tmp_path / 'new' / 'results.pkl')]).out.endswith('new/results.pkl')
    monkeypatch.setenv('HOME', str(tmp_path))
    for argv in ([CONFIG, checkpoint], [CONFIG, '~/iter_600.pth'],
                 [CONFIG, 'https://example.org/iter_600.pth'],
                 [CONFIG, checkpoint, '--out', 'results.pkl']):
        assert test.parse_args(argv).checkpoint == argv[1]


def test_train_and_test_keep_a_launchers_local_rank(train, test,
                                                    monkeypatch):
    """torchrun sets LOCAL_RANK and passes no --local-rank: the rank it set
    (3) is kept, not replaced by the option's value. Where LOCAL_RANK is
    unset, --local-rank 2 (torch.distributed.launch) sets it to '2'."""
    for tool, argv in ((train, [CONFIG]), (test, [CONFIG, CONFIG])):
        monkeypatch.setenv('LOCAL_RANK', '3')
        tool.parse_args(argv + ['--local-rank', '1'])
        assert tool.os.environ['LOCAL_RANK'] == '3'
        monkeypatch.delenv('LOCAL_RANK')
        tool.parse_args(argv + ['--local-rank', '2'])
        assert tool.os.environ['LOCAL_RANK'] == '2'


def test_train_expands_a_resume_path_under_home(train, tmp_path, checkpoint,
                                                monkeypatch):
    """``--resume ~/iter_600.pth`` names the file under HOME, which
    exists: it is taken as given, not refused as missing."""
    monkeypatch.setenv('HOME', str(tmp_path))
    args = train.parse_args([CONFIG, '--resume', '~/iter_600.pth'])
    assert args.resume == '~/iter_600.pth'


class FakeRunner:
    """Stands for the runner: keeps the config it was built from, how it
    was built, and returns ``metrics`` from ``test()``."""
    built = []
    metrics = {}

    def __init__(self, cfg, how):
        self.cfg, self.how = cfg, how
        self.test_evaluator = type('Evaluator', (), {})()
        self.test_evaluator.metrics = []
        FakeRunner.built.append(self)

    @classmethod
    def from_cfg(cls, cfg):
        return cls(cfg, 'Runner.from_cfg')

    @classmethod
    def build(cls, cfg):
        return cls(cfg, 'RUNNERS.build')

    def train(self):
        pass

    def test(self):
        return FakeRunner.metrics


def run_main(tool, name, argv, monkeypatch):
    """``tool.main()`` for ``argv`` with the runner replaced: the last
    fake runner, whose ``cfg`` is what the tool would have run."""
    monkeypatch.setattr(tool, 'Runner', FakeRunner)
    monkeypatch.setattr(tool, 'RUNNERS', FakeRunner)
    monkeypatch.setattr(sys, 'argv', [f'{name}.py'] + list(argv))
    FakeRunner.built.clear()
    tool.main()
    [runner] = FakeRunner.built
    return runner


def test_train_options_set_what_the_runner_is_built_from(
        train, tmp_path, checkpoint, monkeypatch):
    """What each option of tools/train.py writes into the config. The demo
    config sets no work_dir, so it defaults to ./work_dirs/<config name
    without .py>; it names runner_type CheckedRunner, so the runner comes
    from the registry; its auto_scale_lr is dict(enable=False,
    base_batch_size=32) and its optimizer wrapper a plain OptimWrapper."""
    runner = run_main(train, 'train', [CONFIG], monkeypatch)
    cfg = runner.cfg
    assert runner.how == 'RUNNERS.build'
    assert cfg.work_dir == osp.join('./work_dirs', 'fast-yolo_digits')
    assert cfg.launcher == 'none' and not cfg.get('resume')
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert cfg.auto_scale_lr.enable is False

    cfg = run_main(train, 'train', [
        CONFIG, '--work-dir', str(tmp_path), '--amp', '--auto-scale-lr'],
        monkeypatch).cfg
    assert cfg.work_dir == str(tmp_path)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.auto_scale_lr == dict(enable=True, base_batch_size=32)
    # a config without the batch size the lr was tuned at, or with none
    # at all, cannot scale it: named, not a TypeError or RuntimeError
    for value in ('None', "dict(_delete_=True,enable=False)"):
        derived = tmp_path / 'no_scale.py'
        derived.write_text(f"_base_ = {CONFIG!r}\nauto_scale_lr = {value}\n")
        with pytest.raises(SystemExit, match='--auto-scale-lr: can not find '
                           r'.*auto_scale_lr.base_batch_size.* \(auto_scale_lr'
                           ' = '):
            run_main(train, 'train', [str(derived), '--auto-scale-lr'],
                     monkeypatch)

    # --resume alone resumes from the work dir's latest checkpoint, even
    # where the config names one to load; with a path, from that path
    load = ['--cfg-options', f'load_from={checkpoint}']
    cfg = run_main(train, 'train', [CONFIG, '--resume'] + load,
                   monkeypatch).cfg
    assert cfg.resume is True and cfg.load_from is None
    cfg = run_main(train, 'train', [CONFIG, '--resume', checkpoint],
                   monkeypatch).cfg
    assert cfg.resume is True and cfg.load_from == checkpoint


def test_test_options_set_what_the_runner_is_built_from(
        test, tmp_path, checkpoint, monkeypatch, capsys):
    """tools/test.py loads CHECKPOINT, paints into --show-dir (without
    --show too), appends a dump metric for a .pickle --out, and prints the
    runner's metrics rounded to 4 places: 0.123456 -> 0.1235."""
    FakeRunner.metrics = {'pascal_voc/mAP': 0.123456}
    shown = str(tmp_path / 'painted')
    out = str(tmp_path / 'results.pickle')
    runner = run_main(test, 'test', [
        CONFIG, checkpoint, '--show-dir', shown, '--out', out], monkeypatch)
    cfg = runner.cfg
    assert runner.how == 'RUNNERS.build'
    assert cfg.load_from == checkpoint
    assert cfg.default_hooks.visualization.draw is True
    assert cfg.default_hooks.visualization.test_out_dir == shown
    assert 'show' not in cfg.default_hooks.visualization
    [dump] = runner.test_evaluator.metrics
    assert dump.out_file_path == out
    assert "{'pascal_voc/mAP': 0.1235}" in capsys.readouterr().out


def test_printed_metrics_round_numbers_and_keep_other_values(test):
    """Numbers to 4 places (0.987654 -> 0.9877, an int 3 -> 3.0); a bool
    stays a bool (True, not 1.0), a list as it is."""
    printed = test.printable_metrics(
        {'mAP': 0.987654, 'n': 3, 'flag': True, 'aps': [0.5, 0.25]})
    assert printed == {'mAP': 0.9877, 'n': 3.0, 'flag': True,
                       'aps': [0.5, 0.25]}
    assert printed['flag'] is True and isinstance(printed['n'], float)


def test_a_bad_cfg_option_or_a_file_as_work_dir_is_named(
        train, test, tmp_path, checkpoint, capsys):
    """``--cfg-options`` items without ``=`` and a file given as the work
    dir are refused by the parser, naming them, instead of a ValueError
    from inside argparse or a FileExistsError when the runner is built; a
    well-formed item is parsed as mmengine parses it."""
    for tool, head in ((train, [CONFIG]), (test, [CONFIG, checkpoint])):
        err = refusal(tool.parse_args, head + [
            '--cfg-options', 'train_cfg.max_iters=5', 'foo', 'bar'], capsys)
        assert "argument --cfg-options: 'foo', 'bar' is not KEY=VALUE" in err
        args = tool.parse_args(head + ['--cfg-options',
                                       'train_cfg.max_iters=5', 'a=[1,2]'])
        assert args.cfg_options == {'train_cfg.max_iters': 5, 'a': [1, 2]}
        assert f'--work-dir {checkpoint} is a file' in refusal(
            tool.parse_args, head + ['--work-dir', checkpoint], capsys)
        assert tool.parse_args(
            head + ['--work-dir', str(tmp_path)]).work_dir == str(tmp_path)
