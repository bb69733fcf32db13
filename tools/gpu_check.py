# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Helpers of ``tools/gpu_check.sh``: CUDA build environment for mmcv, the
patch that mmcv 2.1.0 needs for current PyTorch, the digits-set variants of
the VOC configs, and the parsing of each stage into one JSON report.

Each sub-command is small and independent; only ``cuda-env`` and
``make-config`` import torch or mmengine, so ``record`` and ``summary`` work
before anything is installed::

    python tools/gpu_check.py cuda-env --json env.json   # prints exports
    python tools/gpu_check.py patch-mmcv path/to/mmcv-2.1.0
    python tools/gpu_check.py make-config configs/yolo_slf_voc.py out.py \\
        --data-root data/VOCdevkit --iters 100
    python tools/gpu_check.py record --state DIR --name NAME --rc 0 ...
    python tools/gpu_check.py summary --state DIR --out report.json
"""
import argparse
import glob
import json
import math
import os
import os.path as osp
import re
import shlex
import shutil
import subprocess
import sys
import time

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# Configs of the paper's three YOLO rows, under the names they have had in
# this repository (the first one found is used).
CONFIGS = {
    'yolo': ['configs/yolo_voc.py',
             'configs/yolov1/yolov1_darknet24_1xb64-135e_voc0712.py'],
    'yolo_slf': ['configs/yolo_slf_voc.py',
                 'configs/yolov1/yolov1-slf_darknet24_1xb64-135e_voc0712.py'],
    'fast_yolo': ['configs/fast-yolo_voc.py',
                  'configs/yolov1/yolov1_darknet9_1xb64-135e_voc0712.py'],
    'fast_yolo_slf': [
        'configs/fast-yolo_slf_voc.py',
        'configs/yolov1/yolov1-slf_darknet9_1xb64-135e_voc0712.py'
    ],
    'yolo_vgg16': ['configs/yolo-vgg16_voc.py',
                   'configs/yolov1/yolov1_vgg16_1xb64-135e_voc0712.py'],
    'yolo_vgg16_slf': [
        'configs/yolo-vgg16_slf_voc.py',
        'configs/yolov1/yolov1-slf_vgg16_1xb64-135e_voc0712.py'
    ],
}
# Table 5 of the paper: batch-1 FPS on a Titan X (darknet), same with SLF.
PAPER_FPS = {'yolo': 45, 'fast_yolo': 155, 'yolo_vgg16': 21}

# Headers that ATen/cuda/CUDAContext.h includes beyond the CUDA runtime.
LIBRARY_HEADERS = ('cusparse.h', 'cublas_v2.h', 'cublasLt.h', 'cusolverDn.h')


def find_config(key, root=REPO_ROOT):
    for path in CONFIGS[key]:
        if osp.isfile(osp.join(root, path)):
            return path
    raise FileNotFoundError(f'none of {CONFIGS[key]} under {root}')


# ---------------------------------------------------------------- cuda-env
def _nvcc_candidates():
    """CUDA roots that may hold the nvcc on PATH (following symlinks and
    one-line wrapper scripts such as
    ``exec /usr/local/cuda-13.0/bin/nvcc``)."""
    roots = []
    for var in ('CUDA_HOME', 'CUDA_PATH'):
        if os.environ.get(var):
            roots.append(os.environ[var])
    nvcc = shutil.which('nvcc')
    if nvcc:
        real = osp.realpath(nvcc)
        roots.append(osp.dirname(osp.dirname(real)))
        try:
            with open(real, 'rb') as f:
                head = f.read(4096)
            if head.startswith(b'#!'):
                for match in re.finditer(rb'(/[^\s"\']+)/bin/nvcc', head):
                    roots.append(match.group(1).decode())
        except OSError:
            pass
    roots += ['/usr/local/cuda'] + sorted(glob.glob('/usr/local/cuda-*'),
                                          reverse=True)
    return roots


def find_cuda_home():
    for root in _nvcc_candidates():
        if osp.isfile(osp.join(root, 'bin', 'nvcc')) and osp.isfile(
                osp.join(root, 'include', 'cuda_runtime.h')):
            return osp.realpath(root)
    return None


def _site_dirs():
    dirs = [p for p in sys.path if p and osp.isdir(p)]
    try:
        import site
        dirs += site.getsitepackages()
    except AttributeError:
        pass
    return list(dict.fromkeys(dirs))


def find_library_includes(cuda_home):
    """Include dirs for cuSPARSE/cuBLAS/cuSOLVER headers when the toolkit has
    none (pip-installed CUDA: they ship in the nvidia-* wheels)."""
    missing = [
        h for h in LIBRARY_HEADERS
        if not (cuda_home and osp.isfile(osp.join(cuda_home, 'include', h)))
    ]
    found = []
    for header in missing:
        for site_dir in _site_dirs():
            hits = glob.glob(osp.join(site_dir, 'nvidia', '*', 'include',
                                      header)) + glob.glob(
                osp.join(site_dir, 'nvidia', 'include', header))
            for hit in hits:
                found.append(osp.dirname(hit))
            if hits:
                break
    return missing, list(dict.fromkeys(found))


def find_cudart_dir(cuda_home, work_dir):
    """A directory with ``libcudart.so`` for ``-lcudart``; a symlink to the
    versioned library is made in ``work_dir`` when only that exists."""
    lib_dirs = [osp.join(cuda_home, d) for d in ('lib64', 'lib')] \
        if cuda_home else []
    for d in lib_dirs:
        if osp.exists(osp.join(d, 'libcudart.so')):
            return None  # torch's CUDAExtension already links from here
    candidates = []
    for d in lib_dirs:
        candidates += glob.glob(osp.join(d, 'libcudart.so.*'))
    for site_dir in _site_dirs():
        candidates += glob.glob(
            osp.join(site_dir, 'nvidia', '*', 'lib', 'libcudart.so*'))
    if not candidates:
        return None
    os.makedirs(work_dir, exist_ok=True)
    link = osp.join(work_dir, 'libcudart.so')
    if osp.lexists(link):
        os.remove(link)
    os.symlink(sorted(candidates)[0], link)
    return work_dir


def cmd_cuda_env(args):
    import torch
    info = dict(
        python=sys.version.split()[0],
        torch=torch.__version__,
        torch_cuda=torch.version.cuda,
        cuda_available=torch.cuda.is_available())
    exports = {}
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        info['gpu'] = torch.cuda.get_device_name(0)
        info['capability'] = f'{major}.{minor}'
        exports['TORCH_CUDA_ARCH_LIST'] = f'{major}.{minor}'
    cuda_home = find_cuda_home()
    info['cuda_home'] = cuda_home
    if cuda_home:
        exports['CUDA_HOME'] = cuda_home
    missing, includes = find_library_includes(cuda_home)
    info['headers_missing_in_toolkit'] = missing
    info['extra_include_dirs'] = includes
    cudart_dir = find_cudart_dir(cuda_home, args.lib_dir)
    info['cudart_link_dir'] = cudart_dir
    path = [osp.dirname(sys.executable)]  # ninja of this environment
    try:  # the ninja wheel keeps its binary in the package
        import ninja
        path.append(ninja.BIN_DIR)
    except (ImportError, AttributeError):
        pass
    if cuda_home:
        path.append(osp.join(cuda_home, 'bin'))
    exports['PATH'] = ':'.join(path + [os.environ.get('PATH', '')])
    if includes:
        exports['CPATH'] = ':'.join(
            includes + [p for p in [os.environ.get('CPATH')] if p])
        exports['MMCV_CUDA_ARGS'] = ' '.join(f'-I{d}' for d in includes)
    if cudart_dir:
        exports['LIBRARY_PATH'] = ':'.join(
            [cudart_dir] + [p for p in [os.environ.get('LIBRARY_PATH')] if p])
    exports['MAX_JOBS'] = str(args.jobs or os.cpu_count() or 4)
    exports['MMCV_WITH_OPS'] = '1'
    exports['FORCE_CUDA'] = '1'
    for tool, cmd in (('nvcc', ['nvcc', '--version']),
                      ('gcc', ['gcc', '--version']),
                      ('ninja', ['ninja', '--version'])):
        exe = shutil.which(cmd[0], path=exports['PATH'])
        try:
            out = subprocess.run([exe or cmd[0]] + cmd[1:],
                                 capture_output=True, text=True,
                                 timeout=30).stdout.strip().splitlines()
            info[tool] = out[-1] if tool == 'nvcc' else out[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            info[tool] = None
    for module in ('setuptools', 'numpy', 'cv2', 'scipy', 'matplotlib'):
        try:
            info[module] = __import__(module).__version__
        except Exception as error:  # noqa: BLE001 (reported, not raised)
            info[module] = f'missing ({error.__class__.__name__})'
    info['exports'] = exports
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(info, f, indent=2)
    for key, value in exports.items():
        print(f'export {key}={shlex.quote(value)}')


# -------------------------------------------------------------- patch-mmcv
PKG_RESOURCES_IMPORT = ('from pkg_resources import DistributionNotFound, '
                        'get_distribution, parse_version')
PKG_RESOURCES_SHIM = '''try:
    from pkg_resources import (DistributionNotFound, get_distribution,
                               parse_version)
except ImportError:  # setuptools without pkg_resources
    from importlib.metadata import PackageNotFoundError as DistributionNotFound
    from importlib.metadata import distribution as get_distribution

    from packaging.version import parse as parse_version'''


def cmd_patch_mmcv(args):
    """The smallest changes mmcv 2.1.0 needs to build with current PyTorch:

    * ``THC/THCAtomics.cuh`` is gone from PyTorch's headers; it only
      included ``ATen/cuda/Atomic.cuh``, which is included instead.
    * ``setup.py`` imports ``pkg_resources``, absent from newer setuptools;
      fall back to ``importlib.metadata`` and ``packaging``.
    """
    root = args.source
    changed = []
    for path in glob.glob(
            osp.join(root, 'mmcv', 'ops', 'csrc', '**', '*'), recursive=True):
        if not osp.isfile(path) or not path.endswith(
                ('.cu', '.cuh', '.h', '.hpp', '.cpp')):
            continue
        with open(path, encoding='utf-8', errors='surrogateescape') as f:
            text = f.read()
        if '<THC/THCAtomics.cuh>' in text:
            text = text.replace('<THC/THCAtomics.cuh>',
                                '<ATen/cuda/Atomic.cuh>')
            with open(path, 'w', encoding='utf-8',
                      errors='surrogateescape') as f:
                f.write(text)
            changed.append(osp.relpath(path, root))
    setup_py = osp.join(root, 'setup.py')
    with open(setup_py) as f:
        text = f.read()
    if PKG_RESOURCES_IMPORT in text:
        text = text.replace(PKG_RESOURCES_IMPORT, PKG_RESOURCES_SHIM)
        with open(setup_py, 'w') as f:
            f.write(text)
        changed.append('setup.py')
    print(json.dumps(dict(patched=changed)))


# ------------------------------------------------------------- make-config
DIGITS_OVERRIDES = '''# {base} with the data switched to the digits demo
# set in VOC format (10 classes, made by tools/make_demo_data.py) and a
# {iters}-iteration schedule: model, loss weighting, optimizer and pipelines
# are those of the VOC config. Written by tools/gpu_check.py.
_base_ = {base_abs!r}

data_root = {data_root!r}
classes = ('0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
model = dict(bbox_head=dict(num_classes=len(classes)))
train_dataloader = dict(
    batch_size={batch_size},
    num_workers={workers},
    persistent_workers=True,
    dataset=dict(
        _delete_=True,
        type='VOCDataset',
        data_root=data_root,
        ann_file='{subset}/ImageSets/Main/trainval.txt',
        data_prefix=dict(sub_data_root='{subset}/'),
        metainfo=dict(classes=classes),
        filter_cfg=dict(filter_empty_gt=True, min_size=1),
        pipeline={{{{_base_.train_pipeline}}}}))
val_dataloader = dict(
    batch_size=8,
    num_workers={workers},
    dataset=dict(
        data_root=data_root,
        ann_file='{subset}/ImageSets/Main/test.txt',
        data_prefix=dict(sub_data_root='{subset}/'),
        metainfo=dict(classes=classes)))
test_dataloader = val_dataloader

train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters={iters},
    val_interval={never})  # evaluation is tools/test.py's job here
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end={warmup})
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval={log_interval}),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval={iters},
        max_keep_ckpts=1))
log_processor = dict(by_epoch=False, window_size={log_interval})
randomness = dict(seed=0)
'''


def cmd_make_config(args):
    base = args.base if osp.isabs(args.base) else osp.join(
        REPO_ROOT, args.base)
    text = DIGITS_OVERRIDES.format(
        base=osp.relpath(base, REPO_ROOT),
        base_abs=osp.abspath(base),
        data_root=osp.abspath(args.data_root).rstrip('/') + '/',
        subset=args.subset,
        batch_size=args.batch_size,
        workers=args.workers,
        iters=args.iters,
        never=args.iters * 1000,
        warmup=max(1, min(20, args.iters // 5)),
        log_interval=args.log_interval)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        f.write(text)
    if args.check:
        from mmengine.config import Config
        cfg = Config.fromfile(args.out, import_custom_modules=False)
        assert cfg.train_dataloader.dataset.type == 'VOCDataset'
        assert cfg.model.bbox_head.num_classes == 10
        print(f'{args.out}: ok ({cfg.model.bbox_head.weighting.type})')


# ------------------------------------------------------------------ parsing
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
            entry = json.load(f)
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
        all_ok=all(v['status'] == 'ok' for v in stages.values())
        and not missing,
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('cuda-env', help='print exports for the mmcv build')
    p.add_argument('--json', help='also write what was found here')
    p.add_argument('--lib-dir', default='/tmp/gpu_check/cudart',
                   help='where a libcudart.so link is made if needed')
    p.add_argument('--jobs', type=int, help='MAX_JOBS (default: all cores)')
    p.set_defaults(func=cmd_cuda_env)

    p = sub.add_parser('patch-mmcv', help='patch an unpacked mmcv 2.1.0')
    p.add_argument('source')
    p.set_defaults(func=cmd_patch_mmcv)

    p = sub.add_parser('make-config', help='VOC config on the digits set')
    p.add_argument('base', help='VOC config to inherit')
    p.add_argument('out', help='config file to write')
    p.add_argument('--data-root', required=True,
                   help='VOCdevkit made by tools/make_demo_data.py')
    p.add_argument('--subset', default='DIGITS')
    p.add_argument('--iters', type=int, default=100)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--workers', type=int, default=8)
    p.add_argument('--log-interval', type=int, default=10)
    p.add_argument('--check', action='store_true',
                   help='load the written config with mmengine')
    p.set_defaults(func=cmd_make_config)

    p = sub.add_parser('record', help='write one stage result')
    p.add_argument('--state', required=True)
    p.add_argument('--name', required=True)
    p.add_argument('--rc', type=int, default=0)
    p.add_argument('--seconds', type=float, default=0.0)
    p.add_argument('--command', default='')
    p.add_argument('--log')
    p.add_argument('--skipped', help='reason the stage did not run')
    p.add_argument('--parse', choices=['train', 'test', 'fps', 'json'])
    p.add_argument('--work-dir', help='run directory, or JSON to parse')
    p.add_argument('--expect-slf', action='store_true')
    p.set_defaults(func=cmd_record)

    p = sub.add_parser('summary', help='merge the stage results')
    p.add_argument('--state', required=True)
    p.add_argument('--out', required=True)
    p.add_argument('--order', help='comma-separated stage order')
    p.add_argument('--require', help='comma-separated stages that must have '
                   'a record (missing ones make the summary not ok)')
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser('config-path', help='path of a YOLO row config')
    p.add_argument('key', choices=sorted(CONFIGS))
    p.add_argument('--root', default=REPO_ROOT)
    p.set_defaults(func=lambda a: print(find_config(a.key, a.root)))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    return args.func(args) or 0


if __name__ == '__main__':
    sys.exit(main())
