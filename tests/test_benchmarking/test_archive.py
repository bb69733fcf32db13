# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""A page's runs kept in ``runs.json``: the page written from the archive
is the page written from the work dir, and the per-seed table is what the
paired differences are computed from."""
import json
import os
import os.path as osp
import shutil

import pytest
from conftest import fill_disk_on_write

from mmdet_slf.benchmarking import archive, report, runs, tables

TERMS = ['coord', 'pred', 'obj', 'noobj']


def fake_run(work_dir, key, seed, value, weights):
    """A finished run with its result and a training log of two records
    (weights ``weights`` and then 10% more on ``pred``) and a validation
    record."""
    run = runs.run_dir(work_dir, key, seed)
    mean = dict(zip(TERMS, weights))
    mean['pred'] *= 1.05
    runs.save_result(
        osp.join(run, runs.RESULT_FILE),
        dict(seed=seed, strategy=key, name=key.upper(), terms=TERMS,
             prior=[5.0, 1.0, 1.0, 0.5], max_iters=100, train_minutes=1.0,
             work_dir=osp.abspath(run), mAP=value,
             curve=[[50, value - 0.1], [100, value]], mean_weights=mean))
    log = osp.join(run, '20261128_000000', 'vis_data')
    records = []
    for it, scale in ((50, 1.0), (100, 1.1)):
        record = {f'slf_w_{t}': w * (scale if t == 'pred' else 1.0)
                  for t, w in zip(TERMS, weights)}
        records.append(dict(loss=1.0, loss_pred=0.5, lr=0.01, iter=it,
                            step=it, **record))
    records.append({'pascal_voc/mAP': value, 'step': 100})
    os.makedirs(log)
    with open(osp.join(log, 'scalars.json'), 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in records)


@pytest.fixture
def bench(tmp_path):
    work_dir = str(tmp_path / 'bench')
    # slf-b minus fixed by seed: +0.01, +0.03, +0.02
    for seed, (fixed, slf) in enumerate([(0.80, 0.81), (0.82, 0.85),
                                         (0.81, 0.83)]):
        fake_run(work_dir, 'fixed', seed, fixed, [5.0, 1.0, 1.0, 0.5])
        fake_run(work_dir, 'slf-b', seed, slf, [4.0, 2.0, 1.0, 0.5])
    return work_dir


def test_page_from_the_archive_is_the_page_from_the_work_dir(
        tmp_path, bench):
    out = str(tmp_path / 'docs' / 'results.md')
    text = report.write_report(bench, out, 'fixed', {})
    kept = str(tmp_path / 'docs' / 'results' / 'runs.json')
    assert '[`results/runs.json`](results/runs.json)' in text
    figure = str(tmp_path / 'docs' / 'results' / 'weights.png')
    assert osp.exists(figure)
    with open(kept) as f:
        saved = json.load(f)
    assert saved['work_dir'] == bench
    assert [(r['strategy'], r['seed']) for r in saved['runs']] == [
        ('fixed', 0), ('fixed', 1), ('fixed', 2), ('slf-b', 0),
        ('slf-b', 1), ('slf-b', 2)]
    first = saved['runs'][3]
    # machine paths dropped; training records cut to iter and slf_ scalars
    assert 'work_dir' not in first
    assert first['weight_records'] == [
        dict(iter=50, slf_w_coord=4.0, slf_w_pred=2.0, slf_w_obj=1.0,
             slf_w_noobj=0.5),
        dict(iter=100, slf_w_coord=4.0, slf_w_pred=2.2, slf_w_obj=1.0,
             slf_w_noobj=0.5)]
    assert first['mAP'] == 0.81 and first['curve'][1] == [100, 0.81]
    # Without the work dir: the same page, and the weight figure drawn
    # from the archived records.
    shutil.rmtree(bench)
    page = str(tmp_path / 'docs' / 'again.md')
    again = report.write_report('ignored', page, 'fixed', {}, archive=kept)
    assert again == text.replace('results/', 'again/')
    assert osp.exists(str(tmp_path / 'docs' / 'again' / 'weights.png'))
    # the new page keeps its runs beside it too, as the page says
    assert archive.read_archive(
        str(tmp_path / 'docs' / 'again' / 'runs.json')) == \
        archive.read_archive(kept)
    # written again from itself, the archive is left as it was
    before = open(kept).read()
    report.write_report('ignored', out, 'fixed', {}, archive=kept,
                        keys=['fixed'])
    assert open(kept).read() == before


def test_seed_table_holds_the_numbers_the_paired_test_uses(bench):
    results = runs.load_results(bench)
    rows = report.strategy_rows(results, 'fixed')
    text = tables.seed_table(results, rows)
    lines = text.splitlines()
    assert lines[0] == '| Strategy | seed 0 | seed 1 | seed 2 |'
    assert lines[2] == '| FIXED | 0.8000 | 0.8200 | 0.8100 |'
    assert lines[3] == '| SLF-B | 0.8100 | 0.8500 | 0.8300 |'
    # The paired difference from the table's cells: +0.01 +0.03 +0.02,
    # mean 0.02, std 0.01, t(2) 4.303: 0.02 +- 0.0248.
    paired = rows[1]['paired']
    assert paired['mean_diff'] == pytest.approx(0.02)
    assert paired['ci_high'] - paired['mean_diff'] == pytest.approx(
        4.303 * 0.01 / 3 ** 0.5, abs=1e-4)
    # a seed a strategy has not run is a blank cell
    del results['slf-b'][1]
    lines = tables.seed_table(results, rows).splitlines()
    assert lines[3] == '| SLF-B | 0.8100 |  | 0.8300 |'


@pytest.mark.parametrize('content, message', [
    ('{"runs": [', 'is not JSON'),
    ('{"runs": []}', 'not an archive of benchmark runs'),
    ('[1, 2]', 'not an archive of benchmark runs'),
    (json.dumps(dict(format=archive.FORMAT, version=99, work_dir='w',
                     runs=[])), 'version 99 of the archive'),
    (json.dumps(dict(format=archive.FORMAT, version=archive.VERSION,
                     work_dir='w', runs=[dict(strategy='a', seed=1),
                                         dict(strategy='a', seed=1)])),
     'holds a seed 1 twice'),
    (json.dumps(dict(format=archive.FORMAT, version=archive.VERSION,
                     runs=[])), 'has no work_dir'),
    (json.dumps(dict(format=archive.FORMAT, version=archive.VERSION)),
     'has no runs and no work_dir'),
    (json.dumps(dict(format=archive.FORMAT, version=archive.VERSION,
                     work_dir='w', runs=[dict(strategy='a', seed=0),
                                         dict(seed=1, mAP=0.8)])),
     r"run 1 names no strategy and seed: \{'seed': 1, 'mAP': 0.8\}"),
    (json.dumps(dict(format=archive.FORMAT, version=archive.VERSION,
                     work_dir='w', runs=[[0.8]])),
     r'run 0 names no strategy and seed: \[0.8\]'),
])
def test_bad_archives_are_refused_by_name(tmp_path, content, message):
    path = str(tmp_path / 'runs.json')
    with open(path, 'w') as f:
        f.write(content)
    with pytest.raises(ValueError, match=message):
        archive.read_archive(path)


def test_an_archive_cut_off_while_written_leaves_the_old_one(
        tmp_path, bench, monkeypatch):
    """A full disk during the write leaves the previous archive whole and
    no temporary file; the temporary name is per call, so two writers of
    one page never write into each other's file."""
    from mmdet_slf.engine.checkpoint import atomic_io
    path = str(tmp_path / 'runs.json')
    results = runs.load_results(bench)
    archive.write_archive(path, results, bench)
    with open(path) as f:
        old = f.read()
    names = fill_disk_on_write(monkeypatch)
    del results['slf-b']
    for _ in range(2):
        with pytest.raises(OSError, match='No space left'):
            archive.write_archive(path, results, bench)
    with open(path) as f:
        assert f.read() == old
    assert sorted(os.listdir(tmp_path)) == ['bench', 'runs.json']
    assert len(set(names)) == 2 and all(
        atomic_io.TEMP_INFIX in osp.basename(name) for name in names)
    assert archive.read_archive(path)[0].keys() == {'fixed', 'slf-b'}


def test_an_archive_gives_back_the_runs_and_timing_it_was_written_with(
        tmp_path):
    """Runs saved before results recorded their strategy are archived
    under their folder's key; seeds are in numerical order (2 before 10,
    though ``seed10`` sorts before ``seed2`` as a name); the timing comes
    back, and with it the page's cost table."""
    work_dir = str(tmp_path / 'bench')
    for key in ('fixed', 'slf-b'):
        for seed, value in ((10, 0.80), (2, 0.82)):
            runs.save_result(
                osp.join(runs.run_dir(work_dir, key, seed), runs.RESULT_FILE),
                dict(seed=seed, name=key.upper(), terms=TERMS,
                     prior=[5.0, 1.0, 1.0, 0.5], max_iters=100, mAP=value,
                     curve=[[100, value]], mean_weights={}))
    results = runs.load_results(work_dir)
    timing = dict(step_seconds={'fixed': 0.2, 'slf-b': 0.3},
                  fps={'fixed': 100.0, 'slf-b': 50.0},
                  date='2026-11-26', command='x', machine='m')
    path = str(tmp_path / 'runs.json')
    archive.write_archive(path, results, work_dir, timing)
    with open(path) as f:
        entries = json.load(f)['runs']
    assert [(e['strategy'], e['seed']) for e in entries] == [
        ('fixed', 2), ('fixed', 10), ('slf-b', 2), ('slf-b', 10)]
    back, back_dir, back_timing = archive.read_archive(path)
    assert back_dir == work_dir and back_timing == timing
    assert back == {key: {seed: dict(run, strategy=key)
                          for seed, run in by_seed.items()}
                    for key, by_seed in results.items()}
    text = report.write_report('ignored', str(tmp_path / 'page.md'),
                               'fixed', {}, archive=path)
    # 0.3 / 0.2 and 50 / 100; without configs a row is named by its key
    assert '| slf-b | 1.500 | 0.500 |' in text


@pytest.fixture
def two_pages(tmp_path, bench):
    """Two pages' archives: ``bench`` (fixed and slf-b) and a later one
    whose fixed runs are the same runs made again (their own minutes and
    config digest) beside a new row slf-c."""
    first = str(tmp_path / 'first' / 'runs.json')
    archive.write_archive(first, runs.load_results(bench), 'work_dirs/a')
    later = str(tmp_path / 'later-bench')
    # slf-c minus fixed by seed: -0.02, +0.01, +0.04
    for seed, (fixed, slf) in enumerate([(0.80, 0.78), (0.82, 0.83),
                                         (0.81, 0.85)]):
        fake_run(later, 'fixed', seed, fixed, [5.0, 1.0, 1.0, 0.5])
        fake_run(later, 'slf-c', seed, slf, [3.0, 1.0, 1.0, 0.5])
    results = runs.load_results(later)
    for run in results['fixed'].values():
        run.update(train_minutes=7.5, config_digest='edited')
    second = str(tmp_path / 'second' / 'runs.json')
    archive.write_archive(second, results, 'work_dirs/b')
    return first, second


def test_runs_of_two_archives_make_one_page(tmp_path, two_pages):
    """A run kept by both archives is taken once, from the first; the new
    row is set against it seed by seed; the page names both work dirs and
    archives, and its own archive, holding all the runs, writes it again."""
    first, second = two_pages
    results, work_dirs, timing, sources = archive.read_archives(
        [first, second])
    assert sorted(results) == ['fixed', 'slf-b', 'slf-c']
    assert results['fixed'][0]['train_minutes'] == 1.0  # the first's
    assert work_dirs == ['work_dirs/a', 'work_dirs/b'] and timing is None
    assert sources == [first, second]
    out = str(tmp_path / 'docs' / 'merged.md')
    text = report.write_report('ignored', out, 'fixed', {},
                               archive=[first, second])
    # slf-c: mean +0.01, sd 0.03, t(2) 4.303: +0.010 +- 0.0745,
    # t = 0.01 / (0.03 / sqrt 3) = 0.577, two-sided p = 0.622
    assert '| +0.010 [-0.065, +0.085] | 0.622 |' in text
    # slf-b as on its own page: +0.020 +- 0.0248
    assert '| +0.020 [-0.005, +0.045] |' in text
    assert '`work_dirs/a`, `work_dirs/b`, read from ' in text
    assert f'--archive {first} {second}`' in text
    kept = str(tmp_path / 'docs' / 'merged' / 'runs.json')
    with open(kept) as f:
        head = json.load(f)
    assert head['work_dir'] == ['work_dirs/a', 'work_dirs/b']
    assert head['sources'] == [first, second]
    assert len(head['runs']) == 9
    shutil.rmtree(osp.dirname(first))
    assert report.write_report('ignored', out, 'fixed', {},
                               archive=kept) == text


def test_a_page_that_would_drop_runs_of_its_own_input_archive_is_refused(
        tmp_path, two_pages):
    """Written to the page of the first archive, from both, the page's
    runs.json replaces that archive. Limited to slf-c it would lose the
    first's slf-b runs: refused, with the archive and its folder as they
    were. With every run it keeps them all."""
    first, second = two_pages
    out = str(tmp_path / 'first.md')
    with open(first) as f:
        before = f.read()
    with pytest.raises(ValueError, match=r'runs.json is one of the archives '
                       r'this page is written from, and writing the page '
                       r'would replace it without its runs of slf-b seed 0, '
                       r'slf-b seed 1, slf-b seed 2'):
        report.write_report('ignored', out, 'fixed', {}, keys=['slf-c'],
                            archive=[first, second])
    with open(first) as f:
        assert f.read() == before
    assert sorted(p.name for p in (tmp_path / 'first').iterdir()) == [
        'runs.json']
    assert not osp.exists(out)
    report.write_report('ignored', out, 'fixed', {}, archive=[first, second])
    with open(first) as f:
        assert len(json.load(f)['runs']) == 9


@pytest.mark.parametrize('change, message', [
    (dict(mAP=0.9), 'fixed seed 1 is in .*first.* and in .*second.* with '
     'another mAP: two different runs'),
    (dict(curve=[[50, 0.7], [100, 0.82]]), 'with another curve'),
    (dict(data='0123abcd'), 'with another data'),
    (dict(max_iters=200), 'with another max_iters'),
])
def test_two_different_runs_of_one_seed_are_refused(two_pages, change,
                                                    message):
    first, second = two_pages
    with open(second) as f:
        head = json.load(f)
    head['runs'][1].update(change)  # fixed, seed 1
    with open(second, 'w') as f:
        json.dump(head, f)
    with pytest.raises(ValueError, match=message):
        archive.read_archives([first, second])


@pytest.mark.parametrize('field, value', [
    ('max_iters', 200), ('eval_split', 'val (300 of trainval, split seed '
                         '0)'), ('data', '0123abcd')])
def test_runs_that_cannot_be_paired_are_refused(two_pages, field, value):
    """A row trained for another budget, scored on other images or on
    another demo set is refused, naming a run of each side and its archive,
    as a work dir refuses it when it is trained."""
    first, second = two_pages
    with open(second) as f:
        head = json.load(f)
    head['runs'] = [run for run in head['runs'] if run['strategy'] != 'fixed']
    for run in head['runs']:
        run[field] = value
    with open(second, 'w') as f:
        json.dump(head, f)
    # the first archive's runs recorded no demo set: only the second's do
    if field == 'data':
        with open(first) as f:
            one = json.load(f)
        one['runs'][0]['data'] = 'fedcba98'
        with open(first, 'w') as f:
            json.dump(one, f)
    with pytest.raises(ValueError,
                       match=f'runs of different {field} cannot be paired '
                       r'by seed: fixed seed 0 \(.*first.*\) has .*, slf-c '
                       r'seed 0 \(.*second.*\) has '):
        archive.read_archives([first, second])
    # either archive alone is a page
    for path in two_pages:
        assert archive.read_archives([path])[0]


def test_two_cost_tables_are_refused(two_pages):
    first, second = two_pages
    timing = dict(step_seconds={}, fps={}, date='d', command='c',
                  machine='m')
    for path in two_pages:
        results, work_dir, _ = archive.read_archive(path)
        archive.write_archive(path, results, work_dir, timing)
    with pytest.raises(ValueError, match='first.* and .*second.* both hold '
                       'a cost table'):
        archive.read_archives([first, second])
    assert archive.read_archives([second])[2] == timing


def test_an_archive_whose_work_dir_is_not_a_path_is_refused(tmp_path):
    path = str(tmp_path / 'runs.json')
    for work_dir in (3, [], ['a', 2]):
        with open(path, 'w') as f:
            json.dump(dict(format=archive.FORMAT, version=archive.VERSION,
                           work_dir=work_dir, runs=[]), f)
        with pytest.raises(ValueError, match='"work_dir" is neither a path '
                           'nor a list of paths'):
            archive.read_archive(path)


def test_a_work_dir_of_new_rows_joins_the_archive_of_the_reference(
        tmp_path, two_pages):
    """New rows trained into a work dir of their own, without the reference,
    are set against the reference runs a page kept; the work dir's runs
    bring the weights they logged."""
    first = two_pages[0]
    new = str(tmp_path / 'new-bench')
    # slf-d minus fixed by seed: -0.01, +0.02, +0.02
    for seed, value in enumerate([0.79, 0.84, 0.83]):
        fake_run(new, 'slf-d', seed, value, [2.0, 1.0, 1.0, 0.5])
    results, work_dirs, _, sources = archive.read_archives([first, new])
    assert work_dirs == ['work_dirs/a', new] and sources == [first, new]
    assert results['slf-d'][0]['weight_records'][1]['slf_w_pred'] == \
        pytest.approx(1.1)
    text = report.write_report('ignored', str(tmp_path / 'page.md'),
                               'fixed', {}, archive=[first, new])
    # mean +0.01, sd 0.01732, t(2) 4.303: +-0.0430; t = 1, p = 1 - 1/sqrt 3
    assert '| +0.010 [-0.033, +0.053] | 0.423 |' in text
    os.makedirs(str(tmp_path / 'empty'))
    with pytest.raises(ValueError, match='empty is a folder without '
                       'finished runs'):
        archive.read_archives([first, str(tmp_path / 'empty')])
