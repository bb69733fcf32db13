# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Two processes, gloo on CPU: through ``tools/dist_train.sh`` the decision
network stays identical on both ranks, logged SLF weights are the mean of
the ranks' own weights, and a NaN on one rank skips the step on both; two
ranks over batches of N train like one process over 2N; both ranks resume
past a truncated checkpoint from the same file; a rank that dies or hangs
stops the other within the configured timeout."""
import copy
import json
import math
import os
import os.path as osp
import socket
import subprocess
import sys
import time
from typing import Optional

import pytest
import torch
from reliability_helpers import (HERE, IMAGE_SIZE, REPO_ROOT, TESTS_DIR,
                                 read_log, tiny_yolo_cfg)

NUM_ITERS = 4
# Rank 1 sees a NaN 'coord' term in the first step, before it has any SLF
# weights to log: the ranks then log different keys for that step.
BAD_ITER = 0
WORLD_SIZE = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def process_env() -> dict:
    env = dict(os.environ)
    # The test-only hooks are imported by the processes from here.
    env['PYTHONPATH'] = os.pathsep.join(
        [HERE, TESTS_DIR, env.get('PYTHONPATH', '')])
    # CPU processes with gloo on any machine (one GPU cannot host 2 ranks).
    env.update(OMP_NUM_THREADS='1', MASTER_ADDR='127.0.0.1',
               PORT=str(free_port()), CUDA_VISIBLE_DEVICES='')
    # dist_train.sh calls `python`: make it this interpreter.
    env['PATH'] = os.pathsep.join(
        [osp.dirname(sys.executable), env.get('PATH', '')])
    return env


def launch(config_path: str, work_dir: str,
           *args: str) -> subprocess.CompletedProcess:
    """``bash tools/dist_train.sh CONFIG 2 --work-dir DIR [ARGS]``, as users
    run it (the script adds ``--launcher pytorch``)."""
    command = [
        'bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), config_path,
        str(WORLD_SIZE), '--work-dir', work_dir, *args
    ]
    return subprocess.run(command, env=process_env(), cwd=REPO_ROOT,
                          timeout=300, capture_output=True, text=True)


def with_test_hooks(cfg, *hooks):
    """``cfg`` importing the test-only hooks and running ``hooks`` too."""
    cfg.custom_imports = dict(
        imports=list(cfg.custom_imports['imports']) +
        ['reliability_helpers', 'dist_helpers'],
        allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.custom_hooks) + list(hooks)
    return cfg


def read_ranks(out_dir: str):
    """What :class:`RankRecordHook` wrote: per-rank records and weights."""
    records, states = [], []
    for rank in range(WORLD_SIZE):
        with open(osp.join(out_dir, f'rank{rank}.json')) as f:
            records.append(json.load(f))
        states.append(torch.load(osp.join(out_dir, f'rank{rank}.pth'),
                                 weights_only=True))
    return records, states


def per_rank_statistics(key: str) -> bool:
    """BatchNorm running statistics: per rank (no buffer broadcast)."""
    return 'running_' in key or 'num_batches_tracked' in key


# 'progress' keeps running averages of the batches' terms: one all_reduce
# per step, which the rank with the NaN must join too.
@pytest.mark.parametrize('objective', ['joint', 'progress'])
def test_two_process_gloo_training(tiny_voc_root, tmp_path, objective):
    out_dir, work_dir = str(tmp_path / 'ranks'), str(tmp_path / 'work')
    cfg = tiny_yolo_cfg(tiny_voc_root, work_dir, NUM_ITERS)
    cfg.model.bbox_head.weighting.decision_objective = objective
    with_test_hooks(cfg)
    # The configs' GPU backend: on a machine without CUDA the processes
    # fall back to gloo with a warning.
    cfg.env_cfg.dist_cfg = dict(backend='nccl')
    cfg.model.bbox_head.weighting.nonfinite = 'skip'
    cfg.optim_wrapper.type = 'SkipNonFiniteOptimWrapper'
    cfg.custom_hooks = list(cfg.custom_hooks) + [
        dict(type='InjectNonFiniteHook', term='coord', iters=[BAD_ITER],
             ranks=[1]),
        dict(type='RankRecordHook', out_dir=out_dir)
    ]
    config_path = str(tmp_path / 'dist.py')
    cfg.dump(config_path)
    result = launch(config_path, work_dir)
    assert result.returncode == 0, result.stdout[-3000:] + \
        result.stderr[-5000:]

    records, states = read_ranks(out_dir)
    assert [len(r) for r in records] == [NUM_ITERS] * WORLD_SIZE

    # The same parameters on both ranks (DDP averages the gradients); the
    # decision network and its schedule counter included. BatchNorm running
    # statistics are per rank (mmengine does not broadcast buffers).
    decision = [k for k in states[0] if 'weighting.decision_net' in k]
    assert decision
    for key, value in states[0].items():
        if not per_rank_statistics(key):
            assert torch.equal(value, states[1][key]), key
    assert int(states[0]['bbox_head.weighting.num_updates']) == \
        NUM_ITERS - 1  # the skipped step does not advance the schedule

    # Logged weights are the mean of the ranks' own weights, as
    # SLFLoggerHook documents (over the ranks that have a value: rank 1 has
    # none in its skipped first step); the ranks do differ (own images).
    keys = [k for k in records[0][0]['local'] if k.startswith('slf_w_')]
    assert len(keys) == 4
    assert not any(k in records[1][BAD_ITER]['local'] for k in keys)
    differ = 0
    for step in range(NUM_ITERS):
        local = [records[r][step]['local'] for r in range(WORLD_SIZE)]
        for key in keys + ['slf_skipped']:
            values = [values[key] for values in local if key in values]
            mean = sum(values) / len(values)
            for rank in range(WORLD_SIZE):
                logged = records[rank][step]['logged'][key]
                assert abs(logged - mean) < 1e-6, (step, key, rank)
        differ += all(k in local[1] for k in keys) and any(
            local[0][k] != local[1][k] for k in keys)
    assert differ > 0

    # Rank 1's NaN skipped the step on both ranks: no parameter moved on
    # either rank in that step (and they did in the others).
    assert records[1][BAD_ITER]['local']['slf_skipped'] == 1.0
    assert records[0][BAD_ITER]['local']['slf_skipped'] == 0.0
    for rank in range(WORLD_SIZE):
        assert records[rank][BAD_ITER]['logged']['slf_skipped'] == 0.5
        for step, record in enumerate(records[rank]):
            moved = record['digest_before'] != record['digest_after']
            assert moved == (step != BAD_ITER), (rank, step)
    log = result.stdout + result.stderr
    assert "env_cfg.dist_cfg.backend='nccl' needs GPUs; no CUDA here, " \
        'so the processes use "gloo" on CPU' in log
    assert "skipped optimizer step 1 (non-finite terms ['coord'] of " \
        'bbox_head.weighting on rank 1)' in log


# Two ranks over batches of N against one process over 2N.
PER_RANK_BATCH = 2  # N
EQUIVALENCE_ITERS = 4  # two epochs of the 8 tiny images
BASELINE_CONFIG = osp.join(REPO_ROOT, 'configs', 'fast-yolo_voc.py')
WEIGHTINGS = dict(
    fixed=None,  # the baseline's FixedWeighting, lambdas [5, 1, 1, 0.5]
    uncertainty=dict(
        type='UncertaintyWeighting',
        terms=['coord', 'pred', 'obj', 'noobj'],
        init_weights=[5.0, 1.0, 1.0, 0.5]),
    # Buffers that follow the batches: the whole batch's terms, averaged
    # over ranks, keep them equal to the single process's.
    famo=dict(
        type='FAMOWeighting',
        terms=['coord', 'pred', 'obj', 'noobj'],
        init_weights=[5.0, 1.0, 1.0, 0.5]),
    # Windows of one call, so that the weights move within the 4 steps.
    dwa=dict(
        type='DWAWeighting',
        terms=['coord', 'pred', 'obj', 'noobj'],
        window=1),
    slf_progress=dict(
        type='SLFWeighting',
        prior=[5.0, 1.0, 1.0, 0.5],
        decision_objective='progress',
        estimator='expected',
        # Without a floor the first step's signal is rounding error raised
        # to unit size, which differs between 2 and 4 rows; with 1e-2 what
        # is left is float32 cancellation in slow - fast (~1e-5 relative).
        signal_min_scale=1e-2))

STATE_KEYS = dict(
    uncertainty='log_vars',
    famo='logits',
    dwa='last_mean',
    slf_progress='signal.slow.value')


def progress_gap(state: dict) -> torch.Tensor:
    """``slow - fast``, the bias-corrected averages that ProgressSignal
    reads (default momenta 0.99 and 0.9)."""
    prefix = 'bbox_head.weighting.signal.'

    def read(name: str, momentum: float) -> torch.Tensor:
        count = state[f'{prefix}{name}.count'].double()
        return state[f'{prefix}{name}.value'].double() / (1 - momentum**count)

    return read('slow', 0.99) - read('fast', 0.9)


def equivalence_cfg(data_root: str, work_dir: str, out_dir: str,
                    weighting: Optional[dict], batch_size: int):
    """The tiny Fast YOLO with nothing that depends on the rank: BatchNorm
    frozen in eval mode (per-rank batch statistics would differ from those
    of 2N images), no dropout, no random augmentation."""
    cfg = tiny_yolo_cfg(data_root, work_dir, EQUIVALENCE_ITERS, batch_size,
                        config=BASELINE_CONFIG)
    if weighting is not None:
        cfg.model.bbox_head.weighting = weighting
    cfg.model.backbone.norm_eval = True
    cfg.model.bbox_head.dropout = 0.0
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=IMAGE_SIZE, keep_ratio=False),
        dict(type='PackDetInputs')
    ]
    for dataset in cfg.train_dataloader.dataset.datasets:
        dataset.pipeline = pipeline
    # Rank r reads images r, r + 2, ... of the epoch's permutation, so the
    # two ranks' batch i together are the single process's batch i.
    cfg.train_dataloader.sampler = dict(
        type='DefaultSampler', shuffle=True, seed=0)
    return with_test_hooks(cfg, dict(type='RankRecordHook', out_dir=out_dir))


def test_two_ranks_over_n_train_like_one_process_over_2n(
        tiny_voc_root, tmp_path):
    from mmengine.runner import Runner
    paths = []
    for name, weighting in WEIGHTINGS.items():
        cfg = equivalence_cfg(tiny_voc_root, str(tmp_path / f'work_{name}'),
                              str(tmp_path / f'ranks_{name}'), weighting,
                              PER_RANK_BATCH)
        paths.append(str(tmp_path / f'{name}.py'))
        cfg.dump(paths[-1])
    env = process_env()
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
         str(WORLD_SIZE), '--master_port', env['PORT'],
         osp.join(HERE, 'dist_helpers.py'), *paths],
        env=env, cwd=REPO_ROOT, timeout=300, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-5000:]

    for name, weighting in WEIGHTINGS.items():
        single_dir = str(tmp_path / f'single_{name}')
        cfg = equivalence_cfg(tiny_voc_root, str(tmp_path / f'one_{name}'),
                              single_dir, weighting,
                              WORLD_SIZE * PER_RANK_BATCH)
        Runner.from_cfg(cfg).train()
        single = torch.load(osp.join(single_dir, 'rank0.pth'),
                            weights_only=True)
        records, states = read_ranks(str(tmp_path / f'ranks_{name}'))
        assert [len(r) for r in records] == [EQUIVALENCE_ITERS] * WORLD_SIZE
        trained = [k for k in single if not per_rank_statistics(k)]
        if weighting is not None:
            # The weighting's learned state is among what is compared.
            state = f'bbox_head.weighting.{STATE_KEYS[name]}'
            assert state in trained, (name, state)
            assert float(single[state].abs().sum()) > 0, (name, state)
        for key in trained:
            assert torch.equal(states[0][key], states[1][key]), key
        if name == 'slf_progress':
            # Each rank's per-image terms are normalised by its own N, the
            # single process's by 2N: the running averages of log l differ
            # by log 2, and the signal reads only their difference.
            signal = [k for k in trained if '.weighting.signal.' in k]
            trained = [k for k in trained if k not in signal]
            gap = progress_gap(states[0]) - progress_gap(single)
            assert float(gap.abs().max()) < 1e-6, gap
            assert float(
                (states[0]['bbox_head.weighting.signal.fast.value'] -
                 single['bbox_head.weighting.signal.fast.value']).mean()
            ) == pytest.approx((1 - 0.9**EQUIVALENCE_ITERS) * math.log(2),
                               rel=1e-4)
        diffs = {
            k: float((states[0][k].double() - single[k].double()).abs().max())
            for k in trained
        }
        worst = max(diffs, key=diffs.get)
        diff = diffs[worst]
        moved = abs(records[0][-1]['digest_after'] -
                    records[0][0]['digest_before'])
        print(f'{name}: max |2 ranks x {PER_RANK_BATCH} - 1 process x '
              f'{WORLD_SIZE * PER_RANK_BATCH}| = {diff:.3g} '
              f'(sum |p| moved by {moved:.3g})')
        # Summed instead of averaged gradients, or a term counted once per
        # rank, would differ by about the training's own movement.
        assert moved > 1e-2, name
        assert diff < 1e-5, (name, worst, diff)


def test_both_ranks_resume_past_a_truncated_checkpoint(tiny_voc_root,
                                                       tmp_path):
    out_dir, work_dir = str(tmp_path / 'ranks'), str(tmp_path / 'work')
    cfg = tiny_yolo_cfg(tiny_voc_root, work_dir, 5)
    cfg.default_hooks.checkpoint = dict(
        type='CrashSafeCheckpointHook', interval=1, by_epoch=False,
        max_keep_ckpts=2)
    killed = with_test_hooks(
        copy.deepcopy(cfg),
        dict(type='StopRankHook', iteration=2, barrier=True))
    killed.dump(str(tmp_path / 'killed.py'))
    result = launch(str(tmp_path / 'killed.py'), work_dir)
    assert result.returncode != 0  # both ranks were SIGKILLed
    assert 'ChildFailedError' in result.stderr, result.stderr[-3000:]
    assert sorted(n for n in os.listdir(work_dir) if n.endswith('.pth')) \
        == ['iter_2.pth', 'iter_3.pth']
    latest = osp.join(work_dir, 'iter_3.pth')
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert f.read() == latest
    with open(latest, 'rb') as f:
        data = f.read()
    with open(latest, 'wb') as f:
        f.write(data[:len(data) // 3])

    resumed = with_test_hooks(
        cfg, dict(type='RankRecordHook', out_dir=out_dir))
    resumed.dump(str(tmp_path / 'resumed.py'))
    result = launch(str(tmp_path / 'resumed.py'), work_dir, '--resume')
    assert result.returncode == 0, result.stderr[-5000:]
    assert f'auto-resume skips checkpoint {latest}: the file is truncated' \
        in read_log(work_dir)
    records, states = read_ranks(out_dir)
    # Both ranks continued after iteration 2, from iter_2.pth.
    assert [[r['iter'] for r in rank] for rank in records] == \
        [[2, 3, 4]] * WORLD_SIZE
    for key, value in states[0].items():
        if not per_rank_statistics(key):
            assert torch.equal(value, states[1][key]), key


TIMEOUT = 5  # env_cfg.dist_cfg.timeout, seconds


@pytest.mark.parametrize('how', ['die', 'hang'])
def test_a_stopped_rank_stops_the_other_within_the_timeout(
        tiny_voc_root, tmp_path, how):
    """Ranks started one by one (as a scheduler would; torchrun would also
    end the survivors): rank 1 stops in its first iteration."""
    work_dir = str(tmp_path / 'work')
    cfg = tiny_yolo_cfg(tiny_voc_root, work_dir, 4)
    cfg.env_cfg.dist_cfg = dict(backend='gloo', timeout=TIMEOUT)
    with_test_hooks(cfg, dict(type='StopRankHook', iteration=0, how=how,
                              ranks=[1]))
    config_path = str(tmp_path / 'stop.py')
    cfg.dump(config_path)
    env = process_env()
    processes = []
    for rank in range(WORLD_SIZE):
        env.update(RANK=str(rank), LOCAL_RANK=str(rank),
                   WORLD_SIZE=str(WORLD_SIZE), MASTER_PORT=env['PORT'])
        processes.append(subprocess.Popen(
            [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'),
             config_path, '--launcher', 'pytorch', '--work-dir', work_dir],
            env=dict(env), cwd=REPO_ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    try:
        output, _ = processes[0].communicate(timeout=240)
        ended = time.time()
    finally:
        for process in processes:
            process.kill()
            process.communicate()
    with open(osp.join(work_dir, 'rank1_stopped')) as f:
        stopped = float(f.read())
    print(f'rank 1 {how}s; rank 0 stopped {ended - stopped:.1f} s later '
          f'with exit code {processes[0].returncode}:\n{output[-1500:]}')
    assert processes[0].returncode != 0
    # gloo's own words: the peer's closed socket, or the configured timeout.
    assert (f'Timed out waiting {TIMEOUT * 1000}ms' if how == 'hang' else
            'Connection reset by peer') in output
    assert ended - stopped < TIMEOUT + 15
