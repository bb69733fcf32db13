# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Every benchmark page of docs/ that keeps its runs
(``docs/<page>/runs.json``) is what ``tools/benchmark.py`` writes from them
today, to the character: the command the page quotes, with ``--archive``
naming its own runs, gives the page again, less the notes added by hand
(``> Note added ...``), and the same archive. A change to the statistics,
the rules that choose the default or the tables that moves a published
number fails here."""
import glob
import json
import os.path as osp
import re
import shlex
import sys

import pytest
from conftest import REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import benchmark  # noqa: E402

ARCHIVES = sorted(glob.glob(osp.join(REPO_ROOT, 'docs', '*', 'runs.json')))
COMMAND = re.compile(r'this page written with `python tools/benchmark\.py '
                     r'(--report-only[^`]*)`')
# a note added by hand after the page was written: one '> ' paragraph
NOTE = re.compile(r'^> .*\n\n', re.M)
# what names where the runs were read or the page written
WHERE = ('--archive', '--work-dir', '--out')


def page_argv(command: str) -> list:
    """The page's command less its ``--archive``, ``--work-dir`` and
    ``--out`` and their values."""
    argv, words = [], shlex.split(command)
    index = 0
    while index < len(words):
        if words[index] in WHERE:
            index += 1
            while index < len(words) and not words[index].startswith('--'):
                index += 1
        else:
            argv.append(words[index])
            index += 1
    return argv


def test_page_argv_drops_only_where_the_runs_and_page_are():
    assert page_argv('--report-only --strategies fixed dwa --seeds 0 1 '
                     '--max-iters 1200 --out docs/x.md --archive a/runs.json '
                     'b/runs.json --work-dir w --num-val 300') == [
                         '--report-only', '--strategies', 'fixed', 'dwa',
                         '--seeds', '0', '1', '--max-iters', '1200',
                         '--num-val', '300'
                     ]


def test_there_are_pages_to_check():
    """The pages of the README's verdicts keep their runs."""
    names = {osp.basename(osp.dirname(path)) for path in ARCHIVES}
    assert {'results-kept', 'results-1200-kept', 'results-800',
            'results-1200-lr16x'} <= names


@pytest.mark.parametrize(
    'archive', ARCHIVES,
    ids=[osp.basename(osp.dirname(path)) for path in ARCHIVES])
def test_a_published_page_is_written_again_from_its_runs(archive, tmp_path):
    name = osp.basename(osp.dirname(archive))
    with open(osp.join(REPO_ROOT, 'docs', name + '.md')) as f:
        published = f.read()
    commands = COMMAND.findall(published)
    assert len(commands) == 1, f'{name}.md quotes no single page command'
    out = str(tmp_path / 'docs' / f'{name}.md')
    benchmark.main(page_argv(commands[0]) + ['--archive', archive, '--out',
                                             out])
    with open(out) as f:
        # the page quotes where it was written as its command's --out
        written = f.read().replace(osp.relpath(out, REPO_ROOT),
                                   f'docs/{name}.md')
    assert written == NOTE.sub('', published)
    with open(archive) as f, open(osp.join(tmp_path, 'docs', name,
                                           'runs.json')) as g:
        assert json.load(g) == json.load(f)
