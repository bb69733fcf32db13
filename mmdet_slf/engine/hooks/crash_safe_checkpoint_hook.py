# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""mmengine's ``CheckpointHook``, crash-safe: atomic saves and an automatic
resume that skips a checkpoint it cannot read."""
import os.path as osp

from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.hooks import CheckpointHook
from mmdet.registry import HOOKS

from ..checkpoint import (ATOMIC_BACKEND, CheckpointError, atomic_write,
                          find_resume_checkpoint, remove_stale_temporaries)
from ..checkpoint.resume import LAST_CHECKPOINT


@HOOKS.register_module()
class CrashSafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints survive a kill at any moment.

    mmengine 0.10.7 removes the oldest checkpoint (``max_keep_ckpts``)
    before it writes the new one, writes the new one in place and then
    points ``last_checkpoint`` at it: a process killed during the save
    leaves ``last_checkpoint`` naming a truncated file, and with
    ``max_keep_ckpts=1`` no checkpoint at all. This hook instead

    - writes every checkpoint to a temporary file in the same folder,
      flushes, fsyncs and renames it (:class:`AtomicLocalBackend`);
    - rewrites ``last_checkpoint`` the same way, after that rename;
    - removes the checkpoint that ``max_keep_ckpts`` expires only then;
    - on an automatic resume (``resume=True`` without ``load_from``,
      ``tools/train.py --resume`` without a path) checks the file
      ``last_checkpoint`` names, warns naming it and the problem when it
      cannot be read, and resumes from the newest readable checkpoint
      before it; with none readable it stops and lists what it tried. An
      explicit ``load_from`` is loaded as given and fails with its error.

    Rank 0 writes and picks the file to resume from; every rank resumes from
    that file. Everything else, arguments included, is ``CheckpointHook``'s.
    Checkpoints go to other storage (a URI ``out_dir``, ``backend_args`` or
    ``file_client_args``) through that storage's backend, not atomically.

    Args:
        **kwargs: Arguments of mmengine's ``CheckpointHook``.
    """

    atomic = False  # decided in before_train, when out_dir is known

    def before_run(self, runner) -> None:
        """Choose the checkpoint of an automatic resume (rank 0) and make
        every rank resume from it (``load_or_resume`` runs after this)."""
        if not getattr(runner, '_resume', False) or \
                getattr(runner, '_load_from', None) is not None:
            return
        choice = [None]
        if is_main_process():
            try:
                path, skipped = find_resume_checkpoint(runner.work_dir,
                                                       self.filename_tmpl)
                choice = [dict(path=path, skipped=skipped)]
            except CheckpointError as error:
                choice = [dict(error=str(error))]
        broadcast_object_list(choice, src=0)
        choice = choice[0]
        if 'error' in choice:
            raise CheckpointError(choice['error'])
        for path, problem in choice['skipped']:
            runner.logger.warning(
                f'auto-resume skips checkpoint {path}: {problem}')
        if choice['path'] is None:
            return  # no last_checkpoint: mmengine starts afresh
        if choice['skipped']:
            runner.logger.warning(
                f'auto-resume continues from {choice["path"]}, the newest '
                'readable checkpoint')
        # mmengine resumes from load_from when it is set; an automatic
        # resume would read last_checkpoint again.
        runner._load_from = choice['path']

    def before_train(self, runner) -> None:
        """Save through :class:`AtomicLocalBackend` when the checkpoints go
        to a local folder, and delete temporary files of a killed save."""
        out_dir = self.out_dir if self.out_dir is not None else \
            runner.work_dir
        self.atomic = self.backend_args is None and \
            self.file_client_args is None and '://' not in str(out_dir)
        if self.atomic:
            self.backend_args = dict(backend=ATOMIC_BACKEND)
        super().before_train(runner)
        if self.atomic and is_main_process():
            # last_checkpoint is written in the work dir, the checkpoints in
            # out_dir/<work dir name> when out_dir is set.
            for directory in dict.fromkeys([self.out_dir, runner.work_dir]):
                for path in remove_stale_temporaries(directory):
                    runner.logger.info(
                        f'removed {path}, left by a save that was '
                        'interrupted')

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """``CheckpointHook``'s, reordered: save, then ``last_checkpoint``,
        then remove the checkpoint ``max_keep_ckpts`` expires."""
        if not self.atomic:
            return super()._save_checkpoint_with_step(runner, step, meta)
        expired = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                expired = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            # Saved in this checkpoint's message hub, as mmengine does, with
            # the expired step still first: a run killed before the removal
            # below resumes with one step too many listed, and
            # CheckpointHook.before_train removes its file then.
            pending = [] if expired in (None, step) else [expired]
            runner.message_hub.update_info(
                'keep_ckpt_ids', pending + list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if expired is not None:
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        if not is_main_process():
            return
        atomic_write(osp.join(runner.work_dir, LAST_CHECKPOINT),
                     str(self.last_ckpt).encode())
        if expired is not None and expired != step:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(expired))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # DeepSpeed checkpoints
                self.file_backend.rmtree(path)
