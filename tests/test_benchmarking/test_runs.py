# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The benchmark's pairing of seeds, run summaries and merged results."""
import json
import math
import os
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

import mmdet_slf  # noqa: F401
from mmdet_slf.benchmarking import (environment, figures, report, runs,
                                    tuning)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(REPO, 'configs/demo/benchmark')
TERMS = ['coord', 'pred', 'obj', 'noobj']


@pytest.fixture(scope='module')
def digits_root(tmp_path_factory):
    from mmdet_slf.demo_data import make_digits_voc
    root = str(tmp_path_factory.mktemp('digits') / 'VOCdevkit')
    make_digits_voc(root=root, num_trainval=24, num_test=4, subset='DIGITS',
                    digits_per_image=(1, 3), digit_size=(0.2, 0.38))
    return root + '/'


def strategy_cfg(key, data_root):
    cfg = Config.fromfile(runs.find_strategies(CONFIG_DIR)[key])
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.dataset.data_root = data_root
        loader.num_workers = 0
        loader.persistent_workers = False
    return cfg


def test_every_strategy_config_is_found_and_named():
    strategies = runs.find_strategies(CONFIG_DIR)
    assert 'fixed' in strategies and 'slf-joint' in strategies
    assert not any(key.startswith('_') for key in strategies)
    for key, path in strategies.items():
        cfg = Config.fromfile(path)
        assert runs.strategy_name(cfg, key) != '', key


def test_seed_gives_every_strategy_the_same_start_and_data_order(
        digits_root, tmp_path):
    """Seed s: identical initial detector weights and batches for two
    strategies; another seed: other weights and another order."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.runner import Runner, load_checkpoint
    register_all_modules()
    fixed = strategy_cfg('fixed', digits_root)
    slf = strategy_cfg('slf-joint', digits_root)

    def start(cfg, seed):
        path = runs.make_init_checkpoint(
            fixed, seed, runs.init_checkpoint_path(str(tmp_path), seed))
        run_cfg = runs.run_config(cfg, seed, str(tmp_path / 'w'), path)
        assert run_cfg.load_from == path and run_cfg.randomness.seed == seed
        # what the runner does: its own init, then load_from (non-strict)
        torch.manual_seed(1000 + seed)  # any other stream: must not matter
        model = MODELS.build(run_cfg.model)
        model.init_weights()
        load_checkpoint(model, run_cfg.load_from, map_location='cpu',
                        logger='silent')
        loader = Runner.build_dataloader(run_cfg.train_dataloader,
                                         seed=run_cfg.randomness.seed)
        order = list(iter(loader.sampler))
        return runs.detector_state(model), order

    fixed0, fixed_order0 = start(fixed, 0)
    slf0, slf_order0 = start(slf, 0)
    fixed1, fixed_order1 = start(fixed, 1)
    assert fixed0.keys() == slf0.keys()
    for key in fixed0:
        assert torch.equal(fixed0[key], slf0[key]), key
    assert fixed_order0 == slf_order0
    assert fixed_order0 != fixed_order1
    conv = [k for k in fixed0 if k.endswith('conv_out.weight')][0]
    assert not torch.equal(fixed0[conv], fixed1[conv])


def test_run_config_shrinks_the_schedule_with_the_budget(digits_root):
    cfg = strategy_cfg('fixed', digits_root)
    cfg.train_cfg.max_iters = 400
    cfg.train_cfg.val_interval = 100
    cfg.param_scheduler[0].end = 50
    cfg.param_scheduler[1].begin = 50
    cfg.param_scheduler[1].end = 400
    small = runs.run_config(cfg, 3, '/tmp/w', '/tmp/init.pth', max_iters=40)
    assert small.train_cfg.max_iters == 40
    assert small.train_cfg.val_interval == 10  # 100 of 400
    warmup, cosine = small.param_scheduler
    assert (warmup.begin, warmup.end) == (0, 5)  # 50 of 400
    assert (cosine.begin, cosine.end) == (5, 40)
    assert cfg.train_cfg.max_iters == 400  # the strategy's own is kept


def test_summarize_run_reads_curve_and_mean_weights():
    records = [
        dict(iter=50, step=50, loss=3.0, slf_w_coord=4.0, slf_w_pred=2.0,
             slf_w_obj=1.0, slf_w_noobj=0.5),
        dict(iter=100, step=100, loss=2.0, slf_w_coord=6.0, slf_w_pred=0.0,
             slf_w_obj=1.0, slf_w_noobj=0.5),
        {'pascal_voc/mAP': 0.4, 'step': 133},  # validated at iteration 133
        dict(iter=150, step=150, loss=1.0, slf_w_coord=5.0, slf_w_pred=1.0,
             slf_w_obj=1.0, slf_w_noobj=0.5),
        {'pascal_voc/mAP': 0.7, 'step': 160},
    ]
    summary = runs.summarize_run(records, TERMS)
    # by iteration: each validation at its own step, not at the training
    # record logged before it (100 and 150 with a logging interval of 50)
    assert summary['curve'] == [(133, 0.4), (160, 0.7)]
    assert summary['mAP'] == 0.7
    assert summary['mean_weights'] == pytest.approx(
        dict(coord=5.0, pred=1.0, obj=1.0, noobj=0.5))
    # by epoch, step counts epochs (1, 2): the last training iteration
    by_epoch = [dict(r, step=1) if 'pascal_voc/mAP' in r and r['step'] == 133
                else dict(r, step=2) if 'pascal_voc/mAP' in r else r
                for r in records]
    summary = runs.summarize_run(by_epoch, TERMS, metric_by_epoch=True)
    assert summary['curve'] == [(100, 0.4), (150, 0.7)]
    assert summary['mAP'] == 0.7


def test_benchmark_run_config_logs_validation_at_its_iteration():
    """tools/benchmark.py reads the curve by iteration for configs that log
    metrics by iteration, as every benchmark config does."""
    for key, path in runs.find_strategies(CONFIG_DIR).items():
        cfg = Config.fromfile(path)
        assert cfg.default_hooks.logger.log_metric_by_epoch is False, key


def test_weight_share_is_the_starved_terms_share_of_its_prior():
    prior = [5.0, 1.0, 1.0, 0.5]
    at_prior = dict(terms=TERMS, mean_weights=dict(
        coord=5.0, pred=1.0, obj=1.0, noobj=0.5))
    assert report.weight_share(at_prior, TERMS, prior) == pytest.approx(1.0)
    # pred at a tenth of its lambda, the total kept: share of pred
    # 0.1 / 7.5 against 1 / 7.5 before rescaling to the same total
    starved = dict(terms=TERMS, mean_weights=dict(
        coord=5.9, pred=0.1, obj=1.0, noobj=0.5))
    assert report.weight_share(starved, TERMS, prior) == pytest.approx(0.1)
    # terms are matched by name: a strategy listing them in another order
    # at the prior's weights keeps the prior's balance
    reordered = dict(terms=TERMS[::-1], mean_weights=at_prior['mean_weights'])
    assert report.weight_share(reordered, TERMS, prior) == pytest.approx(1.0)


def fake_result(work_dir, key, seed, value, name=None):
    result = dict(seed=seed, strategy=key, name=name or key, terms=TERMS,
                  prior=[5.0, 1.0, 1.0, 0.5], max_iters=400,
                  train_minutes=2.0, work_dir="", mAP=value,
                  curve=[[200, value - 0.1], [400, value]],
                  mean_weights={})
    runs.save_result(
        osp.join(runs.run_dir(work_dir, key, seed), runs.RESULT_FILE), result)


def test_results_saved_by_separate_calls_merge_into_one_table(tmp_path):
    work_dir = str(tmp_path)
    # first call: fixed on seeds 0-2; second call: famo on seeds 0-3
    for seed, value in enumerate([0.80, 0.82, 0.84]):
        fake_result(work_dir, 'fixed', seed, value, 'Fixed')
    for seed, value in enumerate([0.81, 0.84, 0.85, 0.9]):
        fake_result(work_dir, 'famo', seed, value, 'FAMO')
    merged = runs.load_results(work_dir)
    assert sorted(merged) == ['famo', 'fixed']
    assert sorted(merged['famo']) == [0, 1, 2, 3]
    assert runs.paired_seeds(merged, 'famo', 'fixed') == [0, 1, 2]
    rows = report.strategy_rows(merged, 'fixed')
    assert [row['key'] for row in rows] == ['fixed', 'famo']
    famo = rows[1]
    assert famo['n'] == 4  # its own summary uses all of its seeds
    # the paired difference uses only the seeds both have: +.01 +.02 +.01
    assert famo['paired']['n'] == 3
    assert famo['paired']['mean_diff'] == pytest.approx(0.04 / 3)
    table = report.table(rows)
    assert '| FAMO | 4 |' in table and 'reference' in table
    # the difference says it is over 3 of the 4 seeds: +.01 +.02 +.01 has
    # std 0.00577, t(2) 4.303: 0.0133 +- 0.0143
    assert '| +0.013 [-0.001, +0.028] (3 paired seeds) |' in table
    # A strategy with one seed gets no paired difference and is not called
    # the reference.
    fake_result(work_dir, 'dwa', 0, 0.7, 'DWA')
    rows = report.strategy_rows(runs.load_results(work_dir), 'fixed')
    dwa = next(row for row in rows if row['key'] == 'dwa')
    assert 'paired' not in dwa and not dwa['reference']
    line = next(line for line in report.table(rows).splitlines()
                if line.startswith('| DWA |'))
    assert '| n/a (< 2 seeds paired with Fixed) | - |' in line
    assert 'reference' not in line


def test_report_writes_the_page_from_saved_runs(tmp_path):
    work_dir = str(tmp_path / 'bench')
    for seed, value in enumerate([0.80, 0.82]):
        fake_result(work_dir, 'fixed', seed, value, 'Fixed')
    out = str(tmp_path / 'docs' / 'results.md')
    with pytest.raises(FileNotFoundError, match='no finished runs'):
        report.write_report(str(tmp_path / 'empty'), out, 'fixed', {})
    timing = dict(step_seconds=dict(fixed=0.2, famo=0.21),
                  fps=dict(fixed=100.0, famo=99.0),
                  date='2026-11-26', command='x', machine='m')
    with open(osp.join(work_dir, 'timing.json'), 'w') as f:
        json.dump(timing, f)
    text = report.write_report(work_dir, out, 'fixed', {})
    assert '| Fixed | 2 | 0.810 +- 0.014 |' in text
    # timed without a finished run: in the cost table only, as a ratio
    assert '| famo | 1.050 | 0.990 |' in text
    assert osp.exists(osp.join(tmp_path, 'docs', 'results', 'map.png'))
    # a second page keeps its own figures
    other = str(tmp_path / 'docs' / 'results-long.md')
    report.write_report(work_dir, other, 'fixed', {})
    assert osp.exists(osp.join(tmp_path, 'docs', 'results-long', 'map.png'))
    assert '](results-long/map.png)' in open(other).read()


def test_default_is_the_best_variant_that_starves_no_term(tmp_path):
    work_dir = str(tmp_path)
    for seed in range(5):
        fake_result(work_dir, 'fixed', seed, 0.80 + seed / 100, 'Fixed')
        # best mAP but starves a term: not eligible
        fake_result(work_dir, 'slf-a', seed, 0.90, 'A')
        fake_result(work_dir, 'slf-b', seed, 0.82 + seed / 100, 'B')
        fake_result(work_dir, 'slf-c', seed, 0.79, 'C')
        if seed < 3:  # better than B, but only 3 seeds: not eligible
            fake_result(work_dir, 'slf-d', seed, 0.85 + seed / 100, 'D')
    results = runs.load_results(work_dir)
    shares = {'slf-a': 0.1, 'slf-b': 0.6, 'slf-c': 0.9, 'slf-d': 0.9,
              'fixed': 1.0}
    rows = report.strategy_rows(results, 'fixed')
    for row in rows:
        row['min_share'] = shares[row['key']]
    assert report.choose_slf_default(rows)['key'] == 'slf-b'
    lines = report.verdict(results, rows, 'fixed')
    assert '**B**' in lines[0]
    # B - Fixed is +0.02 on every seed
    assert 'B minus Fixed: +0.0200' in lines[1]
    assert lines[2] == ('The tuned lambdas (`fixed-tuned`) are not on this '
                        'page, so target 2 is not assessed here.')
    # +0.02 on every seed: the gain and p < 0.05 of the target.
    assert lines[3].startswith('Target 1') and '**met**' in lines[3]
    # The tuned lambdas as the reference: one comparison, read for both
    # targets, and no line saying they are missing.
    lines = report.verdict(results, rows, 'fixed', tuned='fixed')
    assert not any('not on this page' in line for line in lines)
    assert sum(line.startswith('B minus Fixed') for line in lines) == 1
    assert lines[-1].startswith('Target 2') and '**met**' in lines[-1]


def test_verdict_states_a_missed_target_and_the_tuned_comparison(tmp_path):
    work_dir = str(tmp_path)
    gains = [0.004, 0.012, -0.003, 0.009, 0.001]  # mean +0.0046
    for seed, gain in enumerate(gains):
        fake_result(work_dir, 'fixed', seed, 0.80 + seed / 100, 'Fixed')
        fake_result(work_dir, 'fixed-tuned', seed, 0.81 + seed / 100,
                    'Tuned')
        fake_result(work_dir, 'slf-b', seed, 0.80 + seed / 100 + gain, 'B')
    results = runs.load_results(work_dir)
    rows = report.strategy_rows(results, 'fixed')
    for row in rows:
        row['min_share'] = 1.0
    lines = report.verdict(results, rows, 'fixed', search_runs=8,
                           search_iters=400)
    assert 'B minus Fixed: +0.0046' in lines[1]
    assert 'B minus Tuned: -0.0054' in lines[2]
    assert lines[3].startswith('Target 1') and '**missed**' in lines[3]
    # B - Tuned: mean -0.0054, std of the gains 0.0060, t(4) 2.776:
    # upper end -0.0054 + 2.776 * 0.0060 / sqrt(5) = +0.0021 >= 0.
    assert lines[4].startswith('Target 2') and '**met**' in lines[4]
    # searched at the runs' own 400 iterations: 8 * 400 + 400 = 9 runs
    assert 'cost 8 search runs of 400 iterations besides their own 400, ' \
        'so one SLF run of 400 is 1/9 of their training' in lines[4]
    # searched at 200: 8 * 200 + 400 = 2,000 iterations, 5 SLF runs
    assert 'one SLF run of 400 is 1/5 of their training' in report.verdict(
        results, rows, 'fixed', search_runs=8, search_iters=200)[4]
    assert 'of a length their config does not record' in report.verdict(
        results, rows, 'fixed', search_runs=8)[4]


def write_config(path, **keys):
    with open(path, 'w') as f:
        f.writelines(f'{key} = {value!r}\n' for key, value in keys.items())
    return str(path)


def test_variants_are_set_against_the_strategy_they_vary(tmp_path):
    work_dir = str(tmp_path / 'bench')
    # K=4 minus expected: -0.05, -0.03, -0.04 by seed; mean -0.04, std 0.01
    pairs = [(0.84, 0.79), (0.83, 0.80), (0.85, 0.81)]
    for seed, (expected, gumbel) in enumerate(pairs):
        fake_result(work_dir, 'fixed', seed, 0.85, 'Fixed')
        fake_result(work_dir, 'slf-e', seed, expected, 'E')
        fake_result(work_dir, 'slf-k4', seed, gumbel, 'K4')
    strategies = dict(
        fixed=write_config(tmp_path / 'fixed.py', strategy_name='Fixed'),
        **{'slf-e': write_config(tmp_path / 'e.py'),
           'slf-k4': write_config(tmp_path / 'k4.py', paired_with='slf-e')})
    out = str(tmp_path / 'docs' / 'results.md')
    text = report.write_report(work_dir, out, 'fixed', strategies)
    # t(2) 0.975-quantile 4.303: half width 4.303 * 0.01 / sqrt(3) = 0.0248;
    # t = -0.04 / (0.01 / sqrt(3)) = -6.93 with 2 dof: p = 0.0202
    assert '| K4 | E | 3 | -0.040 [-0.065, -0.015] | 0.020 |' in text
    # a page limited to the variant: its base has a config but is not on
    # the page, so there is no variant row, and no refusal
    text = report.write_report(work_dir, out, 'fixed', strategies,
                               keys=['slf-k4'])
    assert '| K4 | 3 |' in text and '## Variants' not in text
    strategies['slf-k4'] = write_config(tmp_path / 'k4.py',
                                        paired_with='slf-typo')
    with pytest.raises(ValueError, match="paired_with.*'slf-typo'"):
        report.write_report(work_dir, out, 'fixed', strategies)
    # a base that inherits its own variant's paired_with
    strategies['slf-k4'] = write_config(tmp_path / 'k4.py')
    strategies['slf-e'] = write_config(tmp_path / 'e.py', paired_with='slf-e')
    with pytest.raises(ValueError, match=r"paired_with of \['slf-e'\] names"):
        report.write_report(work_dir, out, 'fixed', strategies)


def test_benchmark_variant_configs_name_existing_strategies():
    strategies = runs.find_strategies(CONFIG_DIR)
    bases = {key: Config.fromfile(path).get('paired_with')
             for key, path in strategies.items()}
    assert bases['slf-progress-k16'] == 'slf-progress-expected'
    assert bases['slf-scale-free'] == 'slf-scale-free-expected'
    for key, base in bases.items():
        assert base is None or base in strategies and base != key, (key, base)


def test_page_covers_the_seeds_and_strategies_asked_for(tmp_path):
    work_dir = str(tmp_path / 'bench')
    # Fixed and B on seeds 0-6, C on 0-4: B - Fixed is +0.01 on seeds 0-4
    # and +0.03 on the confirmation seeds 5 and 6
    for seed in range(7):
        fake_result(work_dir, 'fixed', seed, 0.80, 'Fixed')
        fake_result(work_dir, 'slf-b', seed, 0.81 if seed < 5 else 0.83,
                    'B')
        if seed < 5:
            fake_result(work_dir, 'slf-c', seed, 0.70, 'C')
    results = runs.load_results(work_dir)
    first = runs.select_results(results, seeds=range(5))
    assert {key: sorted(r) for key, r in first.items()} == {
        key: [0, 1, 2, 3, 4] for key in ('fixed', 'slf-b', 'slf-c')}
    # the reference stays with the strategies asked for
    selected = runs.select_results(results, keys=['slf-c'],
                                   reference='fixed')
    assert sorted(selected) == ['fixed', 'slf-c']
    assert runs.select_results(results, seeds=[9]) == {}
    out = str(tmp_path / 'docs' / 'results.md')
    text = report.write_report(work_dir, out, 'fixed', {}, seeds=range(5))
    assert '| B | 5 | 0.810 +- 0.000 |' in text and '| C | 5 |' in text
    assert 'Only the strategies' not in text
    assert '--report-only --seeds 0 1 2 3 4`' in text
    text = report.write_report(work_dir, out, 'fixed', {}, keys=['slf-b'])
    # (5 * 0.01 + 2 * 0.03) / 7 over all seven seeds; C not on the page
    assert '| B | 7 | ' in text and '| C |' not in text
    assert '- Only the strategies `fixed`, `slf-b` are on this page' in text
    assert '| +0.016 [' in text
    # the page's command rebuilds this page, not one of every strategy
    assert '--report-only --strategies slf-b --seeds 0 1 2 3 4 5 6`' in text
    with pytest.raises(FileNotFoundError, match=r'seeds \[9\]'):
        report.write_report(work_dir, out, 'fixed', {}, seeds=[9])


def test_weight_figure_groups_baselines_then_slf_by_objective(tmp_path):
    configs = {
        'fixed': dict(type='FixedWeighting', weights=[5, 1, 1, 0.5]),
        'famo': dict(type='FAMOWeighting'),
        'slf-joint': dict(type='SLFWeighting', decision_objective='joint'),
        'slf-s': dict(type='SLFWeighting', decision_objective='scale_free'),
        'slf-s-k4': dict(type='SLFWeighting',
                         decision_objective='scale_free'),
    }
    configs = {key: Config(dict(model=dict(bbox_head=dict(weighting=w))))
               for key, w in configs.items()}
    rows = [dict(key=key) for key in
            ('fixed', 'slf-s', 'famo', 'slf-joint', 'slf-s-k4', 'other')]
    groups = figures.weight_groups(rows, configs)
    assert {name: [row['key'] for row in members]
            for name, members in groups.items()} == {
                'baselines': ['fixed', 'famo'],
                'SLF joint': ['slf-joint'],
                'SLF scale-free': ['slf-s', 'slf-s-k4'],
                'strategies': ['other']}
    assert list(groups)[0] == 'baselines'


@pytest.mark.parametrize('key,base,factor',
                         [('fixed-lr2x', 'fixed', 2),
                          ('fixed-lr4x', 'fixed', 4),
                          ('fixed-lr8x', 'fixed', 8),
                          ('fixed-lr16x', 'fixed', 16),
                          ('slf-scale-free-expected-lr2x',
                           'slf-scale-free-expected', 2),
                          ('slf-scale-free-expected-lr4x',
                           'slf-scale-free-expected', 4),
                          ('slf-scale-free-expected-lr8x',
                           'slf-scale-free-expected', 8)])
def test_learning_rate_controls_differ_only_in_step(key, base, factor):
    strategies = runs.find_strategies(CONFIG_DIR)
    fixed = Config.fromfile(strategies[base])
    control = Config.fromfile(strategies[key])
    assert control.optim_wrapper.optimizer.lr == pytest.approx(
        factor * fixed.optim_wrapper.optimizer.lr)

    # the rest of the optimizer (SLF's parameter groups) is the base's
    def rest(wrapper):
        return {k: v for k, v in wrapper.items() if k != 'optimizer'}

    assert rest(control.optim_wrapper) == rest(fixed.optim_wrapper)
    (warmup, cosine), (fixed_warmup, fixed_cosine) = (
        control.param_scheduler, fixed.param_scheduler)
    # warm-up factor and floor ratio are relative to the lr: unchanged
    assert warmup == fixed_warmup and cosine == fixed_cosine

    def floor(cfg):
        return cfg.optim_wrapper.optimizer.lr * cfg.param_scheduler[1][
            'eta_min_ratio']

    assert floor(control) == pytest.approx(factor * floor(fixed))
    assert control.model == fixed.model
    assert control.train_cfg == fixed.train_cfg
    assert control.train_dataloader == fixed.train_dataloader
    assert control.strategy_name.endswith(f'learning rate x{factor}')


@pytest.mark.parametrize('saved,split', [
    (dict(), 'test'),  # saved before runs recorded their split
    (dict(eval_split='val (300 of trainval, split seed 0)'),
     'val (300 of trainval, split seed 0)')])
def test_curve_title_names_the_reference_and_the_scored_images(
        tmp_path, monkeypatch, saved, split):
    from mmdet_slf import visualization
    titles = []
    monkeypatch.setattr(visualization, 'plot_map_curve',
                        lambda curves, out, title: titles.append(title))
    monkeypatch.setattr(visualization, 'plot_map_bars',
                        lambda *args, **kwargs: None)
    run = dict(name='Fixed, lr x8', curve=[[200, 0.5], [400, 0.8]],
               mAP=0.8, **saved)
    rows = [dict(key='fixed-lr8x', name='Fixed, lr x8', maps=[0.8],
                 seeds=[0])]
    figures.plots({'fixed-lr8x': {0: run}}, rows, 'fixed-lr8x',
                  str(tmp_path))
    assert titles == [f'Fixed, lr x8\nmAP during training on the {split} '
                      'images']


def test_environment_names_the_cpu_and_the_versions(monkeypatch):
    from importlib import metadata
    recorded = environment.environment()
    assert list(recorded) == ['cpu', 'threads',
                              *environment.ENVIRONMENT_PACKAGES]
    assert recorded['torch'] == metadata.version('torch')
    assert recorded['threads'] == str(torch.get_num_threads())
    assert recorded['cpu'].endswith(torch.backends.cpu.get_cpu_capability())
    monkeypatch.setattr(environment, 'ENVIRONMENT_PACKAGES',
                        ('torch', 'no-such-package-here'))
    assert environment.environment()['no-such-package-here'] is None


def test_the_page_says_whether_its_runs_share_one_environment():
    one = dict(cpu='EPYC, AVX2', threads='2', torch='2.13.0', numpy='2.4.6',
               mmcv=None)
    other = dict(one, numpy='2.5.5')

    def results(*envs):
        return {'fixed': {seed: ({} if env is None else
                                 dict(environment=env))
                          for seed, env in enumerate(envs)}}

    found = environment.environments(results(one, other, one, None))
    assert found == [one, other]
    note = environment.environment_note(results(one, one))
    assert note == ('- Environment: every recorded run was made on EPYC, '
                    'AVX2 (2 threads), torch 2.13.0, numpy 2.4.6.')
    note = environment.environment_note(results(one, other, None))
    assert 'the runs come from 2 environments' in note
    assert '(1) EPYC, AVX2 (2 threads), torch 2.13.0, numpy 2.4.6; (2) ' \
        'EPYC, AVX2 (2 threads), torch 2.13.0, numpy 2.5.5.' in note
    assert note.endswith('1 of the 3 runs were saved without a record of '
                         'their environment.')
    assert 'not recorded' in environment.environment_note(results(None, None))
    # Runs that read different demo sets are named, whatever else they share.
    mixed = results(one, one, one)
    for seed, data in enumerate(['b2', 'a1', 'b2']):
        mixed['fixed'][seed]['data'] = data
    assert environment.environment_note(mixed).endswith(
        'numpy 2.4.6. **The runs read 2 different demo sets** (fingerprints '
        'a1, b2).')
    mixed['fixed'][1]['data'] = 'b2'
    assert 'demo sets' not in environment.environment_note(mixed)


@pytest.mark.parametrize('reference,label', [('fixed', 'Fixed'),
                                             ('rlw', 'RLW')])
def test_cost_table_divides_by_the_reference_it_names(reference, label):
    timing = dict(step_seconds=dict(fixed=0.100, rlw=0.125),
                  fps=dict(fixed=200.0, rlw=160.0))
    text = report.cost_table(timing, reference,
                             dict(fixed='Fixed (5, 1, 1, 0.5)', rlw='RLW'))
    lines = text.splitlines()
    assert lines[0] == f'| Strategy | step time / {label} | FPS / {label} |'
    other = 'rlw' if reference == 'fixed' else 'fixed'
    step = timing['step_seconds'][other] / timing['step_seconds'][reference]
    fps = timing['fps'][other] / timing['fps'][reference]
    assert lines[2].endswith('| 1.000 | 1.000 |')
    assert lines[3].endswith(f'| {step:.3f} | {fps:.3f} |')
    assert lines[-1] == (f'{label}: {timing["step_seconds"][reference]:.3f} '
                         f's per training step, '
                         f'{timing["fps"][reference]:.1f} FPS at batch 1.')


def test_data_fingerprint_follows_the_images_and_boxes(digits_root,
                                                       tmp_path):
    import hashlib
    import shutil
    subset = osp.join(digits_root, 'DIGITS')
    copy = str(tmp_path / 'DIGITS')
    shutil.copytree(subset, copy)
    first = environment.data_fingerprint(subset)
    assert environment.data_fingerprint(copy) == first
    # An independent digest of the same files, in the same order.
    digest = hashlib.sha256()
    names = []
    for entry in environment.DATA_FILES:
        path = osp.join(copy, entry)
        names += ([osp.join(entry, n) for n in os.listdir(path)]
                  if osp.isdir(path) else [entry] if osp.isfile(path) else [])
    for name in sorted(names):
        digest.update(name.encode() + b'\0')
        with open(osp.join(copy, name), 'rb') as f:
            digest.update(f.read())
    assert first == digest.hexdigest()[:16]
    # A validation split's own lists do not change it ...
    tuning.write_validation_split(osp.join(copy, 'ImageSets/Main'), 5, 0)
    assert environment.data_fingerprint(copy) == first
    # ... one box moved by a pixel does.
    xml = osp.join(copy, 'Annotations', sorted(
        os.listdir(osp.join(copy, 'Annotations')))[0])
    with open(xml) as f:
        text = f.read()
    start = text.index('<xmin>') + len('<xmin>')
    end = text.index('</xmin>')
    with open(xml, 'w') as f:
        f.write(text[:start] + str(int(text[start:end]) + 1) + text[end:])
    assert environment.data_fingerprint(copy) != first
    with pytest.raises(FileNotFoundError, match='no VOC-format set'):
        environment.data_fingerprint(str(tmp_path / 'empty'))


def test_config_digest_follows_every_setting_and_no_order():
    """The digest changes with any one value, deep in a nested dict or in a
    base, and not with the order in which a file sets its keys."""
    first = Config(dict(a=1, model=dict(head=dict(weights=[5.0, 1.0]))))
    reordered = Config(dict(model=dict(head=dict(weights=[5.0, 1.0])), a=1))
    changed = Config(dict(a=1, model=dict(head=dict(weights=[5.0, 1.1]))))
    assert runs.config_digest(first) == runs.config_digest(reordered)
    assert runs.config_digest(first) != runs.config_digest(changed)
    assert len(runs.config_digest(first)) == 16
    strategies = runs.find_strategies(CONFIG_DIR)
    fixed = Config.fromfile(strategies['fixed'])
    assert runs.config_digest(fixed) == runs.config_digest(
        Config.fromfile(strategies['fixed']))
    fixed.train_cfg.max_iters += 1  # a value that comes from a base
    assert runs.config_digest(fixed) != runs.config_digest(
        Config.fromfile(strategies['fixed']))


def test_a_damaged_or_misplaced_result_is_named(tmp_path):
    work_dir = str(tmp_path)
    path = osp.join(runs.run_dir(work_dir, 'fixed', 1), runs.RESULT_FILE)
    runs.save_result(path, dict(seed=1, mAP=0.5))
    assert runs.load_results(work_dir) == {'fixed': {1: dict(seed=1,
                                                             mAP=0.5)}}
    with open(path, 'w') as f:
        f.write('{"seed": 1, "mAP": 0.')  # cut off while saving
    with pytest.raises(ValueError, match=f'{path} is not valid JSON'):
        runs.load_results(work_dir)
    runs.save_result(path, dict(seed=2, mAP=0.5))  # seed 2's, in seed1/
    with pytest.raises(ValueError, match=f"{path} records seed 2 but lies "
                       'in seed1'):
        runs.load_results(work_dir)


def test_cost_measures_every_strategy_from_the_same_start(digits_root,
                                                          tmp_path,
                                                          monkeypatch):
    """measure_cost hands the timers one training model and one inference
    model per strategy, all holding the seed's initial detector weights,
    the requested number of batches, and the interleaving settings."""
    from mmdet_slf.benchmarking.cost import measure_cost
    from mmdet_slf.utils import timing
    seen = {}

    def fake_steps(runs_, batches, rounds, calls_per_round, warmup):
        seen['train'] = (runs_, batches, rounds)
        return {key: 0.1 for key in runs_}

    def fake_fps(models, batches, rounds, calls_per_round, warmup):
        seen['test'] = (models, batches, rounds)
        return {key: 10.0 for key in models}

    monkeypatch.setattr(timing, 'train_step_seconds', fake_steps)
    monkeypatch.setattr(timing, 'inference_fps', fake_fps)
    fixed = strategy_cfg('fixed', digits_root)
    fixed.train_dataloader.batch_size = 4  # 24 images: 6 batches
    cfgs = {key: strategy_cfg(key, digits_root)
            for key in ('fixed', 'slf-scale-free-expected')}
    init_path = runs.make_init_checkpoint(
        fixed, 0, runs.init_checkpoint_path(str(tmp_path), 0))
    result = measure_cost(fixed, cfgs, init_path, 0, str(tmp_path / 'w'),
                          rounds=3, num_train_batches=2, num_test_images=3)
    assert result == dict(step_seconds={k: 0.1 for k in cfgs},
                          fps={k: 10.0 for k in cfgs})
    runs_, train_batches, rounds = seen['train']
    models, test_batches, test_rounds = seen['test']
    assert rounds == 3 and len(train_batches) == 2 and len(test_batches) == 3
    assert test_rounds == 3  # FPS interleaved over the same rounds
    assert all(len(batch['inputs']) == 4 for batch in train_batches)
    assert all(len(batch['inputs']) == 1 for batch in test_batches)
    start = torch.load(init_path, weights_only=True)['state_dict']
    for key in cfgs:
        for model in (runs_[key][0], models[key]):
            state = runs.detector_state(model)
            assert state.keys() == start.keys()
            for name, value in start.items():
                assert torch.equal(state[name], value), (key, name)


def test_initial_weights_are_a_function_of_the_seed_and_the_detector(
        tmp_path):
    """Two work dirs draw the same weights for seed 0 and others for seed
    1; a file drawn for another detector (a head with 3 boxes per cell) is
    refused, while a change of the weighting alone is not."""
    fixed = Config.fromfile(osp.join(CONFIG_DIR, 'fixed.py'))
    states = {}
    for name, seed in (('a', 0), ('b', 0), ('b', 1)):
        path = runs.make_init_checkpoint(
            fixed, seed, runs.init_checkpoint_path(str(tmp_path / name),
                                                   seed))
        states[name, seed] = torch.load(path, weights_only=True)[
            'state_dict']
    first, again, other = (states['a', 0], states['b', 0], states['b', 1])
    assert all(torch.equal(first[key], again[key]) for key in first)
    # the weights of seed 1 are those the runner draws for randomness.seed
    # 1: it seeds every stream (Runner.set_randomness), builds the model
    # and calls init_weights
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.runner import set_random_seed
    register_all_modules()
    set_random_seed(1)
    model = MODELS.build(fixed.model)
    model.init_weights()
    drawn = runs.detector_state(model)
    assert drawn.keys() == other.keys()
    assert all(torch.equal(drawn[key], other[key]) for key in drawn)
    assert not all(torch.equal(first[key], other[key]) for key in first
                   if first[key].is_floating_point())
    path = runs.init_checkpoint_path(str(tmp_path / 'a'), 0)
    slf = Config.fromfile(osp.join(CONFIG_DIR, 'slf-scale-free-expected.py'))
    assert runs.make_init_checkpoint(slf, 0, path) == path
    bigger = Config.fromfile(osp.join(CONFIG_DIR, 'fixed.py'))
    bigger.model.bbox_head.num_boxes = 3
    with pytest.raises(ValueError, match='initial weights of another '
                       'detector'):
        runs.make_init_checkpoint(bigger, 0, path)


def test_initial_weights_of_other_layers_are_refused(tmp_path):
    """The model's code changed and its config did not (same digest): a
    layer of another shape (fewer values, or as many arranged otherwise),
    a missing one or an extra one would be loaded non-strictly and stay
    random. Each is refused, naming the layer."""
    fixed = Config.fromfile(osp.join(CONFIG_DIR, 'fixed.py'))
    path = runs.make_init_checkpoint(
        fixed, 0, runs.init_checkpoint_path(str(tmp_path), 0))
    saved = torch.load(path, weights_only=True)
    name = next(key for key in saved['state_dict'] if key.endswith('weight'))
    original = saved['state_dict'][name]
    quoted = re.escape(repr([name]))
    for change, message in (
            (lambda state: state.update({name: original[:1]}),
             'other shapes ' + quoted),
            # as many values in another shape: still another layer
            (lambda state: state.update({name: original.reshape(1, -1)}),
             'other shapes ' + quoted),
            (lambda state: state.pop(name), 'missing ' + quoted),
            (lambda state: state.update(extra=original),
             'unexpected ' + re.escape("['extra']"))):
        state = dict(saved['state_dict'])
        change(state)
        torch.save(dict(saved, state_dict=state), path)
        with pytest.raises(ValueError, match=message):
            runs.make_init_checkpoint(fixed, 0, path)
    torch.save(saved, path)
    assert runs.make_init_checkpoint(fixed, 0, path) == path


def test_drawing_initial_weights_leaves_the_random_streams(tmp_path):
    """Drawing a seed's weights (and checking a saved file, which builds
    the model again) reseeds Python, numpy and torch inside; the caller's
    next draws are those it would have made without the call."""
    import random

    import numpy as np
    fixed = Config.fromfile(osp.join(CONFIG_DIR, 'fixed.py'))
    path = runs.init_checkpoint_path(str(tmp_path), 3)
    for _ in range(2):  # draw, then check the saved file
        random.seed(11), np.random.seed(11), torch.manual_seed(11)
        expected = (random.random(), np.random.rand(), torch.rand(1).item())
        random.seed(11), np.random.seed(11), torch.manual_seed(11)
        runs.make_init_checkpoint(fixed, 3, path)
        assert (random.random(), np.random.rand(),
                torch.rand(1).item()) == expected


def test_strategy_name_is_the_configs_or_else_the_key():
    """The page names a strategy by its config's ``strategy_name``; a
    config without one is named by its key (the file name)."""
    named = Config(dict(strategy_name='Fixed (5, 1, 1, 0.5)'))
    assert runs.strategy_name(named, 'fixed') == 'Fixed (5, 1, 1, 0.5)'
    assert runs.strategy_name(Config(dict(name='x')), 'slf-b') == 'slf-b'
    rlw = Config.fromfile(osp.join(CONFIG_DIR, 'rlw.py'))
    assert runs.strategy_name(rlw, 'rlw') == 'RLW'


def test_prior_weights_read_weights_prior_or_init_weights():
    """The lambdas a strategy starts from, as its config writes them: Fixed
    and the tuned lambdas set ``weights``, SLF its ``prior`` (Fixed's),
    FAMO and Uncertainty ``init_weights``; RLW sets none."""
    def prior(key):
        return report.prior_weights(
            Config.fromfile(osp.join(CONFIG_DIR, f'{key}.py')))

    assert prior('fixed') == [5.0, 1.0, 1.0, 0.5]
    assert prior('fixed-tuned') == [11.9, 3.14, 1.34, 0.945]
    assert prior('slf-scale-free-expected') == [5.0, 1.0, 1.0, 0.5]
    assert prior('famo') == [5.0, 1.0, 1.0, 0.5]
    assert prior('uncertainty') == [5.0, 1.0, 1.0, 0.5]
    assert prior('rlw') is None


def test_run_config_starts_fresh_and_keeps_the_schedule_in_the_budget():
    """A strategy config that would resume keeps to the seed's weights
    and starts at iteration 0. Shrunk from 400 to 40 iterations (a tenth):
    val_interval 4 -> 0.4 is kept at 1; a scheduler over 1-3 -> 0.1-0.3
    rounds to 0-0 and keeps one iteration (0-1); one that begins at 400
    and has no end begins at the last iteration, 39, and ends at 40; one
    without an end ends at the new budget, 40; a checkpoint is saved at
    the end (interval 40)."""
    cfg = Config(dict(
        train_cfg=dict(max_iters=400, val_interval=4),
        param_scheduler=[dict(begin=1, end=3), dict(begin=400),
                         dict(begin=0)],
        default_hooks=dict(checkpoint=dict(interval=100)),
        resume=True, load_from='work_dirs/old/iter_400.pth'))
    small = runs.run_config(cfg, 7, '/tmp/w', '/tmp/init/seed7.pth',
                            max_iters=40)
    assert small.resume is False
    assert small.load_from == '/tmp/init/seed7.pth'
    assert small.randomness == dict(seed=7) and small.work_dir == '/tmp/w'
    assert small.train_cfg.max_iters == 40
    assert small.train_cfg.val_interval == 1
    assert [(s.begin, s.end) for s in small.param_scheduler] == [
        (0, 1), (39, 40), (0, 40)]
    assert small.default_hooks.checkpoint.interval == 40
    # without max_iters the schedule is the strategy's own
    same = runs.run_config(cfg, 7, '/tmp/w', '/tmp/init/seed7.pth')
    assert same.resume is False and same.train_cfg.max_iters == 400
    assert same.default_hooks.checkpoint.interval == 100


def test_load_scalars_reads_the_newest_log(tmp_path):
    """A run started twice in its folder has two timestamped logs; the
    newer one (the later timestamp) is the run's."""
    for stamp, value in (('20260101_120000', 1.0),
                         ('20260102_080000', 2.0)):
        log = tmp_path / stamp / 'vis_data'
        log.mkdir(parents=True)
        (log / 'scalars.json').write_text(
            json.dumps(dict(iter=50, loss=value)) + '\n\n')
    assert runs.load_scalars(str(tmp_path)) == [dict(iter=50, loss=2.0)]
    assert runs.load_scalars(str(tmp_path / 'none')) == []


def test_summarize_run_keeps_the_last_map_and_the_logged_weights():
    """Logged by epoch: the curve takes the iteration of the training
    record before each validation, also when that record gives its
    iteration as ``step`` only (150). The final mAP is the last
    validation's (0.7), not the best (0.8). The mean weight is over the
    three records that logged weights (coord (4 + 6 + 5) / 3 = 5), not
    over the one at 100 that logged none. Without a validation the mAP
    is nan, never a number that could enter a table."""
    weights = ('coord', 'pred', 'obj', 'noobj')

    def train(weights_of_terms, **keys):
        return dict(loss=1.0, **keys, **{
            f'slf_w_{t}': w for t, w in zip(weights, weights_of_terms)})

    records = [
        train((4.0, 2.0, 1.0, 0.5), iter=50, step=50),
        dict(iter=100, step=100, loss=2.0),
        train((6.0, 0.0, 1.0, 0.5), step=150),
        {'pascal_voc/mAP': 0.8, 'step': 1},
        train((5.0, 1.0, 1.0, 0.5), iter=200, step=200),
        {'pascal_voc/mAP': 0.7, 'step': 2},
    ]
    summary = runs.summarize_run(records, TERMS, metric_by_epoch=True)
    assert summary['curve'] == [(150, 0.8), (200, 0.7)]
    assert summary['mAP'] == 0.7
    assert summary['mean_weights'] == pytest.approx(
        dict(coord=5.0, pred=1.0, obj=1.0, noobj=0.5))
    empty = runs.summarize_run(records[:3], TERMS)
    assert empty['curve'] == [] and math.isnan(empty['mAP'])


def test_detector_digest_leaves_out_a_weighting_inside_a_list():
    """The detector digest is the config digest of the model with every
    ``weighting`` key removed, also from dicts inside lists (a model with
    several heads): two weightings give one digest, another layer width
    another."""
    def model(weighting, width=64):
        return Config(dict(model=dict(type='Detector', heads=[
            dict(type='Head', width=width, weighting=weighting)])))

    stripped = Config(dict(model=dict(type='Detector', heads=[
        dict(type='Head', width=64)])))
    fixed = model(dict(type='FixedWeighting', weights=[5.0, 1.0]))
    assert runs.detector_digest(fixed) == runs.config_digest(stripped)
    assert runs.detector_digest(model(dict(type='FAMOWeighting'))) == \
        runs.detector_digest(fixed)
    assert runs.detector_digest(model(dict(type='FAMOWeighting'), 32)) != \
        runs.detector_digest(fixed)


def test_initial_weights_saved_before_the_digest_are_taken(tmp_path):
    """A file drawn before the detector digest was recorded (no ``meta``)
    is taken as it is, when its layers fit, and left unchanged."""
    fixed = Config.fromfile(osp.join(CONFIG_DIR, 'fixed.py'))
    path = runs.make_init_checkpoint(
        fixed, 0, runs.init_checkpoint_path(str(tmp_path), 0))
    state = torch.load(path, weights_only=True)['state_dict']
    torch.save(dict(state_dict=state), path)
    with open(path, 'rb') as f:
        before = f.read()
    assert runs.make_init_checkpoint(fixed, 0, path) == path
    with open(path, 'rb') as f:
        assert f.read() == before


def test_cost_is_measured_on_the_seeds_run_config(tmp_path, monkeypatch):
    """The data the timers use come from the run config of the seed asked
    for (seed 5: its sampler order) and the seed's initial weights."""
    from mmengine.runner import Runner

    from mmdet_slf.benchmarking.cost import measure_cost
    init_path = str(tmp_path / 'seed5.pth')
    torch.save(dict(state_dict={}), init_path)
    built = []

    class Built(Exception):
        pass

    def from_cfg(cfg):
        built.append(cfg)
        raise Built

    monkeypatch.setattr(Runner, 'from_cfg', from_cfg)
    fixed = Config.fromfile(osp.join(CONFIG_DIR, 'fixed.py'))
    with pytest.raises(Built):
        measure_cost(fixed, {}, init_path, 5, str(tmp_path / 'w'), rounds=2)
    assert built[0].randomness == dict(seed=5)
    assert built[0].load_from == init_path
    assert built[0].work_dir == str(tmp_path / 'w')


def test_page_quotes_every_seed_and_names_strategies_without_runs(
        tmp_path):
    """Fixed ran seeds 0-2 and B seeds 0-3: the page's commands quote all
    four seeds. C has a config and no run: the page names it. Limited to
    B with --strategies, the cost table still names the reference by its
    config's strategy_name; B's ratios are 0.25 / 0.2 = 1.25 and 80 / 100
    = 0.8."""
    work_dir = str(tmp_path / 'bench')
    for seed in range(4):
        if seed < 3:
            fake_result(work_dir, 'fixed', seed, 0.80, 'Fixed')
        fake_result(work_dir, 'slf-b', seed, 0.82, 'B')
    timing = dict(step_seconds={'fixed': 0.2, 'slf-b': 0.25},
                  fps={'fixed': 100.0, 'slf-b': 80.0},
                  date='2026-11-26', command='x', machine='m')
    with open(osp.join(work_dir, 'timing.json'), 'w') as f:
        json.dump(timing, f)
    strategies = {
        'fixed': write_config(tmp_path / 'fixed.py',
                              strategy_name='Fixed (5, 1, 1, 0.5)'),
        'slf-b': write_config(tmp_path / 'b.py', strategy_name='B'),
        'slf-c': write_config(tmp_path / 'c.py', strategy_name='C')}
    out = str(tmp_path / 'docs' / 'results.md')
    text = report.write_report(work_dir, out, 'fixed', strategies)
    assert '--report-only --seeds 0 1 2 3`' in text
    assert '--strategies <key> --seeds 0 1 2 3`' in text
    assert 'Strategies with a config but no finished run (not compared): ' \
        '`slf-c`.' in text
    text = report.write_report(work_dir, out, 'fixed', strategies,
                               keys=['slf-b'])
    assert '| Fixed (5, 1, 1, 0.5) | 1.000 | 1.000 |' in text
    assert '| B | 1.250 | 0.800 |' in text
    assert 'no finished run' not in text


def test_environment_reads_the_model_name_of_the_cpu(monkeypatch):
    """On x86 ``/proc/cpuinfo`` has a ``model`` line (a number) before
    ``model name``: the CPU is the latter's value, stripped, with the
    vector instruction set after it; without the file, the platform's
    name stands in."""
    import io
    import platform
    cpuinfo = ('processor\t: 0\nvendor_id\t: AuthenticAMD\n'
               'model\t\t: 1\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n'
               'flags\t\t: fpu sse\n')
    capability = torch.backends.cpu.get_cpu_capability()
    monkeypatch.setattr(environment, 'open',
                        lambda path: io.StringIO(cpuinfo), raising=False)
    assert environment.environment()['cpu'] == \
        f'AMD EPYC 7B13 64-Core Processor, {capability}'

    def missing(path):
        raise FileNotFoundError(path)

    monkeypatch.setattr(environment, 'open', missing, raising=False)
    monkeypatch.setattr(platform, 'processor', lambda: '')
    monkeypatch.setattr(platform, 'machine', lambda: 'aarch64')
    assert environment.environment()['cpu'] == f'aarch64, {capability}'


def test_data_fingerprint_by_hand_whatever_the_listing_order(
        tmp_path, monkeypatch):
    """A set of three files: the digest is SHA-256 over each path (sorted,
    NUL-terminated) and its bytes, so it does not depend on the order in
    which the folders are listed."""
    import hashlib
    files = {'Annotations/a.xml': b'<a/>', 'Annotations/b.xml': b'<b/>',
             'ImageSets/Main/trainval.txt': b'a\nb\n'}
    for name, data in files.items():
        os.makedirs(tmp_path / osp.dirname(name), exist_ok=True)
        (tmp_path / name).write_bytes(data)
    expected = hashlib.sha256(
        b'Annotations/a.xml\0<a/>' b'Annotations/b.xml\0<b/>'
        b'ImageSets/Main/trainval.txt\0a\nb\n').hexdigest()[:16]
    assert environment.data_fingerprint(str(tmp_path)) == expected
    listdir = os.listdir
    for order in (sorted, lambda names: sorted(names, reverse=True)):
        monkeypatch.setattr(environment.os, 'listdir',
                            lambda path: order(listdir(path)))
        assert environment.data_fingerprint(str(tmp_path)) == expected


def test_environment_note_counts_unrecorded_runs_and_names_demo_sets():
    """One recorded environment and one run saved without it: the note
    names the environment and says 1 of the 2 runs has none. With no
    environment recorded, runs on different demo sets are still named."""
    one = dict(cpu='EPYC, AVX2', threads='2', torch='2.13.0')
    results = {'fixed': {0: dict(environment=one), 1: {}}}
    assert environment.environment_note(results) == (
        '- Environment: every recorded run was made on EPYC, AVX2 '
        '(2 threads), torch 2.13.0. 1 of the 2 runs were saved without a '
        'record of their environment.')
    results = {'fixed': {0: dict(data='d4'), 1: dict(data='c3')}}
    assert environment.environment_note(results) == (
        '- Environment: not recorded (runs saved before results recorded '
        'it). **The runs read 2 different demo sets** (fingerprints c3, '
        'd4).')


def test_an_slf_config_without_an_objective_is_not_put_with_joint():
    """SLFWeighting's own default objective is ``scale_free``, so a config
    that names none must not land in the ``joint`` row."""
    configs = {
        'slf-joint': dict(type='SLFWeighting', decision_objective='joint'),
        'slf-plain': dict(type='SLFWeighting')}
    configs = {key: Config(dict(model=dict(bbox_head=dict(weighting=w))))
               for key, w in configs.items()}
    groups = figures.weight_groups(
        [dict(key='slf-joint'), dict(key='slf-plain')], configs)
    assert [row['key'] for row in groups['SLF joint']] == ['slf-joint']
    # it trains with the weighting's default objective, scale-free, and
    # shares that objective's row
    configs['slf-scale-free'] = Config(dict(model=dict(bbox_head=dict(
        weighting=dict(type='SLFWeighting',
                       decision_objective='scale_free')))))
    groups = figures.weight_groups(
        [dict(key='slf-plain'), dict(key='slf-scale-free')], configs)
    assert {name: [row['key'] for row in rows]
            for name, rows in groups.items()} == {
                'SLF scale-free': ['slf-plain', 'slf-scale-free']}


def capture_figures(monkeypatch):
    """The plotting functions replaced by ones that record their input."""
    from mmdet_slf import visualization
    drawn = {}
    monkeypatch.setattr(visualization, 'plot_map_bars',
                        lambda maps, out, title: drawn.update(bars=maps))
    monkeypatch.setattr(
        visualization, 'plot_weight_shares',
        lambda groups, prior, out: drawn.update(groups=groups, prior=prior))
    monkeypatch.setattr(
        visualization, 'plot_map_curve',
        lambda curves, out, title: drawn.update(curves=curves))
    return drawn


def test_figures_take_the_first_seed_its_weights_and_the_prior(
        tmp_path, monkeypatch):
    """The weight figure shows each strategy's first seed (3 in seeds
    [3, 1]), from its archived weights when it has them, against the
    reference's prior by term; the curves are mAP by step per seed."""
    drawn = capture_figures(monkeypatch)
    fixed = {seed: dict(terms=['coord', 'obj'], prior=[5.0, 0.5],
                        mean_weights={}, curve=[[200, 0.25], [400, 0.5]])
             for seed in (0, 1)}
    fixed[1]['curve'] = [[200, 0.375]]
    slf = {3: dict(mean_weights=dict(coord=4.0), weight_records='seed 3',
                   work_dir='logs 3'),
           1: dict(mean_weights=dict(coord=2.0), weight_records='seed 1'),
           5: dict(mean_weights=dict(coord=1.0), work_dir='logs 5')}
    rows = [dict(key='fixed', name='Fixed', maps=[0.5], seeds=[0, 1]),
            dict(key='slf', name='SLF', maps=[0.5], seeds=[3, 1]),
            dict(key='slf5', name='SLF 5', maps=[0.5], seeds=[5])]
    files = figures.plots(dict(fixed=fixed, slf=slf, slf5=dict(slf)), rows,
                          'fixed', str(tmp_path))
    assert sorted(files) == ['curve', 'map', 'weights']
    assert drawn['prior'] == dict(coord=5.0, obj=0.5)
    assert drawn['groups'] == dict(strategies={'SLF': 'seed 3',
                                               'SLF 5': 'logs 5'})
    assert drawn['curves'] == {
        'seed 0': [{'pascal_voc/mAP': 0.25, 'step': 200},
                   {'pascal_voc/mAP': 0.5, 'step': 400}],
        'seed 1': [{'pascal_voc/mAP': 0.375, 'step': 200}]}


def test_no_weight_figure_without_a_run_that_logged_weights(
        tmp_path, monkeypatch):
    """A prior but no run with mean weights: nothing to draw, so the
    page gets no weight figure (and the bars and curve still come)."""
    drawn = capture_figures(monkeypatch)
    run = dict(terms=['coord'], prior=[5.0], mean_weights={},
               curve=[[400, 0.5]])
    rows = [dict(key='fixed', name='Fixed', maps=[0.5], seeds=[0])]
    files = figures.plots(dict(fixed={0: run}), rows, 'fixed', str(tmp_path))
    assert sorted(files) == ['curve', 'map'] and 'groups' not in drawn
    assert drawn['bars'] == dict(Fixed=[0.5])
