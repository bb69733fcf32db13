# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""resume: which checkpoints auto-resume considers, in which order, and
how it reads ``last_checkpoint``, on hand-made files (no training)."""
import os.path as osp

import torch

from mmdet_slf.engine.checkpoint.resume import (checkpoint_step,
                                                find_resume_checkpoint,
                                                older_checkpoints,
                                                read_last_checkpoint)


def save(path) -> str:
    torch.save(dict(state_dict=dict(weight=torch.zeros(1))), str(path))
    return str(path)


def test_the_step_is_read_only_from_a_name_the_template_writes():
    """Only ``filename_tmpl.format(<digits>)`` gives a step: no digits,
    anything after the template's end, or a template with two fields give
    None."""
    assert checkpoint_step('/w/iter_12.pth', 'iter_{}.pth') == 12
    assert checkpoint_step('epoch_3.pth', 'epoch_{}.pth') == 3
    assert checkpoint_step('iter_.pth', 'iter_{}.pth') is None
    assert checkpoint_step('iter_3.pth.bak', 'iter_{}.pth') is None
    assert checkpoint_step('iter_3.pth', 'epoch_{}.pth') is None
    assert checkpoint_step('e1_i', 'e{}_i{}.pth') is None


def test_older_checkpoints_are_listed_newest_first_by_step(tmp_path):
    """Steps compare as numbers (iter_10 after iter_9), only files older
    than the latest are listed, and a folder with a checkpoint's name or a
    file of the latest's own step is none of them."""
    for step in (1, 2, 9, 10, 12):
        (tmp_path / f'iter_{step}.pth').write_bytes(b'x')
    (tmp_path / 'iter_03.pth').write_bytes(b'x')  # step 3, another name
    (tmp_path / 'iter_5.pth').mkdir()
    (tmp_path / 'iter_011.pth').write_bytes(b'x')  # step 11 as well
    latest = str(tmp_path / 'iter_11.pth')
    names = [osp.basename(p) for p in older_checkpoints(latest,
                                                        'iter_{}.pth')]
    assert names == ['iter_10.pth', 'iter_9.pth', 'iter_03.pth',
                     'iter_2.pth', 'iter_1.pth']


def test_a_latest_outside_the_template_lists_every_checkpoint(tmp_path):
    """``last_checkpoint`` naming a file the template does not write (a
    hand-saved ``best.pth``): every checkpoint beside it is older."""
    for step in (1, 2):
        (tmp_path / f'iter_{step}.pth').write_bytes(b'x')
    names = [osp.basename(p) for p in older_checkpoints(
        str(tmp_path / 'best.pth'), 'iter_{}.pth')]
    assert names == ['iter_2.pth', 'iter_1.pth']


def test_last_checkpoint_is_read_without_its_line_end(tmp_path):
    """The record may end in a newline (written by hand or by a shell);
    the path is the content stripped, and an empty record is none."""
    path = save(tmp_path / 'iter_1.pth')
    record = tmp_path / 'last_checkpoint'
    record.write_text(f'{path}\n')
    assert read_last_checkpoint(str(tmp_path)) == path
    found = find_resume_checkpoint(str(tmp_path), 'iter_{}.pth')
    assert found == (path, [])
    record.write_text(' \n')
    assert read_last_checkpoint(str(tmp_path)) is None


def test_every_skipped_file_is_reported_with_its_problem(tmp_path):
    """Two unreadable newer files and a readable older one: the older is
    chosen and both skipped files are reported, newest first."""
    good = save(tmp_path / 'iter_1.pth')
    (tmp_path / 'iter_2.pth').write_bytes(b'not a checkpoint')
    (tmp_path / 'iter_3.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_3.pth'))
    path, skipped = find_resume_checkpoint(str(tmp_path), 'iter_{}.pth')
    assert path == good
    assert [osp.basename(p) for p, _ in skipped] == ['iter_3.pth',
                                                     'iter_2.pth']
    assert all(problem.startswith('the file is truncated or not a PyTorch '
                                  'checkpoint (') for _, problem in skipped)
