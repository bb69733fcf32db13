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
