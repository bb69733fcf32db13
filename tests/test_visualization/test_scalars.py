# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Reading logged scalars: which run of a work dir is read, which step a
value is logged at, and which lines and values are skipped."""
import json
import os

import numpy as np
import pytest

from mmdet_slf.visualization import (find_scalars_file, load_scalars,
                                     scalar_series, slf_series,
                                     weight_shares)


def write_lines(path, lines):
    path.parent.mkdir(parents=True)
    path.write_text(''.join(line + '\n' for line in lines))
    return str(path)


def test_the_latest_run_is_the_latest_by_name_not_by_file_time(tmp_path):
    """Runs are ordered by their timestamp directory name: a run whose
    file was touched after a later run's is still the earlier run."""
    record = json.dumps({'iter': 1, 'slf_w_a': 1.0})
    later = write_lines(
        tmp_path / '20240102_000000' / 'vis_data' / 'scalars.json', [record])
    earlier = write_lines(
        tmp_path / '20240101_000000' / 'vis_data' / 'scalars.json', [record])
    os.utime(later, (1_000_000, 1_000_000))
    os.utime(earlier, (2_000_000, 2_000_000))
    assert find_scalars_file(str(tmp_path)) == later


def test_only_a_cut_off_last_line_is_skipped(tmp_path):
    """Of three lines, a damaged second one (not the last) is an error
    naming line 2; the same damage on the third line is a warning and the
    two whole records are read."""
    good = json.dumps({'iter': 1, 'slf_w_a': 1.0})
    path = write_lines(tmp_path / 'a' / 'scalars.json',
                       [good, '{"iter": 2,', good])
    with pytest.raises(ValueError, match='line 2: '):
        load_scalars(path)
    path = write_lines(tmp_path / 'b' / 'scalars.json',
                       [good, good, '{"iter": 3,'])
    with pytest.warns(UserWarning, match='reading the 2 records'):
        assert len(load_scalars(path)) == 2


def test_scalar_series_takes_step_before_iter_and_skips_non_numbers():
    """A validation line carries the training iteration in ``step``; a
    line whose value is not a number (or missing) is skipped."""
    records = [{'iter': 7, 'step': 300, 'pascal_voc/mAP': 0.25},
               {'iter': 9, 'pascal_voc/mAP': 0.5},
               {'step': 500, 'pascal_voc/mAP': 'n/a'},
               {'step': 600, 'pascal_voc/mAP': None},
               {'step': 700, 'loss': 1.0}]
    steps, values = scalar_series(records, 'pascal_voc/mAP')
    assert steps.tolist() == [300, 9]
    assert values.tolist() == [0.25, 0.5]


def test_slf_series_takes_iter_before_step_and_skips_non_numbers():
    """Train lines are plotted against ``iter``; nested keys are kept and
    a non-numeric ``slf_`` value is skipped."""
    records = [{'iter': 10, 'step': 2, 'slf_w_a': 1.5, 'slf_note': 'x',
                'head.slf_w_b': 2.0},
               {'step': 20, 'slf_w_a': 0.5},
               {'slf_w_a': 9.0}]
    series = slf_series(records)
    assert sorted(series) == ['head.slf_w_b', 'slf_w_a']
    assert series['slf_w_a'][0].tolist() == [10, 20]
    assert series['slf_w_a'][1].tolist() == [1.5, 0.5]
    assert series['head.slf_w_b'][0].tolist() == [10]


def test_a_series_is_used_as_given():
    """``slf_series`` output passed on gives the same shares as the
    records it came from (pred at 1/4 of its prior share: 0.25)."""
    prior = dict(coord=3.0, pred=1.0)
    records = [dict(iter=5, slf_w_coord=3.0, slf_w_pred=1.0),
               dict(iter=6, slf_w_coord=3.75, slf_w_pred=0.25)]
    for source in (records, slf_series(records)):
        shares = weight_shares(source, prior)
        np.testing.assert_array_equal(shares['pred'][0], [5, 6])
        np.testing.assert_allclose(shares['pred'][1], [1.0, 0.25])
