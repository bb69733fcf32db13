# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Every relative link of the README and docs/ leads somewhere: the file
exists, and a ``#fragment`` names a heading of it (or an ``<a id>``); and
every test a page names as ``test_x.py::test_y`` exists."""
import glob
import os.path as osp
import re

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PAGES = sorted(
    [osp.join(REPO, 'README.md')] +
    glob.glob(osp.join(REPO, 'docs', '**', '*.md'), recursive=True))
LINK = re.compile(r'\]\(([^)\s]+)\)')
FENCE = re.compile(r'^```.*?^```', re.M | re.S)
TEST_REF = re.compile(r'\b(test_\w+\.py)::(test_\w+)')


def anchor(heading: str) -> str:
    """GitHub's id of a heading: lower case, punctuation other than ``-``
    and ``_`` dropped, spaces as ``-``."""
    text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return text.replace(' ', '-')


def anchors(path: str) -> set:
    with open(path) as f:
        text = FENCE.sub('', f.read())
    return {anchor(m) for m in re.findall(r'^#+ (.+)$', text, re.M)} | \
        set(re.findall(r'<a id="([^"]+)">', text))


def test_anchor_follows_githubs_rule():
    assert anchor('CUDA graphs of the weighting, 2026-11-27') == \
        'cuda-graphs-of-the-weighting-2026-11-27'
    assert anchor('`SLFWeighting` options') == 'slfweighting-options'
    assert anchor('The CPU demo: what differs') == 'the-cpu-demo-what-differs'


@pytest.mark.parametrize('page', PAGES,
                         ids=[osp.relpath(p, REPO) for p in PAGES])
def test_relative_links_resolve(page):
    with open(page) as f:
        text = FENCE.sub('', f.read())
    broken = []
    for target in LINK.findall(text):
        if re.match(r'[a-z]+:', target):  # http(s), mailto
            continue
        path, _, fragment = target.partition('#')
        path = osp.normpath(osp.join(osp.dirname(page), path)) \
            if path else page
        if not osp.exists(path):
            broken.append(f'{target}: no such file')
        elif fragment and path.endswith('.md') and \
                fragment not in anchors(path):
            broken.append(f'{target}: no heading #{fragment}')
    assert not broken, broken


def defined_tests(name: str) -> set:
    """The test functions defined in the test files called ``name``."""
    found = set()
    for path in glob.glob(osp.join(REPO, 'tests', '**', name),
                          recursive=True):
        with open(path) as f:
            found |= set(re.findall(r'^def (test_\w+)\(', f.read(), re.M))
    return found


def test_defined_tests_reads_the_definitions():
    """This file's four tests, and no helper; nothing for a file that is
    not there."""
    assert defined_tests('test_docs.py') == {
        'test_anchor_follows_githubs_rule', 'test_relative_links_resolve',
        'test_defined_tests_reads_the_definitions', 'test_named_tests_exist'}
    assert defined_tests('test_nothing_here.py') == set()


@pytest.mark.parametrize('page', PAGES,
                         ids=[osp.relpath(p, REPO) for p in PAGES])
def test_named_tests_exist(page):
    """A page that says which test pins a behaviour (the table of
    docs/troubleshooting.md) names one that is there: a renamed or
    deleted test breaks the page."""
    with open(page) as f:
        refs = set(TEST_REF.findall(f.read()))
    missing = [f'{file}::{name}' for file, name in sorted(refs)
               if name not in defined_tests(file)]
    assert not missing, missing
