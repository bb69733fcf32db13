# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The report half of ``tools/gpu_check.py``: each stage of
``tools/gpu_check.sh`` parsed into ``STATE/NAME.json`` (``record``) and the
stages merged into one JSON report (``summary``). Standard library only, so
both work before anything is installed."""
import glob
import json
import math
import os
import os.path as osp
import re
import time

# Table 5 of the paper: batch-1 FPS on a Titan X (darknet), same with SLF.
PAPER_FPS = {'yolo': 45, 'fast_yolo': 155, 'yolo_vgg16': 21}


def _tail(path, lines=40):
    try:
        with open(path, errors='replace') as f:
            return f.read().splitlines()[-lines:]
    except OSError:
        return []


def _first_errors(path, limit=25):
    """The first compiler/traceback error lines of a log."""
    pattern = re.compile(r'(error:|Error:|FAILED:|Traceback|No such file)')
    hits = []
    try:
        with open(path, errors='replace') as f:
            for line in f:
                if pattern.search(line):
                    hits.append(line.rstrip()[:400])
                    if len(hits) >= limit:
                        break
    except OSError:
        pass
    return hits


def _finite(value):
    return isinstance(value, (int, float)) and math.isfinite(value)


def parse_train(work_dir):
    """Losses and SLF weights of a run from its ``vis_data/scalars.json``,
    and its checkpoint."""
    scalars = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    result = dict(scalars=scalars[-1] if scalars else None)
    records = []
    if scalars:
        with open(scalars[-1]) as f:
            for line in f:
                line = line.strip()
                if line:
                    records.append(json.loads(line))
    train = [r for r in records if 'loss' in r]
    loss_keys = sorted({k for r in train for k in r if k.startswith('loss')})
    slf_keys = sorted({k for r in train for k in r if k.startswith('slf_w_')})
    result.update(
        logged_iters=[r.get('iter') for r in train],
        loss_keys=loss_keys,
        losses_finite=bool(train) and all(
            _finite(r[k]) for r in train for k in loss_keys if k in r),
        first=dict((k, train[0][k]) for k in loss_keys + slf_keys
                   if k in train[0]) if train else None,
        last=dict((k, train[-1][k]) for k in loss_keys + slf_keys
                  if k in train[-1]) if train else None,
        slf_weight_keys=slf_keys,
        slf_weights_finite=all(
            _finite(r[k]) for r in train for k in slf_keys if k in r),
        memory_mb=max([r.get('memory', 0) for r in train] or [0]),
        time_per_iter_s=train[-1].get('time') if train else None)
    ckpts = sorted(glob.glob(osp.join(work_dir, 'iter_*.pth')))
    result['checkpoint'] = ckpts[-1] if ckpts else None
    result['checkpoint_mb'] = round(
        osp.getsize(ckpts[-1]) / 2**20, 1) if ckpts else None
    return result


def parse_test(log):
    """The metrics dict that tools/test.py prints last."""
    metrics = None
    with open(log, errors='replace') as f:
        for line in f:
            if 'pascal_voc/mAP' in line and line.strip().startswith('{'):
                try:
                    metrics = json.loads(line.strip().replace("'", '"'))
                except ValueError:
                    pass
    if metrics is None:  # fall back to the runner's log line
        with open(log, errors='replace') as f:
            found = re.findall(r'pascal_voc/mAP: ([0-9.]+)', f.read())
        if found:
            metrics = {'pascal_voc/mAP': float(found[-1])}
    return dict(metrics=metrics,
                map=metrics.get('pascal_voc/mAP') if metrics else None)


def parse_fps(out_json):
    with open(out_json) as f:
        data = json.load(f)
    results = data.get('results', [])
    keep = ('config', 'fps', 'mean_ms', 'median_ms', 'std_ms', 'step_ms',
            'params', 'weighting_params')
    return dict(
        device=data.get('device'),
        mode=data.get('mode', 'test'),
        batch_size=data.get('batch_size', 1),
        dtype=data.get('dtype'),
        same_weights=data.get('same_weights'),
        log_reads=bool(data.get('log_reads')),
        fuse_conv_bn=data.get('fuse_conv_bn'),
        num_iters=data.get('num_iters'),
        results=[{k: r.get(k) for k in keep} for r in results],
        ratio_slf_over_fixed=data.get('ratio'),
        ratio_2se=data.get('ratio_2se'),
        step_ratio_slf_over_fixed=data.get('step_ratio'),
        step_ratio_2se=data.get('step_ratio_2se'),
        ratio_paired=data.get('ratio_paired'),
        ratio_paired_ci=data.get('ratio_paired_ci'),
        step_ratio_paired=data.get('step_ratio_paired'),
        step_ratio_paired_ci=data.get('step_ratio_paired_ci'),
        profile=data.get('profile'),
        profile_error=data.get('profile_error'),
        operators=data.get('operators'))


def cmd_record(args):
    """One stage's outcome as ``STATE/NAME.json``."""
    if args.skipped:
        status = 'skipped'
    elif args.rc == 0:
        status = 'ok'
    elif args.rc in (124, 137):
        status = 'timeout'
    else:
        status = 'failed'
    entry = dict(name=args.name, status=status, rc=args.rc,
                 seconds=args.seconds, command=args.command,
                 reason=args.skipped, finished=time.strftime(
                     '%Y-%m-%d %H:%M:%S'))
    try:
        if args.parse == 'train' and args.work_dir:
            entry['details'] = parse_train(args.work_dir)
            if status == 'ok' and not (entry['details']['losses_finite']
                                       and entry['details']['checkpoint']):
                entry['status'] = 'failed'
                entry['reason'] = 'non-finite loss or no checkpoint'
            if status == 'ok' and args.expect_slf and not entry['details'][
                    'slf_weight_keys']:
                entry['status'] = 'failed'
                entry['reason'] = 'no slf_w_* keys logged'
        elif args.parse == 'test' and args.log and status == 'ok':
            entry['details'] = parse_test(args.log)
            if entry['details']['map'] is None:
                entry['status'] = 'failed'
                entry['reason'] = 'no pascal_voc/mAP printed'
        elif args.parse == 'fps' and args.work_dir and (
                status == 'ok' or osp.isfile(args.work_dir)):
            # benchmark_fps.py writes its timing before --profile and
            # --count-ops: a stage stopped during those keeps its timing
            entry['details'] = parse_fps(args.work_dir)
        elif args.parse == 'json' and args.work_dir and osp.isfile(
                args.work_dir):
            with open(args.work_dir) as f:
                entry['details'] = json.load(f)
    except Exception as error:  # noqa: BLE001 (a parse error is reported)
        entry['parse_error'] = f'{error.__class__.__name__}: {error}'
        if entry['status'] == 'ok':
            entry['status'] = 'failed'
    if entry['status'] != 'ok' and args.log:
        entry['errors'] = _first_errors(args.log)
        entry['log_tail'] = _tail(args.log)
    os.makedirs(args.state, exist_ok=True)
    with open(osp.join(args.state, f'{args.name}.json'), 'w') as f:
        json.dump(entry, f, indent=2)
    print(f'[{args.name}] {entry["status"]}'
          f'{" (" + entry["reason"] + ")" if entry.get("reason") else ""}'
          f' in {args.seconds:.0f} s')
    return 0 if entry['status'] in ('ok', 'skipped') else 1


def _paired(details, key):
    """The ratio paired by round and its 95% interval, rounded, when the
    benchmark recorded them (records of older runs have none)."""
    if details.get(key) is None:
        return {}
    return {key: round(details[key], 3),
            f'{key}_ci': [round(v, 3) for v in details[f'{key}_ci']]}


def host_cost(stages):
    """Per ``host_cost_<name>`` stage that finished, the host time each
    weighting adds to a step (microseconds, 95% interval) and the operators
    it adds, from ``tools/weighting_host_cost.py``'s JSON."""
    result = {}
    for name, entry in stages.items():
        details = entry.get('details') or {}
        if not name.startswith('host_cost_') or entry['status'] != 'ok' \
                or 'added' not in details:
            continue
        result[name[len('host_cost_'):]] = dict(
            device=details.get('device'),
            none_step_us=round(details['step_us']['none'], 1),
            **{
                weighting: dict(
                    added_us=round(added['us'], 1),
                    ci=[round(added['ci_low'], 1),
                        round(added['ci_high'], 1)],
                    operators=added['operators'])
                for weighting, added in details['added'].items()
            })
    return result


def cmd_summary(args):
    """All stage records, plus the FPS table and the checks of the issue."""
    stages = {}
    for path in sorted(glob.glob(osp.join(args.state, '*.json'))):
        with open(path) as f:
            try:
                entry = json.load(f)
            except ValueError as error:
                raise ValueError(f'{path}: not a stage record ({error})')
        if not isinstance(entry, dict):
            raise ValueError(f'{path}: not a stage record (a JSON '
                             f'{type(entry).__name__}, not an object)')
        stages[entry.get('name', osp.basename(path)[:-5])] = entry
    order = args.order.split(',') if args.order else sorted(stages)
    report = dict(stages=[stages[n] for n in order if n in stages] + [
        v for n, v in stages.items() if n not in order])
    fps, train_step = {}, {}
    name = None
    try:
        for name, entry in stages.items():
            if not name.startswith('fps_') or entry['status'] != 'ok':
                continue
            details = entry.get('details') or {}
            arch, dtype = name[4:].rsplit('_', 1)
            results = details.get('results') or []
            if len(results) == 2:
                fps.setdefault(arch, {})[dtype] = dict(
                    fixed_fps=round(results[0]['fps'], 1),
                    slf_fps=round(results[1]['fps'], 1),
                    ratio_slf_over_fixed=round(details['ratio_slf_over_fixed'],
                                               3),
                    ratio_2se=round(details['ratio_2se'], 3),
                    **_paired(details, 'ratio_paired'),
                    device=details.get('device'),
                    paper_titan_x_fps=PAPER_FPS.get(arch))
        for name, entry in stages.items():
            details = entry.get('details') or {}
            results = details.get('results') or []
            if not name.startswith('step_') or entry['status'] not in (
                    'ok', 'timeout') or len(results) != 2:
                continue
            arch, dtype = name[5:].rsplit('_', 1)
            train_step.setdefault(arch, {})[dtype] = dict(
                stage_status=entry['status'],
                batch_size=details.get('batch_size'),
                log_reads=bool(details.get('log_reads')),
                fixed_step_ms=round(results[0]['step_ms'], 2),
                slf_step_ms=round(results[1]['step_ms'], 2),
                step_ratio_slf_over_fixed=round(
                    details['step_ratio_slf_over_fixed'], 3),
                step_ratio_2se=round(details['step_ratio_2se'], 3),
                **_paired(details, 'step_ratio_paired'),
                device=details.get('device'))
            operators = details.get('operators')
            if operators and 'difference' in operators:
                # exact: operators dispatched in one step, fixed and SLF
                train_step[arch][dtype]['operators'] = dict(
                    fixed=operators['totals']['0'],
                    slf=operators['totals']['1'],
                    slf_minus_fixed=operators['difference'])
            profile = details.get('profile')
            if details.get('profile_error'):
                train_step[arch][dtype]['profile_error'] = \
                    details['profile_error']
            if profile:
                # per step, fixed then SLF: host operator calls, device kernels
                # and self times; the five operators that differ most
                train_step[arch][dtype]['profile'] = dict(
                    totals=[{key: round(value, 2) for key, value in
                             profile['totals'][model].items()}
                            for model in ('0', '1')],
                    top_differences=[
                        dict(name=row['name'],
                             diff_calls=round(row['diff_calls'], 1),
                             **{f'diff_{by}': round(row[f'diff_{by}'], 3)
                                for by in ('self_cpu_ms', 'self_device_ms')})
                        for row in profile.get('differences', [])[:5]
                    ])
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise ValueError(
            f'{args.state}: the record of stage {name!r} is malformed '
            f'({type(error).__name__}: {error}); fps_ and step_ stages '
            'are named <kind>_<arch>_<dtype> and hold the numbers that '
            'tools/benchmark_fps.py writes') from error
    trains = {
        n: v for n, v in stages.items()
        if n.startswith('train_') and v['status'] in ('ok', 'failed')
    }
    amp_runs = {
        n: v for n, v in stages.items()
        if n.startswith('train_') and n.endswith('_amp')
    }
    tests = {n: v for n, v in stages.items() if n.startswith('test_')}
    # a stage that must have run but left no record (the script stopped
    # before it) is not ok either
    missing = [name for name in (args.require or '').split(',')
               if name and name not in stages]
    report['summary'] = dict(
        # a folder without records is no evidence that anything is ok
        all_ok=bool(stages) and all(v['status'] == 'ok'
                                    for v in stages.values()) and not missing,
        not_ok=sorted([n for n, v in stages.items() if v['status'] != 'ok']
                      + missing),
        missing=missing,
        gpu=(stages.get('env', {}).get('details') or {}).get('gpu'),
        mmcv_built=stages.get('mmcv', {}).get('status') == 'ok',
        mmcv_build_seconds=stages.get('mmcv', {}).get('seconds'),
        losses_finite={
            n: (v.get('details') or {}).get('losses_finite')
            for n, v in trains.items()
        },
        slf_weights_logged={
            n: (v.get('details') or {}).get('slf_weight_keys')
            for n, v in trains.items() if '_slf_' in n
        },
        # every AMP run recorded, a timed-out or skipped one included
        amp_ok=bool(amp_runs) and all(v['status'] == 'ok'
                                      for v in amp_runs.values()),
        test_map={
            n: (v.get('details') or {}).get('map')
            for n, v in tests.items()
        },
        fps=fps,
        train_step=train_step,
        host_cost=host_cost(stages))
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report['summary'], indent=2))
