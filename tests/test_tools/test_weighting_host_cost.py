# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""``tools/weighting_host_cost.py``: a weighting's host time per training
step, timed on its own. The timings are not asserted (they are noise on a
shared CPU); the steps, the operator counts and the inputs are."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT, refusal

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import weighting_host_cost  # noqa: E402


def build(argv):
    args = weighting_host_cost.parse_args(argv)
    weighting_host_cost.import_weightings()
    return weighting_host_cost.build_steps(args)


def test_each_variant_is_one_sgd_step_of_the_same_terms():
    steps = build(['--terms', 'cls', 'box'])
    start = torch.linspace(-1.0, 1.0, 2)
    # sum_i exp(p_i): gradient exp(p), plus weight decay 1e-4 p; the first
    # momentum buffer is the gradient itself, so p1 = p0 - lr * g.
    expected = start - 0.01 * (start.exp() + 1e-4 * start)
    assert steps['slf_graph'].weighting.cuda_graph
    for name in ('none', 'fixed', 'slf', 'slf_graph'):
        assert steps[name]() == 1
        # FixedWeighting's weights are 1; SLF's start at scale * prior =
        # 2 * 0.5 = 1 for two terms: the first step is the same for all
        torch.testing.assert_close(steps[name].param.detach(), expected)


def test_the_decision_network_trains_in_its_own_group():
    steps = build(['--terms', 'coord', 'pred', 'obj', 'noobj', '--images',
                   '3'])
    step = steps['slf']
    assert step.param.shape == (3, 4)
    groups = step.optimizer.param_groups
    assert len(groups) == 2 and groups[1]['weight_decay'] == 0.0
    assert {id(p) for p in groups[1]['params']} == {
        id(p) for p in step.weighting.parameters()}
    bias = step.weighting.decision_net.fc_out.bias
    before = bias.detach().clone()
    for _ in range(3):
        step()
    # the scale-free signal is 1 for every term on the first step (zero
    # gradient), and moves the decision network after it
    assert not torch.equal(bias.detach(), before)
    keys, values = step.weighting.diagnostic_vector
    assert 'slf_p_coord' in keys and torch.isfinite(values).all()


def test_operator_counts_are_exact(tmp_path):
    results = []
    for index in range(2):
        # a folder that does not exist yet is made
        out = tmp_path / 'new' / f'cost{index}.json'
        weighting_host_cost.main([
            '--rounds', '2', '--steps', '1', '--warmup', '0', '--out',
            str(out)
        ])
        results.append(json.loads(out.read_text()))
    first, second = results
    assert first['operators'] == second['operators']
    ops = first['operators']
    assert ops['none'] < ops['fixed'] < ops['slf']
    # off CUDA a cuda_graph=True call runs eagerly, operator for operator
    assert ops['slf_graph'] == ops['slf']
    for name in ('fixed', 'slf'):
        assert first['added'][name]['operators'] == ops[name] - ops['none']
        added = first['added'][name]
        assert added['ci_low'] <= added['us'] <= added['ci_high']
    assert first['rounds'] == 2 and first['device'] == 'cpu'


def test_runs_where_mmcv_has_no_compiled_ops(tmp_path):
    out = tmp_path / 'cost.json'
    code = (
        'import sys, runpy\n'
        "sys.modules['mmcv.ops'] = None  # as if mmcv had no compiled ops\n"
        f"sys.argv = ['x', '--rounds', '2', '--steps', '1', '--warmup', '0',"
        f" '--out', {str(out)!r}]\n"
        "runpy.run_path('tools/weighting_host_cost.py', run_name='__main__')\n"
        "print('mmdet models imported:', 'mmdet.models' in sys.modules)\n")
    result = subprocess.run([sys.executable, '-c', code], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'mmdet models imported: False' in result.stdout
    assert json.loads(out.read_text())['added']['slf']['operators'] > 0


@pytest.mark.parametrize('argv,message', [
    (['--rounds', '1'], '--rounds must be >= 2'),
    (['--steps', '0'], '--steps must be >= 1'),
    (['--slf-options', 'estimator'], 'takes KEY=VALUE'),
    (['--slf-options', '=1'], "takes KEY=VALUE, got '=1'"),
    (['--images', '-1'], '--warmup and --images must be >= 0, got 50 and -1'),
    (['--terms', 'cls', 'cls'], '--terms must be distinct, got cls cls'),
    (['--slf-options', 'terms=a'], "--slf-options terms: the tool sets "
     "type, terms, cuda_graph, in_channels itself (terms from --terms, "
     "cuda_graph per variant), got 'terms=a'"),
    # the steps pass no features: the decision network reads the terms
    (['--slf-options', 'in_channels=3'], "--slf-options in_channels: the "
     "tool sets"),
    (['--slf-options', 'type=X'], "--slf-options type: the tool sets"),
    (['--slf-options', 'cuda_graph=True'], "--slf-options cuda_graph: the "
     "tool sets"),
    (['--slf-options', 'estimator=nope'], '--slf-options: estimator'),
    (['--slf-options', 'num_samples=0'], '--slf-options: num_samples'),
    (['--slf-options', 'bogus=1'], "--slf-options: SLFWeighting.__init__() "
     "got an unexpected keyword argument 'bogus'"),
    # before anything is built on it (no machine has a 100th GPU)
    (['--device', 'nope'], "--device must be cpu, cuda or cuda:N, got "
     "'nope'"),
    (['--device', 'meta'], "got 'meta'"),
    (['--device', 'cuda:99'], '--device cuda:99: no such CUDA device here'),
])
def test_bad_arguments_are_refused(capsys, argv, message):
    assert message in refusal(weighting_host_cost.parse_args, argv, capsys)


def test_an_out_that_cannot_be_written_is_refused_before_timing(
        tmp_path, capsys):
    """The results are written after every round is timed: a folder as
    --out, or a path through a file, is refused by the parser (it ended
    the tool after the timing before)."""
    afile = tmp_path / 'a.json'
    afile.write_text('{}')
    for out, message in ((tmp_path, f'--out {tmp_path} is a folder'),
                         (afile / 'b.json',
                          f'--out {afile / "b.json"}: {afile} is a file')):
        assert message in refusal(weighting_host_cost.parse_args,
                                  ['--out', str(out)], capsys)


def test_only_the_graph_variant_captures_graphs():
    """``slf`` is the eager SLF every earlier measurement timed,
    ``slf_graph`` the same with captured graphs."""
    steps = build(['--slf-options', 'estimator=gumbel'])
    assert steps['slf'].weighting.cuda_graph is False
    assert steps['slf_graph'].weighting.cuda_graph is True
    for name in ('slf', 'slf_graph'):
        assert steps[name].weighting.estimator == 'gumbel'


def test_the_runner_reads_only_objective_terms_one_by_one(monkeypatch):
    """As under SLFLoggerHook, a weighting returns only the objective
    terms (keys with ``loss``), each read with ``.item()`` beside the
    total; its diagnostics go in the one copy of the diagnostic vector."""
    steps = build(['--terms', 'coord', 'pred', 'obj', 'noobj'])
    items = []
    item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, 'item',
                        lambda tensor: items.append(1) or item(tensor))
    for name in ('fixed', 'slf', 'slf_graph'):
        returned = []
        steps[name].weighting.register_forward_hook(
            lambda module, args, outputs: returned.append(list(outputs)))
        items.clear()
        steps[name]()
        assert all('loss' in key for key in returned[0]), returned
        assert len(items) == 1 + len(returned[0])


def test_every_variant_warms_up_then_runs_its_timed_steps(monkeypatch):
    """Stub steps counting their calls: --warmup untimed calls, --rounds
    x --steps timed ones, and the one call that counts the operators."""
    calls = {name: 0 for name in weighting_host_cost.VARIANTS}

    def counted(name):
        def step():
            calls[name] += 1
            return 1
        return step

    monkeypatch.setattr(
        weighting_host_cost, 'build_steps',
        lambda args: {name: counted(name) for name in calls})
    result = weighting_host_cost.main(['--rounds', '2', '--steps', '3',
                                       '--warmup', '4'])
    assert calls == dict.fromkeys(weighting_host_cost.VARIANTS, 4 + 6 + 1)
    assert result['warmup'] == 4 and result['rounds'] == 2
    assert result['steps_per_round'] == 3


def test_slf_options_reach_the_weighting():
    steps = build(['--slf-options', 'estimator=gumbel', 'num_samples=16',
                   'kl_weight=2.5'])
    weighting = steps['slf'].weighting
    assert weighting.estimator == 'gumbel'
    assert weighting.num_samples == 16 and weighting.kl_weight == 2.5


def test_added_time_is_the_variant_minus_no_weighting(monkeypatch):
    """With timings of known cost, 100 us per step without a weighting:
    each variant's added time, sign included, and its interval."""
    from mmdet_slf.utils import timing
    cost = dict(none=100.0, fixed=150.0, slf=400.0, slf_graph=250.0)
    jitter = [0.0, 4.0, -2.0, 1.0]  # the same in every variant's round

    def fake_timing(steps, **kwargs):
        return {name: timing.Timing(
            seconds=[(cost[name] + j) * 1e-6 * 10 for j in jitter],
            items=[10] * len(jitter)) for name in steps}

    monkeypatch.setattr(timing, 'interleaved_timing', fake_timing)
    result = weighting_host_cost.main(['--rounds', '4', '--steps', '10',
                                       '--warmup', '0'])
    assert result['step_us']['none'] == pytest.approx(100.75)
    for name in ('fixed', 'slf', 'slf_graph'):
        added = result['added'][name]
        # paired by round, the jitter cancels: a point interval
        assert added['us'] == pytest.approx(cost[name] - 100.0)
        assert added['ci_low'] == pytest.approx(added['us'])
        assert added['ci_high'] == pytest.approx(added['us'])


def test_each_step_reads_the_diagnostics_as_the_logger_does(monkeypatch):
    """Every weighted step copies its weighting's diagnostic vector to the
    host once, with ``tolist`` as ``SLFLoggerHook`` does: that copy is a
    host cost of training with a weighting, so the timed step pays it."""
    steps = build(['--terms', 'coord', 'pred', 'obj', 'noobj'])
    read = []
    tolist = torch.Tensor.tolist

    def counted(tensor):
        read.append(tensor)
        return tolist(tensor)

    monkeypatch.setattr(torch.Tensor, 'tolist', counted)
    for name in ('fixed', 'slf', 'slf_graph'):
        read.clear()
        steps[name]()
        _, values = steps[name].weighting.diagnostic_vector
        assert [tensor is values for tensor in read] == [True], name
        assert values.numel() > 0
    read.clear()
    steps['none']()
    assert read == []


def test_slf_option_values_are_typed():
    """A --slf-options value is an int, else a float, else True, False or
    None by name, else the string itself."""
    parse = weighting_host_cost.parse_value
    assert [parse(text) for text in ('16', '2.5', 'True', 'False', 'None',
                                     'gumbel')] == [16, 2.5, True, False,
                                                    None, 'gumbel']
    assert type(parse('16')) is int
