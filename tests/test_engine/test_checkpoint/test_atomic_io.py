# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""atomic_write: the next write of a file deletes the temporary files that
killed writers of it on this host left, and nothing else."""
import os
import subprocess
import sys
import uuid

import pytest

from mmdet_slf.engine.checkpoint import atomic_io


def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, '-c', 'pass'])
    child.wait()
    return child.pid


def test_a_killed_writers_temporary_file_goes_with_the_next_write(
        tmp_path):
    host = atomic_io._host_tag()
    other_host = 'ffffffff' if host != 'ffffffff' else '00000000'
    gone, alive = dead_pid(), os.getppid()
    names = dict(
        dead=f'.runs.json.tmp-{gone}-{host}-abcdef12',
        alive=f'.runs.json.tmp-{alive}-{host}-abcdef12',
        other_host=f'.runs.json.tmp-{gone}-{other_host}-abcdef12',
        old_form=f'.runs.json.tmp-{gone}-abcdef12',
        other_file=f'.other.json.tmp-{gone}-{host}-abcdef12')
    for name in names.values():
        (tmp_path / name).write_bytes(b'part')
    atomic_io.atomic_write(str(tmp_path / 'runs.json'), b'{}')
    assert (tmp_path / 'runs.json').read_bytes() == b'{}'
    assert sorted(os.listdir(tmp_path)) == sorted(
        ['runs.json'] + [name for key, name in names.items()
                         if key != 'dead'])


def test_the_temporary_name_has_pid_host_and_a_random_part(
        tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(atomic_io.os, 'replace', replace)
    for _ in range(2):
        atomic_io.atomic_write(str(tmp_path / 'a.txt'), b'x')
    prefix = f'.a.txt.tmp-{os.getpid()}-{atomic_io._host_tag()}-'
    assert all(name.startswith(prefix) and len(name) == len(prefix) + 8
               for name in seen)
    assert seen[0] != seen[1]
    assert os.listdir(tmp_path) == ['a.txt']


def test_a_leftover_that_cannot_be_removed_does_not_fail_the_write(
        tmp_path, monkeypatch):
    """The new content is in place before the clean-up runs: a leftover
    another user owns, or a name that only looks like a process id, stays
    and the write still succeeds."""
    host = atomic_io._host_tag()
    owned = tmp_path / f'.runs.json.tmp-{dead_pid()}-{host}-abcdef12'
    odd = tmp_path / f'.runs.json.tmp-\u00b2-{host}-abcdef12'  # '²'
    for path in (owned, odd):
        path.write_bytes(b'part')

    def refuse(path):
        raise PermissionError(13, 'Operation not permitted', path)

    monkeypatch.setattr(atomic_io.os, 'remove', refuse)
    atomic_io.atomic_write(str(tmp_path / 'runs.json'), b'{}')
    assert (tmp_path / 'runs.json').read_bytes() == b'{}'
    assert owned.exists() and odd.exists()


def test_the_tag_tells_process_id_namespaces_apart(monkeypatch):
    """Containers may share a host name but not their process ids: the
    namespace is part of the tag."""
    tags = []
    for inode in (4026531836, 4026532999):
        atomic_io._host_tag.cache_clear()
        real_stat = os.stat
        monkeypatch.setattr(
            atomic_io.os, 'stat', lambda path, inode=inode: os.stat_result(
                (0, inode) + (0, ) * 8) if path == '/proc/self/ns/pid'
            else real_stat(path))
        tags.append(atomic_io._host_tag())
    monkeypatch.undo()
    atomic_io._host_tag.cache_clear()
    assert tags[0] != tags[1] and all(len(tag) == 8 for tag in tags)


def test_the_file_is_synced_renamed_then_its_folder_synced(
        tmp_path, monkeypatch):
    """The order that makes the write durable and atomic: fsync the
    temporary file, rename it over the target, fsync the folder. Without
    the first fsync a crash can leave the new name on empty data; without
    the last the rename itself may not survive one."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(('fsync', os.fstat(fd)))
        real_fsync(fd)

    def replace(src, dst):
        events.append(('replace', os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(atomic_io.os, 'fsync', fsync)
    monkeypatch.setattr(atomic_io.os, 'replace', replace)
    target = tmp_path / 'iter_1.pth'
    atomic_io.atomic_write(str(target), b'weights')
    assert [event[0] for event in events] == ['fsync', 'replace', 'fsync']
    assert os.path.samestat(events[0][1], os.stat(target))
    assert events[1][1] == 'iter_1.pth'
    assert os.path.samestat(events[2][1], os.stat(tmp_path))
    assert target.read_bytes() == b'weights'


@pytest.mark.parametrize('error', [OSError(28, 'No space left on device'),
                                   KeyboardInterrupt()])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(
        tmp_path, monkeypatch, error):
    """An error before the rename, including an interrupt (Ctrl-C is a
    BaseException, not an Exception), removes the temporary file and
    leaves the target's old content."""
    target = tmp_path / 'runs.json'
    target.write_bytes(b'old')

    def fail(fd):
        raise error

    monkeypatch.setattr(atomic_io.os, 'fsync', fail)
    with pytest.raises(type(error)):
        atomic_io.atomic_write(str(target), b'new')
    assert os.listdir(tmp_path) == ['runs.json']
    assert target.read_bytes() == b'old'


def test_a_temporary_name_that_exists_is_never_written_into(
        tmp_path, monkeypatch):
    """The temporary file is created exclusively: should its name exist
    (another writer's), the write fails instead of overwriting it."""
    monkeypatch.setattr(atomic_io.uuid, 'uuid4',
                        lambda: uuid.UUID(int=0xabcdef12 << 96))
    name = f'.a.txt.tmp-{os.getpid()}-{atomic_io._host_tag()}-abcdef12'
    (tmp_path / name).write_bytes(b'theirs')
    with pytest.raises(FileExistsError):
        atomic_io.atomic_write(str(tmp_path / 'a.txt'), b'mine')
    assert (tmp_path / name).read_bytes() == b'theirs'
    assert not (tmp_path / 'a.txt').exists()


def test_process_ids_that_cannot_be_asked_about_count_as_alive(
        tmp_path, monkeypatch):
    """A leftover goes only when its writer is known to be gone: a process
    of another user (PermissionError), a number too large for a process
    id (OverflowError), and any id on Windows (where ``os.kill`` would end
    the process) count as alive, so their files stay."""
    host = atomic_io._host_tag()
    gone = dead_pid()
    huge = tmp_path / f'.runs.json.tmp-{10**30}-{host}-abcdef12'
    foreign = tmp_path / f'.runs.json.tmp-{gone}-{host}-abcdef12'
    for path in (huge, foreign):
        path.write_bytes(b'part')
    real_kill = os.kill

    def kill(pid, signal):
        if pid == gone:
            raise PermissionError(1, 'Operation not permitted')
        return real_kill(pid, signal)

    monkeypatch.setattr(atomic_io.os, 'kill', kill)
    assert atomic_io.remove_dead_temporaries(
        str(tmp_path / 'runs.json')) == []
    assert huge.exists() and foreign.exists()
    monkeypatch.undo()

    def never(pid, signal):
        raise AssertionError('os.kill must not be called on Windows')

    monkeypatch.setattr(atomic_io.os, 'kill', never)
    monkeypatch.setattr(atomic_io.os, 'name', 'nt')
    alive = atomic_io._process_alive(gone)
    monkeypatch.undo()
    assert alive is True


def test_a_name_with_extra_fields_is_of_unknown_form_and_stays(tmp_path):
    """Only ``.<name>.tmp-<pid>-<host>-<random>`` is this module's: a
    leftover with more dash-separated fields is left alone."""
    host = atomic_io._host_tag()
    odd = tmp_path / f'.runs.json.tmp-{dead_pid()}-{host}-abcdef12-x'
    odd.write_bytes(b'part')
    assert atomic_io.remove_dead_temporaries(
        str(tmp_path / 'runs.json')) == []
    assert odd.exists()


def test_remove_stale_temporaries_reports_only_what_it_removed(
        tmp_path, monkeypatch):
    """A temporary file that vanishes between the listing and the removal
    (its writer renamed it) is not reported as removed."""
    kept = tmp_path / '.a.pth.tmp-1-abcdef12-00000000'
    vanished = tmp_path / '.b.pth.tmp-1-abcdef12-00000000'
    for path in (kept, vanished):
        path.write_bytes(b'part')
    real_remove = os.remove

    def remove(path):
        if path == str(vanished):
            raise FileNotFoundError(2, 'No such file or directory', path)
        real_remove(path)

    monkeypatch.setattr(atomic_io.os, 'remove', remove)
    assert atomic_io.remove_stale_temporaries(str(tmp_path)) == [str(kept)]
    assert not kept.exists()
