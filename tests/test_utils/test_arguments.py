# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""check_out_file: an output path that cannot be the file written is refused
before the work whose result it keeps."""
import argparse
import os.path as osp
import sys

import pytest
from conftest import REPO_ROOT, refusal

from mmdet_slf.utils.arguments import check_out_file

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import weighting_host_cost  # noqa: E402


def check(path):
    parser = argparse.ArgumentParser()
    parser.parse_args([])
    check_out_file(parser, path, '--out', 'name the JSON file to write')


@pytest.mark.parametrize('path, message', [
    # an unset shell variable: --out "$OUT"
    ('', "--out '' names no file"),
    # a folder to be: open() would fail after the work
    ('work_dirs/new/', "--out 'work_dirs/new/' names no file"),
    ('.', "--out '.' names no file"),
    ('work_dirs/..', "--out 'work_dirs/..' names no file"),
])
def test_a_path_that_names_no_file_is_refused(tmp_path, capsys, path,
                                              message):
    with pytest.raises(SystemExit) as exit_info:
        check(path)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message + ': name the JSON file to write' in err


def test_a_new_file_in_a_new_folder_is_accepted(tmp_path):
    check(str(tmp_path / 'new' / 'deeper' / 'out.json'))  # no error
    assert not osp.exists(tmp_path / 'new')  # made by the writer, later


def test_a_tool_refuses_an_empty_out_before_timing(capsys):
    """weighting_host_cost.py used to take --out '' and write nothing."""
    assert "--out '' names no file" in refusal(
        weighting_host_cost.parse_args, ['--out', ''], capsys)
