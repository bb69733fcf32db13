# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""``tools/repeat_step_ratio.py``: a step-time ratio over processes, with an
A/A control, and the verdict against a target."""
import json
import math
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import REPO_ROOT, refusal

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import repeat_step_ratio  # noqa: E402


@pytest.fixture(autouse=True)
def stub_configs(tmp_path_factory, monkeypatch):
    """The configs the tests name exist (the tool refuses missing ones);
    the runs themselves are stubbed."""
    here = tmp_path_factory.mktemp('configs')
    monkeypatch.chdir(here)
    for name in ('a.py', 'b.py', 'fixed.py', 'slf.py'):
        (here / name).write_text('')


@pytest.mark.parametrize('low,high,expected', [(0.99, 1.02, 'met'),
                                               (1.021, 1.03, 'missed'),
                                               (1.01, 1.03, 'neither')])
def test_verdict_against_the_target(low, high, expected):
    control = dict(ci_low=0.98, ci_high=1.01)
    summary = dict(ci_low=low, ci_high=high)
    assert repeat_step_ratio.verdict(summary, 1.02, control) == expected
    # a control that leaves out 1 makes any verdict void
    biased = dict(ci_low=1.005, ci_high=1.03)
    assert repeat_step_ratio.verdict(summary, 1.02, biased) == \
        'not decisive'


def test_verdict_at_its_boundaries():
    """``met`` is ``ci_high <= target``, ``missed`` is ``ci_low > target``
    (an interval that ends on the target is not beyond it), and a control
    interval that ends on 1 still holds 1."""
    control = dict(ci_low=0.99, ci_high=1.01)
    verdict = repeat_step_ratio.verdict
    assert verdict(dict(ci_low=1.0, ci_high=1.02), 1.02, control) == 'met'
    assert verdict(dict(ci_low=1.02, ci_high=1.03), 1.02,
                   control) == 'neither'
    assert verdict(dict(ci_low=1.0201, ci_high=1.03), 1.02,
                   control) == 'missed'
    for edge in (dict(ci_low=1.0, ci_high=1.01),
                 dict(ci_low=0.99, ci_high=1.0)):
        assert verdict(dict(ci_low=1.0, ci_high=1.02), 1.02, edge) == 'met'
    assert verdict(dict(ci_low=1.0, ci_high=1.02), 1.02,
                   dict(ci_low=0.98, ci_high=0.9999)) == 'not decisive'


def test_runs_alternate_and_are_summarised(tmp_path, monkeypatch):
    ratios = dict(compare=iter([1.05, 1.051, 1.049]),
                  control=iter([1.0, 0.999, 1.001]))
    calls = []

    def fake_run(command, capture_output, text):
        other = command[command.index('--compare') + 1]
        kind = 'compare' if other == 'slf.py' else 'control'
        calls.append(kind)
        out = command[command.index('--out') + 1]
        with open(out, 'w') as f:
            json.dump(dict(step_ratio_paired=next(ratios[kind])), f)
        assert command[-2:] == ['--threads', '2']  # passed through
        return SimpleNamespace(returncode=0, stderr='')

    monkeypatch.setattr(subprocess, 'run', fake_run)
    out = tmp_path / 'summary.json'
    result = repeat_step_ratio.main([
        'fixed.py', 'slf.py', '--processes', '3', '--out', str(out),
        '--threads', '2'
    ])
    assert calls == ['compare', 'control'] * 3
    saved = json.loads(out.read_text())
    assert saved['ratios'] == dict(compare=[1.05, 1.051, 1.049],
                                   control=[1.0, 0.999, 1.001])
    mean_log = sum(map(math.log, [1.05, 1.051, 1.049])) / 3
    assert saved['summary']['ratio'] == pytest.approx(math.exp(mean_log))
    assert saved['control']['ci_low'] < 1.0 < saved['control']['ci_high']
    assert saved['summary']['ci_low'] > 1.02
    assert saved['verdict'] == result['verdict'] == 'missed'
    assert (tmp_path / 'summary_compare_2.json').is_file()


def test_inference_times_test_step_and_inverts_the_fps_ratio(
        tmp_path, monkeypatch):
    """With --inference no process trains, and each FPS ratio (compare
    over config) becomes a time ratio: FPS 0.8 is time 1.25."""
    fps = dict(compare=iter([0.8, 1.25]), control=iter([1.0, 0.5]))
    commands = []

    def fake_run(command, capture_output, text):
        commands.append(command)
        other = command[command.index('--compare') + 1]
        kind = 'compare' if other == 'slf.py' else 'control'
        with open(command[command.index('--out') + 1], 'w') as f:
            json.dump(dict(ratio_paired=next(fps[kind])), f)
        return SimpleNamespace(returncode=0, stderr='')

    monkeypatch.setattr(subprocess, 'run', fake_run)
    out = tmp_path / 'summary.json'
    result = repeat_step_ratio.main([
        'fixed.py', 'slf.py', '--inference', '--processes', '2', '--out',
        str(out)
    ])
    assert all('--train' not in command for command in commands)
    assert all('--same-weights' in command for command in commands)
    assert result['mode'] == 'inference'
    assert result['ratios'] == dict(compare=[1.25, 0.8], control=[1.0, 2.0])
    # 1.25 and 0.8 have a geometric mean of exactly 1.
    assert result['summary']['ratio'] == pytest.approx(1.0)
    # A training run and an inference run are never pooled.
    trained = dict(result, mode='train', config='slf.py',
                   compare='fixed.py')
    with pytest.raises(ValueError, match='must time the same thing, got '
                       'inference and train'):
        repeat_step_ratio.combine(result, trained, 1.02)


def test_a_failed_run_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(
        subprocess, 'run',
        lambda command, capture_output, text: SimpleNamespace(
            returncode=1, stderr='KeyError: no such config'))
    with pytest.raises(RuntimeError, match='failed with code 1:\n.*KeyError'):
        repeat_step_ratio.main(
            ['a.py', 'b.py', '--out', str(tmp_path / 's.json')])


def test_one_process_is_not_enough(tmp_path):
    with pytest.raises(SystemExit):
        repeat_step_ratio.parse_args(
            ['a.py', 'b.py', '--processes', '1', '--out', 'x.json'])


def test_combine_pools_a_swapped_run_by_hand(tmp_path, capsys):
    """Run B timed fixed.py against slf.py; its ratios are inverted, so the
    pool is four SLF / Fixed ratios: 1.02, 1.03, 1/0.98, 1/0.97."""
    first = dict(config='fixed.py', compare='slf.py',
                 ratios=dict(compare=[1.02, 1.03], control=[1.0, 0.99]))
    second = dict(config='slf.py', compare='fixed.py',
                  ratios=dict(compare=[0.98, 0.97], control=[1.01, 1.0]))
    paths = []
    for name, run in (('a.json', first), ('b.json', second)):
        paths.append(str(tmp_path / name))
        with open(paths[-1], 'w') as f:
            json.dump(run, f)
    out = tmp_path / 'pooled.json'
    result = repeat_step_ratio.main(
        ['--combine', *paths, '--target', '1.02', '--out', str(out)])
    logs = [math.log(v) for v in (1.02, 1.03, 1 / 0.98, 1 / 0.97)]
    mean = sum(logs) / 4
    sd = math.sqrt(sum((v - mean)**2 for v in logs) / 3)
    half = 3.182446 * sd / 2  # t quantile, 3 dof
    assert result['summary']['ratio'] == pytest.approx(math.exp(mean))
    assert result['summary']['ci_low'] == pytest.approx(
        math.exp(mean - half), rel=1e-5)
    assert result['summary']['ci_high'] == pytest.approx(
        math.exp(mean + half), rel=1e-5)
    # The controls are pooled as the ratios are: run B's inverted.
    assert result['ratios']['control'] == pytest.approx(
        [1.0, 0.99, 1 / 1.01, 1.0])
    # ratio 1.0253, interval [1.0158, 1.0349]: it holds 1.02
    assert result['summary']['ci_low'] < 1.02 < result['summary']['ci_high']
    assert result['verdict'] == 'neither'
    assert json.loads(out.read_text())['verdict'] == 'neither'
    # The second slot ran 0.5% slow in run A, 0.5% fast in run B: half the
    # log difference of the controls is left in the pool.
    left = math.sqrt(math.sqrt(1.0 * 0.99) / math.sqrt(1.01 * 1.0))
    assert result['slot_bias_left']['ratio'] == pytest.approx(left)
    for key in ('ratio', 'ci_low', 'ci_high'):
        assert result['corrected'][key] == pytest.approx(
            result['summary'][key] / left)
    # The pooled control estimates that same factor.
    assert result['control']['ratio'] == pytest.approx(left)
    printed = capsys.readouterr().out
    assert 'ratio <= 1.02: neither' in printed
    assert f'slot bias left in the pool: {left:.4f}' in printed


def swapped_runs(ratio, bias_a, bias_b, noise=(0.997, 1.0, 1.003)):
    """Run A times SLF in the second slot (bias ``bias_a``), run B Fixed
    (``bias_b``); each ratio carries the slot's bias and a little noise."""
    first = dict(config='fixed.py', compare='slf.py', ratios=dict(
        compare=[ratio * bias_a * e for e in noise],
        control=[bias_a * e for e in noise]))
    second = dict(config='slf.py', compare='fixed.py', ratios=dict(
        compare=[bias_b / ratio * e for e in noise],
        control=[bias_b * e for e in noise]))
    return first, second


def test_the_control_gate_reads_the_bias_the_pool_keeps():
    """A slot bias the same in both runs cancels in the pool: the verdict
    stands. One that differs stays in the pooled ratio, sqrt(b_a / b_b),
    and the pooled control, which estimates it, voids the verdict (pooled
    without inverting run B's controls it would sit on 1 here, and leave
    out 1 in the first case)."""
    result = repeat_step_ratio.combine(*swapped_runs(1.0, 1.01, 1.01), 1.02)
    assert result['summary']['ratio'] == pytest.approx(1.0)
    assert result['verdict'] == 'met'
    result = repeat_step_ratio.combine(*swapped_runs(1.01, 1.012, 0.988),
                                       1.02)
    assert result['summary']['ratio'] == pytest.approx(
        1.01 * math.sqrt(1.012 / 0.988))
    assert result['control']['ci_low'] > 1.0
    assert result['verdict'] == 'not decisive'


def test_combine_refuses_runs_that_are_not_swapped():
    run = dict(config='fixed.py', compare='slf.py',
               ratios=dict(compare=[1.0, 1.0], control=[1.0, 1.0]))
    with pytest.raises(ValueError, match='must swap'):
        repeat_step_ratio.combine(run, run, 1.02)
    with pytest.raises(SystemExit):
        repeat_step_ratio.parse_args(['fixed.py', '--combine', 'a', 'b'])


def test_combine_refuses_runs_of_other_settings():
    """Only the order of the configs may differ: a run with another option
    passed through, or more iterations, is not pooled."""
    first = dict(config='fixed.py', compare='slf.py', mode='train',
                 device='cpu', num_iters=60, warmup=10,
                 passthrough=['--log-reads'],
                 ratios=dict(compare=[1.02, 1.03], control=[1.0, 0.99]))
    second = dict(first, config='slf.py', compare='fixed.py',
                  ratios=dict(compare=[0.98, 0.97], control=[1.01, 1.0]))
    assert repeat_step_ratio.combine(first, second, 1.02)['summary'][
        'n'] == 4
    for key, value in (('passthrough', []), ('num_iters', 200),
                       ('device', 'cuda'), ('warmup', 20)):
        with pytest.raises(ValueError, match=f"only in the order.*'{key}'"):
            repeat_step_ratio.combine(first, dict(second, **{key: value}),
                                      1.02)


def test_slot_bias_welch_p_by_hand():
    """Welch's t on the log control ratios, worked by hand: logs
    a = (0.00, 0.02, 0.04) and b = (-0.01, -0.03) have means 0.02 and
    -0.02, variances 4e-4 and 2e-4, so t = 0.04 / sqrt(4e-4/3 + 2e-4/2)
    = 2.6186 with Welch-Satterthwaite df = (7/3e-4)**2 / ((4e-4/3)**2 / 2
    + (1e-4)**2 / 1) = 2.8824; p = 2 * (1 - F_t(2.6186; 2.8824))."""
    from scipy.stats import t as t_dist
    first = [math.exp(v) for v in (0.0, 0.02, 0.04)]
    second = [math.exp(v) for v in (-0.01, -0.03)]
    left = repeat_step_ratio.slot_bias_left(first, second)
    var_a, var_b = 4e-4 / 3, 2e-4 / 2
    t = 0.04 / math.sqrt(var_a + var_b)
    df = (var_a + var_b)**2 / (var_a**2 / 2 + var_b**2 / 1)
    assert t == pytest.approx(2.6186, abs=1e-4)
    assert df == pytest.approx(2.8824, abs=1e-4)
    assert left['p'] == pytest.approx(2 * t_dist.sf(t, df), rel=1e-9)
    assert left['ratio'] == pytest.approx(math.exp(0.02))
    # a pooled-variance t-test gives another p here (3 dof, t = 2.4)
    assert abs(left["p"] - 2 * t_dist.sf(2.4, 3)) > 1e-3
    # one control per run leaves no variance to test
    assert math.isnan(repeat_step_ratio.slot_bias_left([1.0], [1.0])['p'])


@pytest.mark.parametrize('options', [['--inference'], ['--num-iters', '200'],
                                     ['--processes', '4'],
                                     ['--device', 'cuda'],
                                     ['--warmup', '5'],
                                     ['--threads=2']])
def test_combine_refuses_run_options(options, capsys):
    """The pooled runs' settings come from their summaries; an option that
    would only be ignored is refused, by name. That includes one meant for
    benchmark_fps.py (``--threads=2``, one word: a separate ``2`` would be
    taken for CONFIG and refused as such)."""
    with pytest.raises(SystemExit):
        repeat_step_ratio.parse_args(['--combine', 'a.json', 'b.json',
                                      *options])
    assert options[0] in capsys.readouterr().err


@pytest.mark.parametrize('options,name', [
    (['--target', '-1.02'], '--target'), (['--target', '0'], '--target'),
    (['--target', 'inf'], 'finite ratio > 0, got inf'),
    (['--num-iters', '0'], '--num-iters'), (['--warmup', '-1'], '--warmup'),
    (['--num-iters', '1'], 'got 1 and 10'), (['--warmup', '0'], 'got 60 and 0')
])
def test_bad_numbers_are_refused(options, name, capsys):
    with pytest.raises(SystemExit):
        repeat_step_ratio.parse_args(['a.py', 'b.py', '--out', 'x.json',
                                      *options])
    assert name in capsys.readouterr().err


def test_run_options_keep_their_defaults():
    args, _ = repeat_step_ratio.parse_args(['a.py', 'b.py', '--out', 'x'])
    assert (args.processes, args.num_iters, args.warmup, args.device) == \
        (6, 60, 10, 'cpu')


def test_combine_refuses_unequal_process_counts():
    """Both runs' second slot 2% slow, the true ratio 1: with six
    processes in each run the bias cancels exactly, pooled and in the
    slot-bias factor; with six against two the pool would weight run A's
    bias three times as much as run B's, so it is refused by count."""
    noise = (0.998, 1.0, 1.002) * 2
    first = dict(config='fixed.py', compare='slf.py', ratios=dict(
        compare=[1.02 * e for e in noise], control=[1.02 * e for e in noise]))
    second = dict(config='slf.py', compare='fixed.py', ratios=dict(
        compare=[1.02 * e for e in noise], control=[1.02 * e for e in noise]))
    result = repeat_step_ratio.combine(first, second, 1.02)
    assert result['summary']['ratio'] == pytest.approx(1.0)
    assert result['slot_bias_left']['ratio'] == pytest.approx(1.0)
    short = dict(second, ratios={kind: values[:2] for kind, values in
                                 second['ratios'].items()})
    with pytest.raises(ValueError, match=r'as many processes each.*'
                       r'got \(compare, control\) \(6, 6\) and \(2, 2\)'):
        repeat_step_ratio.combine(first, short, 1.02)
    uneven = dict(second, ratios=dict(second['ratios'],
                                      control=noise[:5]))
    with pytest.raises(ValueError, match=r'\(6, 6\) and \(6, 5\)'):
        repeat_step_ratio.combine(first, uneven, 1.02)


@pytest.mark.parametrize('train', ['--train', '--tr'])
def test_inference_refuses_a_passed_through_train(train, capsys):
    argv = ['a.py', 'b.py', '--out', 'x.json', '--threads', '2', train]
    with pytest.raises(SystemExit):
        repeat_step_ratio.parse_args(['--inference', *argv])
    assert f"contradicts it, got ['--threads', '2', '{train}']" in \
        capsys.readouterr().err
    # without --inference a --train passed through is what runs anyway
    assert repeat_step_ratio.parse_args(argv)[1] == ['--threads', '2', train]


def test_two_runs_in_one_folder_keep_their_process_files(
        tmp_path, monkeypatch):
    """Each process's JSON is named after the summary: a run written to
    b.json beside a.json leaves a.json's files as they were."""
    def fake_run(command, capture_output, text):
        with open(command[command.index('--out') + 1], 'w') as f:
            json.dump(dict(step_ratio_paired=run_ratio), f)
        return SimpleNamespace(returncode=0, stderr='')

    monkeypatch.setattr(subprocess, 'run', fake_run)
    for name, run_ratio in (('a', 1.25), ('b', 0.8)):
        repeat_step_ratio.main(['fixed.py', 'slf.py', '--processes', '2',
                                '--out', str(tmp_path / f'{name}.json')])
    for name, run_ratio in (('a', 1.25), ('b', 0.8)):
        for kind in ('compare', 'control'):
            for index in range(2):
                path = tmp_path / f'{name}_{kind}_{index}.json'
                assert json.loads(path.read_text()) == dict(
                    step_ratio_paired=run_ratio)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [f'{name}.json' for name in 'ab'] +
        [f'{name}_{kind}_{index}.json' for name in 'ab'
         for kind in ('compare', 'control') for index in range(2)])


def test_missing_configs_and_summaries_are_named(capsys):
    assert 'config file nope.py does not exist' in refusal(
        lambda argv: repeat_step_ratio.parse_args(argv),
        ['fixed.py', 'nope.py', '--out', 'x.json'], capsys)
    assert '--combine: summary b.json does not exist' in refusal(
        lambda argv: repeat_step_ratio.parse_args(argv),
        ['--combine', 'fixed.py', 'b.json'], capsys)


def test_combine_and_a_run_need_their_arguments(capsys):
    """--combine takes no config: a config given beside it is named
    (config, compare) = ('fixed.py', None), not looked up as a summary; a
    run without --out is refused before anything runs."""
    from conftest import refusal
    err = refusal(repeat_step_ratio.parse_args,
                  ['fixed.py', '--combine', 'a.json', 'b.json'], capsys)
    assert "no configs or run options" in err
    assert "got ('fixed.py', None) and []" in err
    err = refusal(repeat_step_ratio.parse_args, ['a.py', 'b.py'], capsys)
    assert 'CONFIG, COMPARE and --out are needed' in err


def test_run_options_reach_every_process(tmp_path, monkeypatch):
    """--device, --num-iters and --warmup are what each benchmark_fps.py
    process is started with, and what the summary records (combine
    compares those fields between runs)."""
    commands = []

    def fake_run(command, capture_output, text):
        commands.append(command)
        with open(command[command.index('--out') + 1], 'w') as f:
            json.dump(dict(step_ratio_paired=1.0), f)
        return SimpleNamespace(returncode=0, stderr='')

    monkeypatch.setattr(subprocess, 'run', fake_run)
    result = repeat_step_ratio.main([
        'fixed.py', 'slf.py', '--processes', '2', '--device', 'meta',
        '--num-iters', '7', '--warmup', '3', '--out',
        str(tmp_path / 's.json')
    ])
    assert len(commands) == 4
    for command in commands:
        start = command.index('--device')
        assert command[start:start + 6] == [
            '--device', 'meta', '--num-iters', '7', '--warmup', '3']
    assert (result['device'], result['num_iters'], result['warmup']) == \
        ('meta', 7, 3)


def test_combine_names_a_file_that_is_no_summary(tmp_path):
    """A file that is not JSON, or JSON without the summary's fields, is
    named; so is a pair that cannot be pooled (not swapped), as an exit
    with the tool's own message, not a traceback."""
    run = dict(config='fixed.py', compare='slf.py',
               ratios=dict(compare=[1.02, 1.03], control=[1.0, 0.99]))
    good = tmp_path / 'good.json'
    good.write_text(json.dumps(run))
    cases = (('{not json', 'is not JSON'), ('{}', 'is not a summary'),
             ('[1]', 'is not a summary'),
             (json.dumps(dict(run, ratios=dict(compare=[1.0]))),
              'is not a summary'))
    bad = tmp_path / 'bad.json'
    for text, why in cases:
        bad.write_text(text)
        with pytest.raises(SystemExit, match=f'--combine: {bad} {why}'):
            repeat_step_ratio.main(['--combine', str(good), str(bad)])
    with pytest.raises(SystemExit, match=f'--combine {good} {good}: the '
                       'second run must swap'):
        repeat_step_ratio.main(['--combine', str(good), str(good)])


def test_a_summary_that_cannot_be_written_is_refused_first(tmp_path,
                                                           capsys):
    """The summary is written after every process has run (or, with
    --combine, after the pooling): a folder as --out, or a path through a
    file, is refused by the parser in both modes. A folder that does not
    exist yet is made for the pooled summary."""
    afile = tmp_path / 'a.json'
    afile.write_text(json.dumps(dict(
        config='fixed.py', compare='slf.py',
        ratios=dict(compare=[1.02, 1.03], control=[1.0, 0.99]))))
    for mode in (['a.py', 'b.py'], ['--combine', str(afile), str(afile)]):
        for out, message in ((tmp_path, f'--out {tmp_path} is a folder'),
                             (afile / 's.json',
                              f'{afile} is a file, not a folder')):
            assert message in refusal(repeat_step_ratio.parse_args,
                                      mode + ['--out', str(out)], capsys)
    second = tmp_path / 'b.json'
    second.write_text(json.dumps(dict(
        config='slf.py', compare='fixed.py',
        ratios=dict(compare=[0.98, 0.97], control=[1.01, 1.0]))))
    out = tmp_path / 'new' / 'pooled.json'
    repeat_step_ratio.main(['--combine', str(afile), str(second), '--out',
                            str(out)])
    assert json.loads(out.read_text())['verdict'] == 'neither'
