# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""What the strategies did to each term: hand-worked runs read back."""
import json
import math
import os
import os.path as osp
import sys

import pytest

from mmdet_slf.benchmarking import runs, terms

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TERMS = ['coord', 'pred', 'obj', 'noobj']
PRIOR = [5.0, 1.0, 1.0, 0.5]


def fake_run(work_dir, key, seed, records, curve, mean_weights):
    folder = runs.run_dir(work_dir, key, seed)
    log_dir = osp.join(folder, '20260101_000000', 'vis_data')
    os.makedirs(log_dir)
    with open(osp.join(log_dir, 'scalars.json'), 'w') as f:
        for record in records:
            f.write(json.dumps(record) + '\n')
    runs.save_result(
        osp.join(folder, runs.RESULT_FILE),
        dict(seed=seed, strategy=key, name=key, terms=TERMS, prior=PRIOR,
             max_iters=300, train_minutes=1.0, work_dir='',
             mAP=curve[-1][1], curve=curve, mean_weights=mean_weights))


def record(step, raw, weights):
    out = dict(iter=step, step=step)
    for term, value, weight in zip(TERMS, raw, weights):
        out[f'loss_{term}'] = value * weight
        out[f'slf_w_{term}'] = weight
    return out


def test_raw_terms_at_end_undo_the_weights_over_the_last_window():
    records = [
        record(100, [9.0, 9.0, 9.0, 9.0], PRIOR),  # before the window
        record(200, [1.0, 2.0, 3.0, 4.0], PRIOR),
        {'pascal_voc/mAP': 0.5, 'step': 1},  # an evaluation record
        record(300, [3.0, 4.0, 5.0, 6.0], [2.0, 0.0, 1.0, 0.5]),
    ]
    # last 150 iterations: records 200 and 300; pred's weight is 0 at 300,
    # so its raw value there is unknown and only iteration 200 counts
    got = terms.raw_terms_at_end(records, TERMS, window=150)
    assert got == pytest.approx(
        dict(coord=2.0, pred=2.0, obj=4.0, noobj=5.0))
    assert math.isnan(terms.raw_terms_at_end(
        [records[-1]], TERMS, window=10)['pred'])


def test_weight_shares_relative_to_the_prior():
    # total 7.5 kept; coord at 6 is 1.2x its share, noobj at 0.25 is 0.5x
    shares = terms.weight_shares(
        dict(coord=6.0, pred=0.625, obj=0.625, noobj=0.25), TERMS, PRIOR)
    assert shares == pytest.approx(
        dict(coord=1.2, pred=0.625, obj=0.625, noobj=0.5))
    # doubling every weight changes no share
    assert terms.weight_shares(
        dict(coord=12.0, pred=1.25, obj=1.25, noobj=0.5), TERMS,
        PRIOR) == pytest.approx(shares)


def test_weight_shares_match_the_weights_to_terms_by_name():
    """Mean weights logged in another order than ``terms`` (a strategy
    that lists its terms backwards) give the same shares as above: coord
    1.2, pred and obj 0.625, noobj 0.5; by position, coord would get 0.25
    of 7.5 against 5 of 7.5 (0.05) and noobj 6 against 0.5 (12)."""
    shares = terms.weight_shares(
        dict(noobj=0.25, obj=0.625, pred=0.625, coord=6.0), TERMS, PRIOR)
    assert shares == pytest.approx(
        dict(coord=1.2, pred=0.625, obj=0.625, noobj=0.5))


def test_drop_after_peak_and_spearman_against_hand_worked_values():
    assert terms.drop_after_peak([[200, 0.5], [400, 0.8], [600, 0.7]]) \
        == pytest.approx(0.1)
    assert terms.drop_after_peak([[200, 0.5], [400, 0.8]]) == 0.0
    # ranks 1 2 3 4 against 1 3 2 4: sum d^2 = 2, rho = 1 - 6 * 2 / 60
    stats = terms.spearman([1.0, 2.0, 3.0, 4.0, math.nan],
                           [10.0, 30.0, 20.0, 40.0, 50.0])
    assert stats['rho'] == pytest.approx(0.8)
    assert stats['n'] == 4


def make_benchmark(work_dir):
    # 'heavy' gives noobj twice its share and ends lower; 'light' half
    for seed in range(3):
        for key, noobj_w, final in (('fixed', 0.5, 0.80),
                                    ('heavy', 1.0, 0.70),
                                    ('light', 0.25, 0.85)):
            weights = [5.0, 1.0, 1.0, noobj_w]
            fake_run(work_dir, key, seed,
                     [record(100, [0.1, 0.2, 0.3, 0.4 / noobj_w], weights)],
                     [[100, final + 0.01 * seed], [200, final]],
                     dict(zip(TERMS, weights)))


def test_analysis_table_and_correlations_of_a_benchmark(tmp_path):
    work_dir = str(tmp_path)
    make_benchmark(work_dir)
    rows = terms.run_rows(runs.load_results(work_dir), work_dir, PRIOR)
    assert len(rows) == 9
    means = {m['key']: m for m in terms.strategy_means(rows, TERMS)}
    # noobj's share: 1.0 of 8.0 over 0.5 of 7.5
    assert means['heavy']['share']['noobj'] == pytest.approx(
        (1.0 / 8.0) / (0.5 / 7.5))
    assert means['light']['raw']['noobj'] == pytest.approx(1.6)
    # seeds 0, 1, 2 drop 0, 0.01, 0.02 after their peak
    assert means['fixed']['drop'] == pytest.approx(0.01)
    lines = terms.format_analysis(rows, TERMS)
    assert lines[2].startswith('| light | 3 | 0.850 | 0.010 |')
    assert lines[4].startswith('| heavy | 3 |')
    # over the strategy means the noobj share orders mAP exactly backwards
    line = next(line for line in lines if line.startswith('| share noobj'))
    assert line.split(' | ')[3].startswith('-1.00')
    over = terms.correlations(rows, TERMS, exclude=['heavy'])
    assert over['share_noobj vs mAP']['n'] == 6


def test_the_tool_prints_the_analysis(tmp_path, capsys):
    work_dir = str(tmp_path)
    make_benchmark(work_dir)
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        import analyze_terms
    finally:
        sys.path.pop(0)
    text = analyze_terms.main(['--work-dir', work_dir, '--seeds', '0', '1',
                               '--exclude', 'heavy'])
    assert '| light | 2 | 0.850 | 0.005 |' in text
    # coord's raw term is the same in every run: no correlation to give
    assert '| raw coord | n/a | n/a | n/a | n/a |' in text
    assert '4 runs of 2 strategies, without heavy' in text
    with pytest.raises(SystemExit, match='one lambda per term'):
        analyze_terms.main(['--work-dir', work_dir, '--prior', '1', '2'])
    with pytest.raises(SystemExit, match='no finished runs'):
        analyze_terms.main(['--work-dir', work_dir, '--seeds', '7'])
    # a misspelt name would leave its strategy in, under a text that says
    # it is left out
    for option in ('--exclude', '--strategies'):
        with pytest.raises(SystemExit, match=r"no saved runs of \['heavvy'\]"
                           r".*\(saved: \['fixed', 'heavy', 'light'\]\)"):
            analyze_terms.main(['--work-dir', work_dir, option, 'heavvy'])
    # a window of no iteration would leave every raw term nan
    for bad in (['--window', '0'], ['--prior', '5', '1', '0', '0.5']):
        with pytest.raises(SystemExit):
            analyze_terms.main(['--work-dir', work_dir, *bad])
    assert '--window must be >= 1' in capsys.readouterr().err


def load_analyze_terms():
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        import analyze_terms
    finally:
        sys.path.pop(0)
    return analyze_terms


def test_the_tool_reads_the_strategies_and_window_asked_for(tmp_path):
    """``--strategies fixed light`` analyses those two (6 runs), and
    ``--window`` sets the iterations the raw terms average: noobj's raw
    term is 0.8 at iteration 100 and 2.0 at 300, so a window of 100 gives
    2.0 and one of 300 their mean, 1.4."""
    work_dir = str(tmp_path)
    for seed in range(3):
        for key in ('fixed', 'light', 'heavy'):
            weights = [5.0, 1.0, 1.0, 0.5]
            fake_run(work_dir, key, seed,
                     [record(100, [0.1, 0.2, 0.3, 0.8], weights),
                      record(300, [0.1, 0.2, 0.3, 2.0], weights)],
                     [[300, 0.8 + 0.01 * seed]], dict(zip(TERMS, weights)))
    tool = load_analyze_terms()
    text = tool.main(['--work-dir', work_dir, '--strategies', 'fixed',
                      'light', '--window', '100'])
    assert '6 runs of 2 strategies' in text
    assert '| heavy |' not in text and '| light | 3 |' in text
    raw = {window: terms.run_rows(runs.load_results(work_dir), work_dir,
                                  PRIOR, window)[0]['raw']['noobj']
           for window in (100, 300)}
    assert raw == pytest.approx({100: 2.0, 300: 1.4})
    # the tool passes its window on: 2.0 at 100, 1.4 at 300
    assert '2.000' in text and '1.400' not in text
    text = tool.main(['--work-dir', work_dir, '--strategies', 'fixed',
                      '--window', '300'])
    assert '1.400' in text and '2.000' not in text


def test_the_tool_names_a_work_dir_without_runs(tmp_path):
    tool = load_analyze_terms()
    with pytest.raises(SystemExit, match='no finished runs under'):
        tool.main(['--work-dir', str(tmp_path), '--strategies', 'fixed'])


def test_shares_match_the_lambdas_to_terms_by_name(tmp_path):
    """A run that lists its terms in another order, at the prior's
    weights, keeps the prior's balance: share 1 for every term, where
    matching by position gave 0.1 to 10. A run of other terms is refused."""
    work_dir = str(tmp_path)
    fake_run(work_dir, 'fixed', 0, [record(100, [0.1] * 4, PRIOR)],
             [[100, 0.8]], dict(zip(TERMS, PRIOR)))
    results = runs.load_results(work_dir)
    results['fixed'][0]['terms'] = TERMS[::-1]
    rows = terms.run_rows(results, work_dir, PRIOR, prior_terms=TERMS)
    assert rows[0]['share'] == pytest.approx(dict.fromkeys(TERMS, 1.0))
    results['fixed'][0]['terms'] = ['cls', 'box', 'obj', 'noobj']
    with pytest.raises(ValueError, match=r"fixed seed 0 has the terms "
                       r"\['cls'"):
        terms.run_rows(results, work_dir, PRIOR, prior_terms=TERMS)


def test_raw_terms_average_the_records_inside_the_window():
    """noobj's raw term is 1, 2 and 6 at iterations 200, 300 and 400. A
    window of 200 counts back from 400 and leaves 200 out (records after
    400 - 200): the mean of 2 and 6, 4. A window of 300 takes all three:
    their mean, 3 (their median would be 2)."""
    records = [record(step, [1.0, 1.0, 1.0, raw], PRIOR)
               for step, raw in ((200, 1.0), (300, 2.0), (400, 6.0))]
    assert terms.raw_terms_at_end(records, TERMS, window=200)['noobj'] == \
        pytest.approx(4.0)
    assert terms.raw_terms_at_end(records, TERMS, window=300)['noobj'] == \
        pytest.approx(3.0)


def test_spearman_needs_three_pairs():
    """Two pairs are always ranked in or against order: no correlation is
    given for them."""
    stats = terms.spearman([1.0, 2.0], [3.0, 4.0])
    assert math.isnan(stats['rho']) and stats['n'] == 2


def analysis_row(key, share_noobj, value):
    return dict(key=key, seed=0, mAP=value, drop=0.0,
                raw=dict.fromkeys(TERMS, 1.0),
                share=dict(dict.fromkeys(TERMS, 1.0), noobj=share_noobj))


def test_excluded_strategies_leave_the_correlations_over_means_too():
    """noobj's share against mAP: light 0.25 / 0.85, fixed 0.5 / 0.80,
    mid 0.75 / 0.75, heavy 1.0 / 0.90. Without heavy the order is exactly
    reversed, rho -1, over the runs and over the strategy means alike;
    with heavy the mAP ranks 3 2 1 4 against 1 2 3 4 give
    rho = 1 - 6 * 8 / (4 * 15) = 0.2."""
    rows = [analysis_row('light', 0.25, 0.85),
            analysis_row('fixed', 0.5, 0.80),
            analysis_row('mid', 0.75, 0.75),
            analysis_row('heavy', 1.0, 0.90)]
    lines = terms.format_analysis(rows, TERMS, exclude=['heavy'])
    line = next(line for line in lines if line.startswith('| share noobj'))
    cells = line.split(' | ')
    assert cells[1].startswith('-1.00') and cells[3].startswith('-1.00')
    lines = terms.format_analysis(rows, TERMS)
    line = next(line for line in lines if line.startswith('| share noobj'))
    cells = line.split(' | ')
    assert cells[1].startswith('+0.20') and cells[3].startswith('+0.20')


def test_shares_follow_the_terms_of_the_first_run():
    """Without ``prior_terms`` the lambdas are in the order of the first
    run's terms (the first strategy, its first seed). Seed 0 lists the
    terms as the lambdas do, seed 1 backwards; both logged the prior's
    weights, so every share is 1. Read in seed 1's order the lambdas would
    give coord 5 / 0.5 = 10."""
    results = {'fixed': {
        seed: dict(terms=order, mAP=0.8, curve=[[100, 0.8]],
                   mean_weights=dict(zip(TERMS, PRIOR)))
        for seed, order in ((0, TERMS), (1, TERMS[::-1]))}}
    rows = terms.run_rows(results, 'no-such-work-dir', PRIOR)
    for row in rows:
        assert row['share'] == pytest.approx(dict.fromkeys(TERMS, 1.0))


def test_the_tool_takes_a_window_of_one_and_one_lambda_a_term(tmp_path):
    """--window 1 (the least allowed) reads the last iteration alone:
    noobj's raw term is 0.8 at iteration 100 and 2.0 at 300, so 2.000. A
    fifth lambda for the four terms is refused, as is a missing one."""
    work_dir = str(tmp_path)
    for seed in range(3):
        fake_run(work_dir, 'fixed', seed,
                 [record(100, [0.1, 0.2, 0.3, 0.8], PRIOR),
                  record(300, [0.1, 0.2, 0.3, 2.0], PRIOR)],
                 [[300, 0.8 + 0.01 * seed]], dict(zip(TERMS, PRIOR)))
    tool = load_analyze_terms()
    text = tool.main(['--work-dir', work_dir, '--window', '1'])
    assert '2.000' in text and '1.400' not in text
    for prior in (['5', '1', '1', '0.5', '2'], ['5', '1', '1']):
        with pytest.raises(SystemExit, match=r"--prior needs one lambda per "
                           r"term \['coord', 'pred', 'obj', 'noobj'\]"):
            tool.main(['--work-dir', work_dir, '--prior', *prior])
