# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""What a results page refuses to be made from (runs that cannot be
compared, each named), and what a rewrite of a page keeps."""
import math
import os.path as osp
import shutil

import pytest
import torch

from mmdet_slf.benchmarking import report, runs
from mmdet_slf.benchmarking.tables import fmt_floor, fmt_p
from mmdet_slf.benchmarking.terms import weight_shares

TERMS = ['coord', 'pred', 'obj', 'noobj']
PRIOR = [5.0, 1.0, 1.0, 0.5]


def run(key, seed, value=0.8, **changes):
    entry = dict(seed=seed, strategy=key, name=key, terms=TERMS,
                 prior=PRIOR, max_iters=600, train_minutes=1.0, mAP=value,
                 curve=[[600, value]], mean_weights=dict(zip(TERMS, PRIOR)))
    entry.update(changes)
    return entry


def two_strategies(**changes_of_b_seed_1):
    results = {key: {s: run(key, s) for s in range(3)}
               for key in ('fixed', 'slf-b')}
    results['slf-b'][1].update(changes_of_b_seed_1)
    return results


@pytest.mark.parametrize('changes,message', [
    (dict(max_iters=1200), r'seeds of slf-b disagree on max_iters: '
     r'\{0: 600, 1: 1200, 2: 600\}'),
    (dict(name='other'), 'seeds of slf-b disagree on name'),
    (dict(terms=TERMS[::-1]), 'seeds of slf-b disagree on terms'),
    (dict(prior=[1.0, 1.0, 1.0, 1.0]), 'seeds of slf-b disagree on prior'),
    (dict(mAP=None), r'slf-b has no finite mAP for seeds \[1\]'),
    (dict(mAP='0.8'), r'slf-b has no finite mAP for seeds \[1\]'),
    (dict(mAP=math.inf), r'slf-b has no finite mAP for seeds \[1\]'),
    (dict(mAP=True), r'slf-b has no finite mAP for seeds \[1\]'),
])
def test_runs_of_one_strategy_must_agree(changes, message):
    with pytest.raises(ValueError, match=message):
        report.strategy_rows(two_strategies(**changes), 'fixed')


def test_strategies_of_other_budgets_or_terms_are_not_compared():
    results = two_strategies()
    for seed in range(3):
        results['slf-b'][seed]['max_iters'] = 1200
    with pytest.raises(ValueError, match=r"different budgets \{'fixed': 600,"
                       r" 'slf-b': 1200\}"):
        report.strategy_rows(results, 'fixed')
    results = two_strategies()
    for seed in range(3):
        results['slf-b'][seed]['terms'] = ['cls', 'box', 'obj', 'noobj']
    with pytest.raises(ValueError, match="slf-b has the terms .*'cls'.* the "
                       'reference fixed'):
        report.strategy_rows(results, 'fixed')
    results = two_strategies()
    for seed in range(3):
        results['slf-b'][seed]['prior'] = [5.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r'slf-b has 3 lambdas \[5.0, 1.0, '
                       r'1.0\] for its 4 terms'):
        report.strategy_rows(results, 'fixed')


def test_a_result_in_another_strategys_folder_is_refused(tmp_path):
    work_dir = str(tmp_path)
    for key in ('fixed', 'slf-a'):
        path = osp.join(runs.run_dir(work_dir, key, 0), runs.RESULT_FILE)
        runs.save_result(path, run(key, 0))
    assert sorted(runs.load_results(work_dir)) == ['fixed', 'slf-a']
    shutil.copy(osp.join(runs.run_dir(work_dir, 'slf-a', 0), runs.RESULT_FILE),
                osp.join(runs.run_dir(work_dir, 'fixed', 0), runs.RESULT_FILE))
    with pytest.raises(ValueError, match=r"records strategy 'slf-a' but lies "
                       r'in runs/fixed'):
        runs.load_results(work_dir)


def save(work_dir, key, seeds):
    for seed in seeds:
        runs.save_result(osp.join(runs.run_dir(work_dir, key, seed),
                                  runs.RESULT_FILE), run(key, seed))


def test_a_page_without_its_reference_is_refused(tmp_path):
    """The reference ran seeds 10-12 only: a page of seeds 0-2 would have
    no difference to show, and say that no variant kept its terms."""
    work_dir = str(tmp_path / 'bench')
    save(work_dir, 'fixed', range(10, 13))
    save(work_dir, 'slf-a', range(3))
    out = str(tmp_path / 'page.md')
    with pytest.raises(ValueError, match=r"the reference 'fixed' has no "
                       r'finished run of seeds \[0, 1, 2\]'):
        report.write_report(work_dir, out, 'fixed', {}, seeds=range(3))
    assert not osp.exists(out)


def test_a_rewrite_keeps_the_notes_under_the_title(tmp_path):
    work_dir = str(tmp_path / 'bench')
    save(work_dir, 'fixed', range(2))
    save(work_dir, 'slf-a', range(2))
    out = str(tmp_path / 'page.md')
    first = report.write_report(work_dir, out, 'fixed', {})
    assert '> Note' not in first
    lines = first.split('\n')
    note = ['> Note added on 2026-11-28: Fixed\'s runs were copied from',
            '> another work dir.', '', '> Note added later: a second one.']
    with open(out, 'w') as f:
        f.write('\n'.join(lines[:2] + note + [''] + lines[2:]))
    again = report.write_report(work_dir, out, 'fixed', {})
    assert again.split('\n') == lines[:2] + note + [''] + lines[2:]
    # written once more, the page stays the same
    assert report.write_report(work_dir, out, 'fixed', {}) == again
    # a line of spaces between notes still separates them, and a quote
    # that is not a note is dropped with a warning, the notes after it kept
    page = lines[:2] + ['> a quote', '  '] + note + [''] + lines[2:]
    with open(out, 'w') as f:
        f.write('\n'.join(page))
    with pytest.warns(UserWarning, match=r"not kept: \['> a quote'\]"):
        assert report.write_report(work_dir, out, 'fixed', {}) == again


def test_the_share_column_never_rounds_up_to_the_threshold():
    assert fmt_floor(0.2496) == '0.24'
    assert fmt_floor(0.25) == '0.25'
    assert fmt_floor(0.29) == '0.29'  # 28.999... in binary
    assert fmt_floor(1.0) == '1.00'
    assert fmt_floor(math.nan) == 'n/a'
    # lambdas logged in float32 against their float64 config: the share of
    # a run at the reference's own lambdas is 1 less float32 rounding
    logged = torch.tensor([13.7, 1.12, 0.574, 0.404]).double()
    config = torch.tensor([13.7, 1.12, 0.574, 0.404], dtype=torch.float64)
    share = float(((logged / logged.sum()) / (config / config.sum())).min())
    assert 1 - 1e-6 < share < 1
    assert fmt_floor(share) == '1.00'
    assert fmt_floor(0.24999) == '0.24'  # 1e-5 short is short


def test_the_page_explains_the_share_with_the_references_lambdas():
    lambdas = [2.0, 1.0, 1.0, 0.25]
    results = {'fixed-lr4x': {0: run('fixed-lr4x', 0, prior=lambdas)}}
    line = report.share_note(results, 'fixed-lr4x')
    assert 'over the 4 terms and the seeds' in line
    assert "the reference's lambdas 2/1/1/0.25" in line


def test_all_zero_weights_give_every_term_share_zero():
    shares = weight_shares(dict(zip(TERMS, [0.0] * 4)), TERMS, PRIOR)
    assert shares == dict.fromkeys(TERMS, 0.0)


def test_p_values_keep_two_significant_digits_below_one_percent():
    """p below 0.01 is printed with two significant digits, so a small p
    is never shown as 0.000; from 0.01 up, with three decimals."""
    assert fmt_p(0.0012) == '0.0012'
    assert fmt_p(0.0099) == '0.0099'
    assert fmt_p(0.01) == '0.010'
    assert fmt_p(0.2) == '0.200'
    assert fmt_p(math.nan) == 'n/a'


def test_table_rows_print_the_statistics_of_the_seeds():
    """Fixed at 0.80/0.82/0.84: mean 0.820, std 0.020, t(2) 4.303:
    0.820 +- 4.303 * 0.020 / sqrt(3) = [0.770, 0.870]. B gains 0.010,
    0.011, 0.012: B's mean 0.831, std 0.021, interval [0.779, 0.883];
    the gain's mean 0.011, std 0.001, interval +0.011 +- 0.0025, t 19.05
    with 2 dof, p 0.0027. B's pred weight of 0.2496 in a total of 7.5 is
    0.2496 of its prior share, printed 0.24 (rounded down, below the 0.25
    threshold); minutes are the median of 2.0, 2.5 and 1.0."""
    fixed = {s: run('fixed', s, value, name='Fixed', train_minutes=minutes)
             for s, (value, minutes) in enumerate(
                 [(0.80, 2.0), (0.82, 2.5), (0.84, 1.0)])}
    starved = dict(coord=5.7504, pred=0.2496, obj=1.0, noobj=0.5)
    slf = {s: run('slf-b', s, value, name='B', train_minutes=2.0,
                  mean_weights=starved)
           for s, value in enumerate([0.810, 0.831, 0.852])}
    rows = report.strategy_rows({'fixed': fixed, 'slf-b': slf}, 'fixed')
    lines = report.table(rows).splitlines()
    assert lines[2] == ('| Fixed | 3 | 0.820 +- 0.020 | [0.770, 0.870] | '
                        'reference | - | 1.00 | 2.00 |')
    assert lines[3] == ('| B | 3 | 0.831 +- 0.021 | [0.779, 0.883] | '
                        '+0.011 [+0.009, +0.013] | 0.0027 | 0.24 | 2.00 |')


def write_config(path, **keys):
    with open(path, 'w') as f:
        f.writelines(f'{key} = {value!r}\n' for key, value in keys.items())
    return str(path)


def test_the_verdict_counts_the_search_of_the_tuned_strategy_asked_for(
        tmp_path):
    """The tuned lambdas of ``tuned`` (here ``lambdas-b``, not the default
    key) were searched with 8 runs of 200 iterations: with their own run of
    600, 8 * 200 + 600 = 2,200 iterations, and one SLF run of 600 is
    1/3.67 of that."""
    work_dir = str(tmp_path / 'bench')
    for seed in range(5):
        for key, value in (('fixed', 0.80), ('lambdas-b', 0.82),
                           ('slf-b', 0.82 + seed / 1000)):
            runs.save_result(
                osp.join(runs.run_dir(work_dir, key, seed), runs.RESULT_FILE),
                run(key, seed, value + seed / 100))
    strategies = {
        'fixed': write_config(tmp_path / 'fixed.py'),
        'lambdas-b': write_config(tmp_path / 'tuned.py', search_runs=8,
                                  search_iters=200),
        'slf-b': write_config(tmp_path / 'b.py')}
    text = report.write_report(work_dir, str(tmp_path / 'page.md'), 'fixed',
                               strategies, tuned='lambdas-b')
    assert ('the tuned lambdas cost 8 search runs of 200 iterations '
            'besides their own 600, so one SLF run of 600 is 1/3.67 of '
            'their training') in text


def test_the_share_note_counts_the_terms_of_a_reference_without_lambdas():
    """A reference that sets no lambdas (RLW) records no prior; the note
    still counts its 4 terms."""
    results = {'rlw': {0: run('rlw', 0, prior=None)}}
    assert 'over the 4 terms and the seeds' in report.share_note(
        results, 'rlw')
