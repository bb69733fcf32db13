# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""CrashSafeCheckpointHook on a toy model: a save killed at any point never
leaves last_checkpoint naming a partial file, the expired checkpoint goes
only after the new one is complete, and auto-resume walks back past an
unreadable latest checkpoint (an explicit path still fails)."""
import functools
import logging
import os
import os.path as osp
import random
import shutil
import signal
import uuid
from types import SimpleNamespace

import pytest
import torch
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

from mmdet_slf.engine.checkpoint import (CheckpointError, checkpoint_problem,
                                         enable_safe_loading,
                                         find_resume_checkpoint,
                                         read_last_checkpoint,
                                         stale_temporaries)
from mmdet_slf.engine.hooks import CrashSafeCheckpointHook

# mmengine's checkpoints hold HistoryBuffers: torch >= 2.6 loads them only
# with the safe globals that the project's configs switch on.
enable_safe_loading()


class ToyModel(BaseModel):
    """A linear regression, enough to give a checkpoint every part
    (weights, optimizer momentum, message hub)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        outputs = self.linear(inputs).squeeze(-1)  # [batch]
        if mode == 'loss':
            return dict(loss=((outputs - targets)**2).mean())
        return outputs


class ToyDataset(Dataset):

    def __init__(self, size: int = 8) -> None:
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(size, 8, generator=generator)
        self.targets = torch.randn(size, generator=generator)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=self.inputs[index], targets=self.targets[index])


def toy_runner(work_dir: str,
               max_iters: int,
               hook_type=CrashSafeCheckpointHook,
               max_keep_ckpts: int = -1,
               resume: bool = False,
               load_from=None) -> Runner:
    """A runner that saves ``iter_<n>.pth`` after every iteration."""
    return Runner(
        model=ToyModel(),
        work_dir=work_dir,
        experiment_name=f'toy_{uuid.uuid4().hex[:8]}',
        train_dataloader=dict(
            dataset=ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=hook_type(
                interval=1, by_epoch=False, max_keep_ckpts=max_keep_ckpts),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        resume=resume,
        load_from=load_from)


def truncate(path: str, keep: float = 0.5) -> None:
    with open(path, 'rb') as file:
        data = file.read()
    with open(path, 'wb') as file:
        file.write(data[:int(len(data) * keep)])


def final_weights(runner) -> dict:
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def test_save_order_and_max_keep(tmp_path, monkeypatch):
    events = []
    replace, remove = os.replace, os.remove

    def spy_replace(source, target):
        events.append(('rename', osp.basename(source)[:1] == '.',
                       osp.basename(target)))
        replace(source, target)

    def spy_remove(path):
        events.append(('remove', osp.basename(path)))
        remove(path)

    monkeypatch.setattr(os, 'replace', spy_replace)
    monkeypatch.setattr(os, 'remove', spy_remove)
    work_dir = str(tmp_path)
    runner = toy_runner(work_dir, 3, max_keep_ckpts=2)
    runner.train()
    # iter_1.pth is gone, so the next checkpoint lists only 2 and 3.
    assert runner.message_hub.get_info('keep_ckpt_ids') == [2, 3]
    # Checkpoint, then last_checkpoint (each from a hidden temporary file),
    # then the expired checkpoint.
    assert events[-3:] == [('rename', True, 'iter_3.pth'),
                           ('rename', True, 'last_checkpoint'),
                           ('remove', 'iter_1.pth')]
    names = sorted(n for n in os.listdir(work_dir) if n.endswith('.pth'))
    assert names == ['iter_2.pth', 'iter_3.pth']
    assert read_last_checkpoint(work_dir) == osp.join(work_dir, 'iter_3.pth')
    assert stale_temporaries(work_dir) == []
    assert oct(os.stat(osp.join(work_dir, 'iter_3.pth')).st_mode & 0o777) \
        == oct(0o666 & ~current_umask())


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def cut_write_at(offset: int, nth: int):
    """An ``os.fdopen`` whose ``nth`` opened file (1: the checkpoint,
    2: last_checkpoint) is killed after ``offset`` bytes."""
    fdopen = os.fdopen
    opened = []

    class Cut:

        def __init__(self, file) -> None:
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.file.__exit__(*exc)

        def write(self, data):
            self.file.write(data[:offset])
            self.file.flush()
            kill_self()

        def __getattr__(self, name):
            return getattr(self.file, name)

    def patched(fd, *args, **kwargs):
        opened.append(fd)
        file = fdopen(fd, *args, **kwargs)
        return Cut(file) if len(opened) == nth else file

    return patched


def mmengine_put_cut_at(offset: int):
    """mmengine's in-place ``LocalBackend.put``, killed after ``offset``
    bytes."""

    def put(self, obj, filepath):
        with open(filepath, 'wb') as file:
            file.write(obj[:offset])
            file.flush()
        kill_self()

    return put


def save_in_killed_child(runner, inject) -> None:
    """Fork; the child injects its fault and saves the next checkpoint."""
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            inject()
            hook = next(h for h in runner.hooks
                        if isinstance(h, CheckpointHook))
            hook._save_checkpoint(runner)
        finally:
            os._exit(3)  # the fault did not fire
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and \
        os.WTERMSIG(status) == signal.SIGKILL, status


@pytest.mark.parametrize('hook_type', [CrashSafeCheckpointHook,
                                       CheckpointHook])
def test_killed_save_never_leaves_a_partial_last_checkpoint(
        tmp_path, hook_type):
    work_dir, backup = str(tmp_path / 'work'), str(tmp_path / 'backup')
    # max_keep_ckpts=1: mmengine deletes iter_2.pth before writing iter_3.
    runner = toy_runner(work_dir, 2, hook_type=hook_type, max_keep_ckpts=1)
    runner.train()
    size = os.path.getsize(osp.join(work_dir, 'iter_2.pth'))
    shutil.copytree(work_dir, backup)
    offsets = random.Random(0).sample(range(1, size), 5) + [0, size]
    if hook_type is CrashSafeCheckpointHook:
        faults = [
            ('between fsync and rename', lambda: setattr(
                os, 'replace', lambda *args: kill_self())),
            ('between rename and last_checkpoint', lambda: setattr(
                os, 'fdopen', cut_write_at(0, 2))),
            ('in last_checkpoint', lambda: setattr(
                os, 'fdopen', cut_write_at(10, 2))),
            ('before removing iter_2', lambda: setattr(
                os, 'remove', lambda *args: kill_self())),
        ]
        # Last: a kill inside the checkpoint, whose temporary file the
        # resumed run below has to delete.
        faults += [(f'checkpoint byte {offset}', lambda o=offset: setattr(
            os, 'fdopen', cut_write_at(o, 1))) for offset in offsets]
    else:
        faults = [(f'checkpoint byte {offset}', lambda o=offset: setattr(
            LocalBackend, 'put', mmengine_put_cut_at(o)))
                  for offset in offsets[:2]]
    outcomes = []
    for name, inject in faults:
        shutil.rmtree(work_dir)
        shutil.copytree(backup, work_dir)
        save_in_killed_child(runner, inject)
        latest = read_last_checkpoint(work_dir)
        outcomes.append((name, osp.basename(latest),
                         checkpoint_problem(latest)))
    if hook_type is CheckpointHook:
        # The control: mmengine's hook loses every checkpoint.
        assert all(problem == 'the file does not exist'
                   for _, _, problem in outcomes), outcomes
        return
    for name, latest, problem in outcomes:
        assert problem is None, (name, latest, problem)
        # iter_3.pth is named only once it is complete and renamed.
        assert latest == ('iter_3.pth' if name == 'before removing iter_2'
                          else 'iter_2.pth'), name
    # The killed saves left temporary files; the next run deletes them.
    assert stale_temporaries(work_dir)
    toy_runner(work_dir, 3, max_keep_ckpts=1, resume=True).train()
    assert stale_temporaries(work_dir) == []


def checkpoint_names(work_dir: str) -> list:
    return sorted(n for n in os.listdir(work_dir) if n.endswith('.pth'))


def test_a_resumed_run_keeps_max_keep_ckpts(tmp_path):
    work_dir = str(tmp_path)
    toy_runner(work_dir, 3, max_keep_ckpts=2).train()
    toy_runner(work_dir, 6, max_keep_ckpts=2, resume=True).train()
    assert checkpoint_names(work_dir) == ['iter_5.pth', 'iter_6.pth']


def test_a_checkpoint_whose_removal_was_killed_goes_on_resume(tmp_path):
    """Killed after iter_3.pth and last_checkpoint were written, before
    iter_2.pth (expired by max_keep_ckpts=1) was removed: iter_3.pth still
    lists step 2, so the resumed run removes it."""
    work_dir = str(tmp_path)
    runner = toy_runner(work_dir, 2, max_keep_ckpts=1)
    runner.train()
    save_in_killed_child(
        runner, lambda: setattr(os, 'remove', lambda *args: kill_self()))
    assert checkpoint_names(work_dir) == ['iter_2.pth', 'iter_3.pth']
    assert read_last_checkpoint(work_dir) == osp.join(work_dir, 'iter_3.pth')
    toy_runner(work_dir, 4, max_keep_ckpts=1, resume=True).train()
    assert checkpoint_names(work_dir) == ['iter_4.pth']


def test_auto_resume_skips_an_unreadable_latest(tmp_path):
    work_dir, reference_dir = str(tmp_path / 'work'), str(tmp_path / 'ref')
    toy_runner(work_dir, 3).train()
    os.makedirs(reference_dir)
    shutil.copy(osp.join(work_dir, 'iter_2.pth'), reference_dir)
    truncate(osp.join(work_dir, 'iter_3.pth'))
    path, skipped = find_resume_checkpoint(work_dir, 'iter_{}.pth')
    assert path == osp.join(work_dir, 'iter_2.pth')
    assert [osp.basename(p) for p, _ in skipped] == ['iter_3.pth']
    assert skipped[0][1].startswith(
        'the file is truncated or not a PyTorch checkpoint (RuntimeError: ')

    resumed = toy_runner(work_dir, 5, resume=True)
    resumed.train()
    log = open(osp.join(resumed.log_dir, f'{resumed.timestamp}.log')).read()
    assert f'auto-resume skips checkpoint {work_dir}/iter_3.pth: the file ' \
        'is truncated or not a PyTorch checkpoint (RuntimeError: ' \
        'PytorchStreamReader failed reading zip archive' in log
    assert f'auto-resume continues from {work_dir}/iter_2.pth' in log
    # The reference resumes from its copy of iter_2.pth by name.
    reference = toy_runner(reference_dir, 5, resume=True,
                           load_from=osp.join(reference_dir, 'iter_2.pth'))
    reference.train()
    expected = final_weights(reference)
    for key, value in final_weights(resumed).items():
        assert torch.equal(value, expected[key]), key
    # The broken iter_3.pth was replaced by a complete one on the way.
    assert checkpoint_problem(osp.join(work_dir, 'iter_3.pth')) is None


def test_auto_resume_without_a_readable_checkpoint_lists_them(tmp_path):
    work_dir = str(tmp_path)
    toy_runner(work_dir, 2).train()
    truncate(osp.join(work_dir, 'iter_2.pth'))
    with open(osp.join(work_dir, 'iter_1.pth'), 'wb') as file:
        file.write(b'not a checkpoint')
    with pytest.raises(CheckpointError) as error:
        toy_runner(work_dir, 3, resume=True).train()
    message = str(error.value)
    assert message.startswith(
        f'cannot resume automatically in {work_dir}: no readable checkpoint')
    assert f'  {work_dir}/iter_2.pth: the file is truncated' in message
    assert f'  {work_dir}/iter_1.pth: the file is truncated or not a ' \
        'PyTorch checkpoint (UnpicklingError' in message
    assert message.index('iter_2.pth:') < message.index('iter_1.pth:')


def test_explicit_resume_of_an_unreadable_file_fails(tmp_path):
    work_dir = str(tmp_path)
    toy_runner(work_dir, 2).train()
    bad = osp.join(work_dir, 'iter_2.pth')
    truncate(bad)
    with pytest.raises(CheckpointError,
                       match=f'cannot read checkpoint {bad}: the file is '
                       'truncated'):
        toy_runner(work_dir, 3, resume=True, load_from=bad).train()


def test_damaged_zip_record_is_unreadable(tmp_path):
    path = str(tmp_path / 'flipped.pth')
    torch.save(dict(weight=torch.arange(1000.)), path)
    data = bytearray(open(path, 'rb').read())
    data[len(data) // 2] ^= 0xFF  # inside the tensor's record
    open(path, 'wb').write(bytes(data))
    assert 'fails its CRC-32 check' in checkpoint_problem(path)


def test_auto_resume_leaves_a_checkpoint_on_other_storage_to_mmengine(
        tmp_path):
    """``last_checkpoint`` naming a URI (a hook with out_dir='s3://...'):
    the file is not on this disk, so it is not checked here; mmengine's
    loader of that storage reads it, as without this hook."""
    work_dir = str(tmp_path)
    latest = 's3://bucket/runs/work/iter_2.pth'
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as file:
        file.write(latest)
    assert find_resume_checkpoint(work_dir, 'iter_{}.pth') == (latest, [])
    runner = SimpleNamespace(_resume=True, _load_from=None,
                             work_dir=work_dir,
                             logger=logging.getLogger('test'))
    CrashSafeCheckpointHook(interval=1, by_epoch=False).before_run(runner)
    assert runner._load_from == latest


def test_stale_temporaries_go_from_out_dir_and_work_dir(tmp_path):
    """With out_dir set the checkpoints go to out_dir/<work dir name> and
    last_checkpoint stays in the work dir: a killed save of either leaves
    its temporary file there, and the next run deletes both."""
    work_dir, out_root = tmp_path / 'work', tmp_path / 'out'
    out_dir = out_root / 'work'
    os.makedirs(work_dir)
    os.makedirs(out_dir)
    stale = [str(out_dir / '.iter_1.pth.tmp-1-abcdef12'),
             str(work_dir / '.last_checkpoint.tmp-1-abcdef12')]
    for path in stale:
        open(path, 'wb').close()
    hook_type = functools.partial(CrashSafeCheckpointHook,
                                  out_dir=str(out_root))
    toy_runner(str(work_dir), 1, hook_type=hook_type).train()
    assert [osp.exists(path) for path in stale] == [False, False]
    assert read_last_checkpoint(str(work_dir)) == str(out_dir / 'iter_1.pth')
    assert checkpoint_problem(str(out_dir / 'iter_1.pth')) is None


def test_auto_resume_only_when_asked(tmp_path, caplog):
    """``last_checkpoint`` names a readable checkpoint: a run without
    ``resume`` starts afresh (load_from stays None), an explicit
    ``load_from`` is kept as given, and an automatic resume takes the file
    without a warning, since nothing was skipped."""
    work_dir = str(tmp_path)
    path = osp.join(work_dir, 'iter_1.pth')
    torch.save(dict(meta=dict(iter=1),
                    state_dict=nn.Linear(2, 1).state_dict()), path)
    with open(osp.join(work_dir, 'last_checkpoint'), 'w') as file:
        file.write(path)
    assert checkpoint_problem(path) is None
    hook = CrashSafeCheckpointHook(interval=1, by_epoch=False)
    logger = logging.getLogger('test_auto_resume_only_when_asked')
    runs = [(False, None, None), (True, 'given.pth', 'given.pth'),
            (True, None, path)]
    for resume, load_from, expected in runs:
        runner = SimpleNamespace(_resume=resume, _load_from=load_from,
                                 work_dir=work_dir, logger=logger)
        with caplog.at_level(logging.INFO, logger=logger.name):
            hook.before_run(runner)
        assert runner._load_from == expected, (resume, load_from)
    assert caplog.text == ''


def test_a_second_save_of_a_step_expires_nothing(tmp_path):
    """mmengine may save one step twice (a best checkpoint at a regular
    one). With max_keep_ckpts=2 after iterations 1 and 2, saving step 2
    again keeps both files and the list [1, 2]; step 3 then expires 1."""
    work_dir = str(tmp_path)
    runner = toy_runner(work_dir, 2, max_keep_ckpts=2)
    runner.train()
    hook = next(h for h in runner.hooks
                if isinstance(h, CrashSafeCheckpointHook))
    hook._save_checkpoint_with_step(runner, 2, dict(epoch=0, iter=2))
    assert checkpoint_names(work_dir) == ['iter_1.pth', 'iter_2.pth']
    assert list(hook.keep_ckpt_ids) == [1, 2]
    hook._save_checkpoint_with_step(runner, 3, dict(epoch=0, iter=3))
    assert checkpoint_names(work_dir) == ['iter_2.pth', 'iter_3.pth']
    assert runner.message_hub.get_info('keep_ckpt_ids') == [2, 3]
