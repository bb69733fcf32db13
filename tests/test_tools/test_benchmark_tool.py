# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""tools/benchmark.py --report-only: the page names the options that made
its runs, so its commands reproduce it."""
import os.path as osp
import sys

from conftest import REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import benchmark  # noqa: E402

from mmdet_slf.benchmarking import runs  # noqa: E402


def fake_result(work_dir, seed, value):
    result = dict(seed=seed, strategy='fixed', name='Fixed',
                  terms=['coord', 'pred', 'obj', 'noobj'],
                  prior=[5.0, 1.0, 1.0, 0.5], max_iters=1200,
                  train_minutes=3.0, work_dir='', mAP=value,
                  curve=[[1200, value]], mean_weights={})
    runs.save_result(
        osp.join(runs.run_dir(work_dir, 'fixed', seed), runs.RESULT_FILE),
        result)


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
