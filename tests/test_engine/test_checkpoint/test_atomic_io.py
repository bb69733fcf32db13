# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""atomic_write: the next write of a file deletes the temporary files that
killed writers of it on this host left, and nothing else."""
import os
import subprocess
import sys

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
