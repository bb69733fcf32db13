# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""``tools/slf_toy_numbers.py`` prints the synthetic numbers that
``docs/slf.md`` quotes: run it and find each printed number on the page, so
a change that moves them fails here until the page says so too."""
import contextlib
import io
import os.path as osp
import re
import sys

import pytest

from conftest import REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import slf_toy_numbers  # noqa: E402


@pytest.fixture(scope='module')
def printed():
    # capsys is per test; the tool runs once for the module's three tests
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        slf_toy_numbers.main([])
    return out.getvalue()


def page():
    with open(osp.join(REPO_ROOT, 'docs', 'slf.md')) as f:
        return ' '.join(f.read().split())  # line breaks as spaces


def test_kl_fixed_point_numbers_are_the_pages(printed):
    text = page()
    expected = re.search(r'max \|p - p\*\| = (\S+)', printed).group(1)
    assert float(expected) < 1e-4
    assert f'reaches it to {float(expected):.0e}'.replace('e-0', 'e-') \
        in text, expected
    gaps = re.findall(r'tau = \S+: max \|p - p\*\| = (\S+)', printed)
    assert len(gaps) == 4
    assert (f'within {gaps[0]} of this point at `tau = 0.5`, '
            f'{float(gaps[1]):.3f} at 1, {gaps[2]} at 2 and {gaps[3]} at 5'
            ) in text
    assert [float(g) for g in gaps] == sorted(float(g) for g in gaps)


def test_soft_sample_numbers_are_the_pages(printed):
    mean, variance = re.search(r'mean (\S+), variance (\S+)',
                               printed).groups()
    assert f'| {variance} (mean {mean}, not 0.133) |' in page()


def test_famo_and_progress_numbers_are_the_pages(printed):
    text = page()
    decayed, kept = re.findall(r'to \(([^)]*)\)\n', printed)
    assert f'to ({decayed}) in 1,200 calls' in text
    assert f'stayed at ({kept}) at 0' in text
    loose, floored = re.findall(
        r'largest \|s\| (\S+) at step 1, (\S+) at step 500', printed)
    assert (f'largest `|s|` {loose[0]} at step 1 and {loose[1]} at step '
            f'500, against {floored[0]} and {floored[1]}') in text
    assert max(map(float, floored)) < 1e-2 < min(map(float, loose))
