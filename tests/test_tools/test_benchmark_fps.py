# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""``tools/benchmark_fps.py``: the options it refuses, the FPS interval's
order, and what its main loop hands each model (run with stub models and
steps, so every call is counted)."""
import itertools
import json
import os.path as osp
import sys

import pytest
import torch
from conftest import REPO_ROOT, refusal

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import benchmark_fps  # noqa: E402

from mmdet_slf.utils.timing import Timing  # noqa: E402

CONFIG = osp.join(REPO_ROOT, 'configs', 'yolo_voc.py')
COMPARE = ['--compare', osp.join(REPO_ROOT, 'configs', 'yolo_slf_voc.py')]


@pytest.fixture(autouse=True)
def checkpoints(tmp_path, monkeypatch):
    """``a.pth`` and ``b.pth`` (and the stub configs ``a.py`` and
    ``b.py``) exist where the options name them."""
    monkeypatch.chdir(tmp_path)
    for name in ('a.pth', 'b.pth', 'a.py', 'b.py'):
        (tmp_path / name).write_bytes(b'')


@pytest.mark.parametrize('extra,message', [
    (['--threads', '0'], '--threads must be >= 1, got 0'),
    (['--threads', '-2'], '--threads must be >= 1, got -2'),
    (['--warmup', '0'], 'got 200, 0 and 0'),
    (COMPARE + ['--num-iters', '1'], '--compare needs --num-iters >= 2'),
    (['--dataset', '--shape', '64', '64'], '--shape sets the size of random'),
    (['--device', 'foo'], "--device must be cpu, cuda or cuda:N, got 'foo'"),
    (['--device', 'CPU'], "--device must be cpu, cuda or cuda:N, got 'CPU'"),
    (['--device', 'meta'], "got 'meta'"),
    (['--device', 'cuda'], '--device cuda: no such CUDA device here'),
    (['--device', 'cuda:1'], '--device cuda:1: no such CUDA device here'),
    (COMPARE + ['--compare-checkpoint', 'b.pth'],
     'got CHECKPOINT None and --compare-checkpoint b.pth'),
    (['--num-iters', '0'], 'got 0, 20 and 0'),
    (['--profile', '-1'], 'got 200, 20 and -1'),
    # the smaller side decides, whichever it is
    (['--shape', '448', '0'], '--shape H W must be >= 1 each'),
    # the random boxes are 16 pixels a side or more
    (['--train', '--shape', '15', '32'], 'got 15 32'),
    (['--train', '--fp16', '--device', 'cpu:0'], 'needs a GPU'),
])
def test_bad_options_are_refused_by_name(extra, message, capsys,
                                         monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 0)
    assert message in refusal(benchmark_fps.parse_args,
                              [CONFIG, '--device', 'cpu', *extra], capsys)


def test_a_checkpoint_for_the_first_model_only_is_refused(capsys):
    """Loaded weights against random ones: the message says which option
    to add."""
    message = refusal(benchmark_fps.parse_args,
                      [CONFIG, 'a.pth', '--device', 'cpu', *COMPARE], capsys)
    assert 'pass CHECKPOINT with --compare-checkpoint for the second model, '\
        'or CHECKPOINT with --same-weights' in message
    assert 'got CHECKPOINT a.pth and --compare-checkpoint None' in message


@pytest.mark.parametrize('argv,message', [
    (['nope.py'], 'config: config file nope.py does not exist'),
    ([CONFIG, '--compare', 'nope.py'],
     '--compare: config file nope.py does not exist'),
    ([CONFIG, 'c.pth'], 'checkpoint: checkpoint file c.pth does not exist'),
    ([CONFIG, 'a.pth', *COMPARE, '--compare-checkpoint', 'c.pth'],
     '--compare-checkpoint: checkpoint file c.pth does not exist'),
])
def test_missing_files_are_named(argv, message, capsys):
    assert message in refusal(benchmark_fps.parse_args,
                              [*argv, '--device', 'cpu'], capsys)


def test_a_cuda_index_past_the_visible_devices_is_refused(monkeypatch,
                                                          capsys):
    """Two visible devices are cuda:0 and cuda:1: cuda:2 is refused."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert '--device cuda:2: no such CUDA device here (2 visible)' in \
        refusal(benchmark_fps.parse_args, [CONFIG, '--device', 'cuda:2'],
                capsys)


def test_a_cuda_device_of_this_machine_passes(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    for device in ('cuda', 'cuda:1', 'cpu:0'):
        assert benchmark_fps.parse_args(
            [CONFIG, '--device', device]).device == device


@pytest.mark.parametrize('extra', [
    ['a.pth'],
    ['a.pth', *COMPARE, '--same-weights'],
    ['a.pth', *COMPARE, '--compare-checkpoint', 'b.pth'],
    [*COMPARE, '--num-iters', '2', '--warmup', '1', '--threads', '1'],
    ['--compare', 'mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py'],
    ['https://example.org/a.pth'],
])
def test_good_options_pass(extra):
    args = benchmark_fps.parse_args([CONFIG, *extra, '--device', 'cpu'])
    assert args.num_iters >= 2 and args.warmup >= 1


def test_fps_interval_is_the_time_interval_inverted_in_order():
    """Per-round time ratios 1.0 and 1.21 (second over first): the time
    interval is 1.1 ** (1 -+ t) with t = t(0.975, 1 dof) = 12.706205; the
    FPS ratio is its inverse, so its interval runs from 1 / the time's upper
    end to 1 / its lower end, 1.1 ** (-1 -+ t)."""
    first = Timing(seconds=[1.0, 1.0], items=[1, 1])
    second = Timing(seconds=[1.0, 1.21], items=[1, 1])
    out = benchmark_fps.two_model_ratios(dict(zip('01', (first, second))),
                                         train=False)
    t = 12.706205
    assert out['ratio_paired'] == pytest.approx(1 / 1.1)
    assert out['ratio_paired_ci'] == pytest.approx(
        [1.1**(-1 - t), 1.1**(-1 + t)], rel=1e-5)
    low, high = out['ratio_paired_ci']
    assert low < out['ratio_paired'] < high


def run_stubbed(monkeypatch, tmp_path, train, warmup=2, num_iters=3,
                extra=(), device='cpu', seen=None):
    """``benchmark_fps.main`` on models a.py and b.py whose steps log the
    batch they get; each config's stream yields ``<config>#<n>``. Returns
    the step calls, the synchronizer's calls (the number of step calls made
    by then) and the summary written; ``seen`` gets the arguments each step
    was made with, and the calls of the float32 post-processing and of the
    weight copy."""
    calls, syncs, devices = [], [], []
    seen = {} if seen is None else seen
    seen.update(step_args=[], float32=[], copied=[])

    def build_model(cfg, checkpoint, device, fuse, train=False):
        model = torch.nn.Linear(1, 1)
        model.name = cfg
        return model

    def stream(cfg):
        return (f'{cfg}#{n}' for n in itertools.count())

    def input_streams(cfgs, train, shape, batch_size, dataset):
        return [stream(cfg) for cfg in cfgs], 2 if train else 1

    def step_of(model, *args):
        seen['step_args'].append((model.name, *args))

        def step(batch):
            calls.append((model.name, batch))
            return 2 if train else 1  # the images in the batch
        return step

    def copy_shared_weights(source, target):
        seen['copied'].append((source.name, target.name))
        return 1

    def synchronizer(device):
        devices.append(device)
        return lambda: syncs.append(len(calls))

    monkeypatch.setattr(benchmark_fps, 'load_cfg', lambda path, opts: path)
    monkeypatch.setattr(benchmark_fps, 'build_model', build_model)
    monkeypatch.setattr(benchmark_fps, 'input_streams', input_streams)
    monkeypatch.setattr(benchmark_fps, 'training_step', step_of)
    monkeypatch.setattr(benchmark_fps, 'inference_step', step_of)
    monkeypatch.setattr(benchmark_fps, 'device_synchronizer', synchronizer)
    monkeypatch.setattr(benchmark_fps, 'copy_shared_weights',
                        copy_shared_weights)
    monkeypatch.setattr(
        benchmark_fps, 'float32_post_processing',
        lambda model, device: seen['float32'].append((model.name, device)))
    out = tmp_path / 'fps.json'
    benchmark_fps.main(['a.py', '--compare', 'b.py', '--device', device,
                        '--num-iters', str(num_iters), '--warmup',
                        str(warmup), '--out', str(out)] +
                       (['--train'] if train else []) + list(extra))
    assert devices == [torch.device(device)]
    return calls, syncs, json.loads(out.read_text())


@pytest.mark.parametrize('train', [False, True])
def test_each_model_gets_its_own_stream_warm_up_first(
        monkeypatch, tmp_path, train):
    """Two warm-up calls per model, then three timed rounds, the order
    rotating every round; each model draws only from its own config's
    stream, batch after batch; the device is synchronised before and after
    every timed slice and never during the warm-up."""
    calls, syncs, summary = run_stubbed(monkeypatch, tmp_path, train)
    order = ['a.py', 'b.py', 'b.py', 'a.py'] + \
        ['a.py', 'b.py', 'b.py', 'a.py', 'a.py', 'b.py']
    assert [name for name, _ in calls] == order
    for name in ('a.py', 'b.py'):
        assert [batch for model, batch in calls if model == name] == \
            [f'{name}#{n}' for n in range(5)]
    # 4 warm-up calls, then one call per slice: syncs at 4, 5 / 5, 6 / ...
    assert syncs == [n for call in range(4, 10) for n in (call, call + 1)]
    assert summary['warmup'] == 2 and summary['num_iters'] == 3
    assert [result['config'] for result in summary['results']] == \
        ['a.py', 'b.py']


def test_fp16_inference_post_processes_in_float32_on_the_device_type(
        monkeypatch, tmp_path):
    """``--fp16 --same-weights`` on ``cpu:0``: both models decode and
    suppress boxes in float32 on device type ``cpu`` (not ``cpu:0``), and
    the weights go from the first model into the second."""
    seen = {}
    run_stubbed(monkeypatch, tmp_path, False, device='cpu:0', seen=seen,
                extra=['--fp16', '--same-weights'])
    assert seen['float32'] == [('a.py', 'cpu'), ('b.py', 'cpu')]
    assert seen['copied'] == [('a.py', 'b.py')]


def test_fp16_training_leaves_post_processing_alone_and_passes_log_reads(
        monkeypatch, tmp_path):
    """``--train --fp16 --log-reads`` on a GPU: the training step is made
    with fp16 and the runner's reads for each model, and no inference
    post-processing is patched in; a step is one call on a batch of 2
    images, so its time is 2 x the time per image."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda device: 'GPU')
    seen = {}
    _, _, summary = run_stubbed(monkeypatch, tmp_path, True, device='cuda',
                                seen=seen, extra=['--fp16', '--log-reads'])
    assert seen['float32'] == []
    assert [(name, fp16, reads) for name, _, fp16, reads
            in seen['step_args']] == [('a.py', True, True),
                                      ('b.py', True, True)]
    assert summary['batch_size'] == 2 and summary['log_reads'] is True
    for result in summary['results']:
        assert result['step_ms'] == pytest.approx(2 * result['mean_ms'])


def test_an_out_that_cannot_be_written_is_refused_before_timing(
        tmp_path, capsys, monkeypatch):
    """A folder as --out, or a path through a file, is refused by the
    parser (it ended the tool after the timing before); a folder that does
    not exist yet is made when the results are written."""
    afile = tmp_path / 'a.json'
    afile.write_text('{}')
    for out, message in ((tmp_path, f'--out {tmp_path} is a folder'),
                         (afile / 'b' / 'c.json',
                          f'{afile} is a file, not a folder')):
        assert message in refusal(
            benchmark_fps.parse_args,
            [CONFIG, '--device', 'cpu', '--out', str(out)], capsys)
    out = tmp_path / 'new' / 'deeper' / 'fps.json'
    benchmark_fps.write_summary(dict(fps=1.5), str(out))
    assert json.loads(out.read_text()) == dict(fps=1.5)
