# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""tools/benchmark.py --report-only: the page names the options that made
its runs, so its commands reproduce it."""
import os
import os.path as osp
import sys

import pytest
from conftest import REPO_ROOT, refusal
from mmengine.config import Config

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import benchmark  # noqa: E402

from mmdet_slf.benchmarking import report, runs, tuning, workdir  # noqa: E402


def fake_result(work_dir, seed, value, eval_split='test'):
    result = dict(seed=seed, strategy='fixed', name='Fixed',
                  eval_split=eval_split,
                  terms=['coord', 'pred', 'obj', 'noobj'],
                  prior=[5.0, 1.0, 1.0, 0.5], max_iters=1200,
                  train_minutes=3.0, work_dir='', mAP=value,
                  curve=[[1200, value]], mean_weights={})
    runs.save_result(
        osp.join(runs.run_dir(work_dir, 'fixed', seed), runs.RESULT_FILE),
        result)


def saved_fixed_run(work_dir):
    """Save Fixed's seed-0 run; its result file and what it holds."""
    fake_result(work_dir, 0, 0.85)
    path = osp.join(runs.run_dir(work_dir, 'fixed', 0), runs.RESULT_FILE)
    return path, runs.load_results(work_dir)['fixed'][0]


def test_report_of_another_budget_quotes_its_options(tmp_path):
    work_dir = str(tmp_path / 'bench-1200')
    for seed, value in enumerate([0.85, 0.86]):
        fake_result(work_dir, seed, value)
    out = str(tmp_path / 'results-1200.md')
    benchmark.main(['--report-only', '--max-iters', '1200', '--work-dir',
                    work_dir, '--out', out])
    text = open(out).read()
    options = (f' --max-iters 1200 --work-dir {work_dir} --out '
               f'{osp.relpath(out, REPO_ROOT)}')
    # without --seeds the page covers, and quotes, every saved seed
    assert f'--report-only --seeds 0 1{options}`' in text
    assert f'--strategies <key> --seeds 0 1{options}`' in text
    assert '- Budget: 1200 training iterations' in text
    assert osp.exists(str(tmp_path / 'results-1200' / 'map.png'))


def test_default_page_quotes_no_options():
    args = benchmark.parse_args(['--report-only'])
    assert benchmark.page_options(args) == ''


def test_page_of_another_reference_or_tuned_quotes_it():
    args = benchmark.parse_args(['--report-only', '--reference',
                                 'fixed-lr2x', '--max-iters', '1200'])
    assert benchmark.page_options(args) == \
        ' --reference fixed-lr2x --max-iters 1200'
    # the tuned lambdas target 2 is read against
    args = benchmark.parse_args(['--report-only', '--tuned',
                                 'fixed-tuned-1200'])
    assert benchmark.page_options(args) == ' --tuned fixed-tuned-1200'
    # strategies read from another folder of configs
    args = benchmark.parse_args(['--report-only', '--config-dir',
                                 osp.join(REPO_ROOT, 'configs/mine')])
    assert benchmark.page_options(args) == ' --config-dir configs/mine'


def test_validation_runs_train_on_train_and_are_scored_on_val(
        tmp_path, monkeypatch):
    """--num-val: every run's config reads train.txt and scores val.txt,
    and its result says so."""
    ann_dir = tmp_path / 'Main'
    ann_dir.mkdir()
    (ann_dir / 'trainval.txt').write_text(
        '\n'.join(f'{i:06d}' for i in range(20)) + '\n')
    split = tuning.write_validation_split(str(ann_dir), 5, seed=0)
    trained = []

    def fake_train(cfg, key, seed, args, digest):
        trained.append((key, seed, cfg.train_dataloader.dataset.ann_file,
                        cfg.val_dataloader.dataset.ann_file,
                        cfg.test_dataloader.dataset.ann_file))
        return dict(mAP=0.5, train_minutes=1.0)

    monkeypatch.setattr(benchmark, 'train_one', fake_train)
    args = benchmark.parse_args([
        '--strategies', 'fixed', 'fixed-lr2x', '--seeds', '3', '--num-val',
        '5', '--work-dir', str(tmp_path / 'val')])
    args.strategy_keys = args.strategies
    assert benchmark.evaluation_split(args) == \
        'val (5 of trainval, split seed 0)'
    benchmark.train_all(args, runs.find_strategies(benchmark.CONFIG_DIR),
                        split)
    train, val = (osp.abspath(path) for path in split)
    assert trained == [('fixed', 3, train, val, val),
                       ('fixed-lr2x', 3, train, val, val)]


def test_validation_and_test_runs_never_share_a_work_dir(tmp_path):
    with pytest.raises(SystemExit, match='own --work-dir'):
        benchmark.main(['--num-val', '300', '--strategies', 'fixed'])
    work_dir = str(tmp_path / 'bench')
    fake_result(work_dir, 0, 0.85)  # scored on test
    args = benchmark.parse_args(['--strategies', 'fixed', '--seeds', '1',
                                 '--num-val', '300', '--work-dir', work_dir])
    args.strategy_keys = args.strategies
    with pytest.raises(SystemExit, match=r'fixed seed 0 scored on test, not '
                       r'on val \(300 of trainval, split seed 0\)'):
        benchmark.train_all(args, runs.find_strategies(benchmark.CONFIG_DIR))
    # nor is a page of test runs labelled as validation mAP; the hint of a
    # report names the options that select the runs' split
    with pytest.raises(SystemExit, match='fixed seed 0 scored on test.*'
                       'pass the --num-val and --split-seed'):
        benchmark.main(['--report-only', '--num-val', '300', '--work-dir',
                        work_dir, '--out', str(tmp_path / 'page.md')])
    assert not osp.exists(str(tmp_path / 'page.md'))


@pytest.mark.parametrize('extra,message', [
    (['--max-iters', '0'], '--max-iters must be >= 1, got 0'),
    (['--max-iters', '-5'], '--max-iters must be >= 1, got -5'),
    (['--num-val', '0'], '--num-val must be >= 1, got 0'),
    (['--timing', '--timing-rounds', '1'], '--timing-rounds must be >= 2'),
    (['--report-only', '--no-report'], 'would do nothing'),
    (['--archive', 'runs.json'], '--archive only feeds --report-only'),
    (['--report-only', '--archive', 'a.json', 'b.json', './a.json'],
     "--archive names a file more than once: ['a.json', 'b.json', "
     "'./a.json']"),
    (['--seeds', '0', '1', '0'], '--seeds lists [0] more than once'),
    (['--strategies', 'dwa', 'fixed', 'dwa'],
     "--strategies lists ['dwa'] more than once"),
    (['--split-seed', '-1'], '--split-seed must be in [0, 2**32)'),
    (['--seeds', '0', '-3'], '--seeds must be >= 0, got [-3]'),
    (['--report-only', '--timing', '--archive', 'a.json'],
     '--timing measures into --work-dir'),
    # its figures would go to a folder of the page's own name
    (['--report-only', '--out', 'docs/page'],
     "--out must end in an extension, such as .md"),
])
def test_bad_arguments_are_refused(extra, message, capsys):
    assert message in refusal(benchmark.parse_args, extra, capsys)


def test_runs_of_another_budget_are_not_taken_as_done(tmp_path,
                                                      monkeypatch):
    """A saved run of 1200 iterations is not skipped, and paired, by a call
    that trains the strategy's own budget."""
    work_dir = str(tmp_path / 'bench-1200')
    fake_result(work_dir, 0, 0.85)  # fixed, 1200 iterations
    trained = []
    monkeypatch.setattr(
        benchmark, 'train_one', lambda cfg, key, seed, args, *_:
        trained.append((key, seed, args.max_iters)) or dict(
            mAP=0.5, train_minutes=1.0))
    strategies = runs.find_strategies(benchmark.CONFIG_DIR)
    own = Config.fromfile(strategies['fixed']).train_cfg.max_iters
    assert own != 1200
    args = benchmark.parse_args(['--strategies', 'fixed', 'dwa', '--seeds',
                                 '0', '--work-dir', work_dir])
    args.strategy_keys = args.strategies
    with pytest.raises(SystemExit, match=f'fixed seed 0 trained for 1200 '
                       f'iterations, not {own}'):
        benchmark.train_all(args, strategies)
    assert trained == []
    # the budget of the saved runs: only the missing run is trained
    args = benchmark.parse_args(['--strategies', 'fixed', 'dwa', '--seeds',
                                 '0', '--max-iters', '1200', '--work-dir',
                                 work_dir])
    args.strategy_keys = args.strategies
    benchmark.train_all(args, strategies)
    assert trained == [('dwa', 0, 1200)]


def test_runs_on_another_demo_set_are_not_taken_as_done(tmp_path,
                                                        monkeypatch):
    """A saved run whose fingerprint differs from the set on disk is
    refused; one saved before fingerprints were recorded is taken."""
    work_dir = str(tmp_path / 'bench')
    path, saved = saved_fixed_run(work_dir)
    trained = []
    monkeypatch.setattr(
        benchmark, 'train_one', lambda cfg, key, seed, args, *_:
        trained.append((key, seed)) or dict(mAP=0.5, train_minutes=1.0))
    read = []
    monkeypatch.setattr(workdir, 'data_fingerprint',
                        lambda root: read.append(root) or 'new')
    strategies = runs.find_strategies(benchmark.CONFIG_DIR)
    args = benchmark.parse_args(['--strategies', 'fixed', 'dwa', '--seeds',
                                 '0', '--max-iters', '1200', '--work-dir',
                                 work_dir])
    args.strategy_keys = args.strategies
    # no fingerprint saved: nothing says the set differs, nothing is read
    benchmark.train_all(args, strategies)
    assert trained == [('dwa', 0)]
    assert read == []
    runs.save_result(path, dict(saved, data='old'))
    trained.clear()
    args.strategy_keys = ['fixed', 'rlw']
    with pytest.raises(SystemExit, match='fixed seed 0 trained on the demo '
                       'set with fingerprint old, but the set on disk has '
                       'new'):
        benchmark.train_all(args, strategies)
    assert trained == []
    assert read == [workdir.dataset_dir(
        benchmark.load_strategy(strategies['fixed']))]


def test_validation_page_names_its_images_and_options(tmp_path):
    work_dir = str(tmp_path / 'val')
    for seed, value in enumerate([0.85, 0.86]):
        fake_result(work_dir, seed, value,
                    eval_split='val (300 of trainval, split seed 2)')
    out = str(tmp_path / 'val.md')
    benchmark.main(['--report-only', '--num-val', '300', '--split-seed', '2',
                    '--max-iters', '1200', '--work-dir', work_dir, '--out',
                    out])
    text = open(out).read()
    assert ('--seeds 0 1 --max-iters 1200 --num-val 300 --split-seed 2 '
            '--work-dir') in text
    assert ('on the 300 validation images held out of the demo trainval '
            'set (split seed 2;') in text
    assert report.TEST_IMAGES not in text


def test_page_against_another_reference_names_it(tmp_path):
    work_dir = str(tmp_path / 'bench')
    for seed, (fixed, control) in enumerate([(0.80, 0.83), (0.82, 0.84),
                                             (0.81, 0.85)]):
        fake_result(work_dir, seed, fixed)
        result = runs.load_results(work_dir)['fixed'][seed]
        result.update(strategy='fixed-lr2x', name='Fixed, lr x2',
                      mAP=control)
        runs.save_result(
            osp.join(runs.run_dir(work_dir, 'fixed-lr2x', seed),
                     runs.RESULT_FILE), result)
    out = str(tmp_path / 'page.md')
    benchmark.main(['--report-only', '--reference', 'fixed-lr2x',
                    '--max-iters', '1200', '--work-dir', work_dir, '--out',
                    out])
    text = open(out).read()
    assert '| vs Fixed, lr x2: mean diff [95% CI] |' in text
    assert 'the difference to Fixed, lr x2 is taken seed by seed' in text
    # Fixed minus the control: -0.03, -0.02, -0.04 (mean -0.03, sd 0.01,
    # t-interval -0.03 +- 4.303 * 0.01 / sqrt(3))
    assert '| -0.030 [-0.055, -0.005] |' in text
    assert '--report-only --seeds 0 1 2 --reference fixed-lr2x' in text


def test_a_page_is_refused_when_its_commands_would_give_another_budget(
        tmp_path):
    """Runs of 1,200 iterations: a page written without --max-iters, or
    with another, would quote commands that train another budget."""
    work_dir = str(tmp_path / 'bench-1200')
    fake_result(work_dir, 0, 0.85)
    out = str(tmp_path / 'page.md')
    for extra in ([], ['--max-iters', '800']):
        with pytest.raises(SystemExit, match='fixed seed 0 trained for 1200 '
                           'iterations, not'):
            benchmark.main(['--report-only', '--work-dir', work_dir, '--out',
                            out] + extra)
    assert not osp.exists(out)


def test_an_unknown_tuned_strategy_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="--tuned 'fixed-tunde' has no "
                       'config in'):
        benchmark.main(['--report-only', '--tuned', 'fixed-tunde',
                        '--work-dir', str(tmp_path), '--out',
                        str(tmp_path / 'page.md')])


def test_page_from_an_archive_quotes_the_work_dir_its_runs_were_made_in(
        tmp_path):
    work_dir = str(tmp_path / 'bench-1200')
    for seed, value in enumerate([0.85, 0.86]):
        fake_result(work_dir, seed, value)
    out = str(tmp_path / 'results-1200.md')
    argv = ['--report-only', '--max-iters', '1200', '--out', out]
    benchmark.main(argv + ['--work-dir', work_dir])
    text = open(out).read()
    kept = str(tmp_path / 'results-1200' / 'runs.json')
    os.rename(work_dir, str(tmp_path / 'moved'))
    os.remove(out)
    # the page names the work dir recorded in the archive, not --work-dir's
    # default, so it is the page written from the work dir
    benchmark.main(argv + ['--archive', kept])
    assert open(out).read() == text
    # the archive's runs meet the same checks as a work dir's: test runs
    # are not written up as validation runs
    with pytest.raises(SystemExit, match='fixed seed 0 scored on test'):
        benchmark.main(argv + ['--archive', kept, '--num-val', '300'])


def test_page_from_two_archives_names_their_work_dirs_and_checks_them(
        tmp_path):
    """Fixed's seed 0 kept by two pages and seed 1 by one of them: one page
    of both seeds, quoting the work dirs and the archives it came from, with
    no --work-dir; a second archive whose seed 0 is another run is
    refused by name."""
    archives = []
    for name, values in (('a', [0.85, 0.86]), ('b', [0.85])):
        work_dir = str(tmp_path / f'bench-{name}')
        for seed, value in enumerate(values):
            fake_result(work_dir, seed, value)
        benchmark.main(['--report-only', '--max-iters', '1200', '--work-dir',
                        work_dir, '--out', str(tmp_path / f'{name}.md')])
        archives.append(str(tmp_path / name / 'runs.json'))
    out = str(tmp_path / 'both.md')
    argv = ['--report-only', '--max-iters', '1200', '--out', out]
    benchmark.main(argv + ['--archive'] + archives)
    text = open(out).read()
    assert (f'runs of several work dirs, `{tmp_path}/bench-a`, '
            f'`{tmp_path}/bench-b`, read from `{archives[0]}`, '
            f'`{archives[1]}`') in text
    assert '--seeds 0 1 --max-iters 1200 --out' in text
    assert '--work-dir <its work dir>' in text and '--work-dir /' not in text
    assert '| Fixed | 2 | 0.855 +- 0.007 |' in text  # (0.85 + 0.86) / 2
    other = str(tmp_path / 'bench-c')
    fake_result(other, 0, 0.84)
    benchmark.main(['--report-only', '--max-iters', '1200', '--work-dir',
                    other, '--out', str(tmp_path / 'c.md')])
    with pytest.raises(SystemExit, match='--archive: fixed seed 0 is in .*a/'
                       'runs.json and in .*c/runs.json with another mAP, '
                       'curve'):
        benchmark.main(argv + ['--archive', archives[0],
                               str(tmp_path / 'c' / 'runs.json')])


def test_runs_of_a_changed_config_are_not_taken_as_done(tmp_path,
                                                        monkeypatch,
                                                        capsys):
    """A run saved with the digest of its config is skipped while the config
    is unchanged, and refused once the config changed (new lambdas written
    into fixed-tuned.py, say), naming both digests; a run saved before
    digests were recorded is taken and named as unchecked."""
    work_dir = str(tmp_path / 'bench')
    path, saved = saved_fixed_run(work_dir)
    trained = []
    monkeypatch.setattr(
        benchmark, 'train_one', lambda cfg, key, seed, args, digest:
        trained.append((key, seed, digest)) or dict(mAP=0.5,
                                                    train_minutes=1.0))
    strategies = runs.find_strategies(benchmark.CONFIG_DIR)
    digests = {key: runs.config_digest(benchmark.load_strategy(path))
               for key, path in strategies.items()}
    args = benchmark.parse_args(['--strategies', 'fixed', 'dwa', '--seeds',
                                 '0', '--max-iters', '1200', '--work-dir',
                                 work_dir])
    args.strategy_keys = args.strategies
    benchmark.train_all(args, strategies)
    assert trained == [('dwa', 0, digests['dwa'])]
    assert 'not checked against the configs on disk: fixed seed 0' in \
        capsys.readouterr().out
    runs.save_result(path, dict(saved, config_digest=digests['fixed']))
    trained.clear()
    benchmark.train_all(args, strategies)
    assert trained == [('dwa', 0, digests['dwa'])]
    assert 'not checked' not in capsys.readouterr().out
    runs.save_result(path, dict(saved, config_digest='0123456789abcdef'))
    trained.clear()
    with pytest.raises(SystemExit, match='fixed seed 0 trained from a config '
                       'with digest 0123456789abcdef, but .*fixed.py now '
                       f'gives {digests["fixed"]}'):
        benchmark.train_all(args, strategies)
    assert trained == []


def test_a_changed_config_is_refused_for_strategies_not_trained_now(
        tmp_path, monkeypatch):
    """Fixed's saved run comes from an older fixed.py: training only DWA
    would still put it on the page, so it is refused, and so is a page
    written from the work dir with --report-only."""
    work_dir = str(tmp_path / 'bench')
    path, saved = saved_fixed_run(work_dir)
    runs.save_result(path, dict(saved, config_digest='0123456789abcdef'))
    trained = []
    monkeypatch.setattr(
        benchmark, 'train_one', lambda cfg, key, seed, args, digest:
        trained.append(key) or dict(mAP=0.5, train_minutes=1.0))
    strategies = runs.find_strategies(benchmark.CONFIG_DIR)
    args = benchmark.parse_args(['--strategies', 'dwa', '--seeds', '0',
                                 '--max-iters', '1200', '--work-dir',
                                 work_dir])
    args.strategy_keys = args.strategies
    with pytest.raises(SystemExit, match='fixed seed 0 trained from a config '
                       'with digest 0123456789abcdef'):
        benchmark.train_all(args, strategies)
    assert trained == []
    with pytest.raises(SystemExit, match='fixed seed 0 trained from a config '
                       'with digest 0123456789abcdef'):
        benchmark.main(['--report-only', '--seeds', '0', '--max-iters',
                        '1200', '--work-dir', work_dir, '--out',
                        str(tmp_path / 'page.md')])
    assert not (tmp_path / 'page.md').exists()


def test_the_split_seed_reaches_the_split(tmp_path, monkeypatch):
    """--split-seed 2 draws the validation split under seed 2 (a run that
    records seed 2 must have been trained on that split)."""
    import mmdet_slf.demo_data as demo_data
    calls = []
    monkeypatch.setattr(demo_data, 'make_digits_voc',
                        lambda **kwargs: None)
    monkeypatch.setattr(
        tuning, 'prepare_validation_split',
        lambda cfg, num_val, seed: calls.append((num_val, seed)) or
        ('train.txt', 'val.txt'))
    monkeypatch.setattr(benchmark, 'train_all',
                        lambda args, strategies, data_split: calls.append(
                            data_split))
    benchmark.main(['--strategies', 'fixed', '--seeds', '0', '--num-val',
                    '50', '--split-seed', '2', '--no-report', '--work-dir',
                    str(tmp_path / 'val')])
    assert calls == [(50, 2), ('train.txt', 'val.txt')]


def test_a_config_dir_without_strategies_is_named(tmp_path):
    """Both tools that read the strategy folder say which option is wrong,
    before anything is trained."""
    import tune_fixed_lambdas
    empty = str(tmp_path / 'none')
    for tool, argv in ((benchmark, ['--no-report', '--timing']),
                       (tune_fixed_lambdas, [])):
        with pytest.raises(SystemExit) as exit_info:
            tool.main(['--config-dir', empty, '--work-dir',
                       str(tmp_path / 'w'), *argv])
        assert str(exit_info.value.code) == (
            '--config-dir: no strategy configs (*.py not starting with "_") '
            f'in {empty}')
    assert os.listdir(tmp_path) == []


def test_a_page_or_work_dir_that_cannot_be_written_is_refused_first(
        tmp_path, capsys):
    """The page is written after every run it reports: a folder as --out,
    or a path through a file, is refused by the parser (it ended the tool
    with a traceback after the training before), as is a file as
    --work-dir. With --no-report no page is written and --out is not
    looked at."""
    afile = tmp_path / 'a.md'
    afile.write_text('')
    for argv, message in (
            (['--out', str(tmp_path)], f'--out {tmp_path} is a folder: '
             'name the Markdown page to write'),
            (['--out', str(afile / 'results.md')],
             f'--out {afile / "results.md"}: {afile} is a file, not a '
             'folder'),
            (['--work-dir', str(afile)], f'--work-dir {afile} is a file; '
             'the work dir is the folder the runs are trained into')):
        assert message in refusal(benchmark.parse_args,
                                  ['--strategies', 'fixed'] + argv, capsys)
    args = benchmark.parse_args(['--no-report', '--out', str(tmp_path)])
    assert args.out == str(tmp_path)


def test_a_page_without_runs_is_refused_by_name(tmp_path):
    """--report-only of a work dir with no finished run, or none of the
    reference, ends with the reason, not a traceback, and writes
    nothing."""
    out = str(tmp_path / 'page.md')
    empty = str(tmp_path / 'empty')
    with pytest.raises(SystemExit, match=r'^no page written: no finished '
                       f'runs in {empty}/runs$'):
        benchmark.main(['--report-only', '--work-dir', empty, '--out', out])
    work_dir = str(tmp_path / 'bench')
    fake_result(work_dir, 0, 0.85)
    with pytest.raises(SystemExit, match=r"^no page written: the reference "
                       r"'dwa' has no finished run of seeds \[0\]"):
        benchmark.main(['--report-only', '--work-dir', work_dir, '--out',
                        out, '--reference', 'dwa', '--max-iters', '1200'])
    assert not osp.exists(out)
