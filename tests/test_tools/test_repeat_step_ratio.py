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
from conftest import REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import repeat_step_ratio  # noqa: E402


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
    assert (tmp_path / 'compare_2.json').is_file()


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
