# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""tools/gpu_check.sh and its helper, as far as they run without a GPU, and
the --fp16 / --same-weights options of tools/benchmark_fps.py."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, refusal
from mmengine.config import Config

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import gpu_check  # noqa: E402


def run(args, cwd=REPO_ROOT):
    result = subprocess.run(
        [sys.executable] + args, cwd=cwd, capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + \
        result.stderr[-3000:]
    return result.stdout


def test_script_parses():
    subprocess.run(['bash', '-n', osp.join(REPO_ROOT, 'tools',
                                           'gpu_check.sh')], check=True)


def test_yolo_rows_have_configs():
    for key in gpu_check.CONFIGS:
        assert osp.isfile(osp.join(REPO_ROOT, gpu_check.find_config(key)))


def test_patch_mmcv(tmp_path):
    csrc = tmp_path / 'mmcv' / 'ops' / 'csrc' / 'common'
    csrc.mkdir(parents=True)
    (csrc / 'helper.hpp').write_text(
        '#include <ATen/ATen.h>\n#include <THC/THCAtomics.cuh>\n')
    (csrc / 'other.cu').write_text('#include <cuda.h>\n')
    (tmp_path / 'setup.py').write_text(
        'import os\n' + gpu_check.PKG_RESOURCES_IMPORT + '\n'
        "print(parse_version('2.11.0+cu130') > parse_version('1.12.1'))\n")
    gpu_check.main(['patch-mmcv', str(tmp_path)])
    assert (csrc / 'helper.hpp').read_text().endswith(
        '#include <ATen/cuda/Atomic.cuh>\n')
    assert (csrc / 'other.cu').read_text() == '#include <cuda.h>\n'
    setup = (tmp_path / 'setup.py').read_text()
    assert 'except ImportError' in setup
    # the fallback works without pkg_resources
    code = ('import sys; sys.modules["pkg_resources"] = None; '
            f'exec(open({str(tmp_path / "setup.py")!r}).read())')
    assert run(['-c', code]).strip() == 'True'


@pytest.mark.parametrize('key,weighting', [('yolo', 'FixedWeighting'),
                                           ('yolo_slf', 'SLFWeighting')])
def test_digits_config_keeps_the_voc_model(tmp_path, key, weighting):
    out = tmp_path / 'digits.py'
    gpu_check.main([
        'make-config', gpu_check.find_config(key), str(out), '--data-root',
        str(tmp_path / 'VOCdevkit'), '--iters', '7'
    ])
    cfg = Config.fromfile(str(out))
    base = Config.fromfile(osp.join(REPO_ROOT, gpu_check.find_config(key)))
    assert cfg.model.bbox_head.weighting == base.model.bbox_head.weighting
    assert cfg.model.bbox_head.weighting.type == weighting
    assert cfg.model.backbone == base.model.backbone
    assert cfg.optim_wrapper == base.optim_wrapper
    assert cfg.model.bbox_head.num_classes == 10
    dataset = cfg.train_dataloader.dataset
    assert dataset.type == 'VOCDataset'
    assert dataset.data_root == str(tmp_path / 'VOCdevkit') + '/'
    assert dataset.pipeline == base.train_pipeline
    assert cfg.test_dataloader.dataset.metainfo.classes == tuple('0123456789')
    assert cfg.train_cfg.max_iters == 7
    assert cfg.default_hooks.checkpoint.interval == 7


def script_function(name, *args):
    """Call one shell function of tools/gpu_check.sh on its own."""
    script = osp.join(REPO_ROOT, 'tools', 'gpu_check.sh')
    code = (f'eval "$(sed -n \'/^{name}() {{/,/^}}/p\' {script})"; '
            f'{name} "$@"')
    result = subprocess.run(['bash', '-c', code, 'bash', *args],
                            capture_output=True, text=True, check=True)
    return result.stdout.split()


@pytest.mark.parametrize('run_name,objective,estimator', [
    ('slf_amp', 'scale_free', 'expected'),
    ('slf_gumbel_amp', 'joint', 'gumbel'),
    ('slf_gumbel_fp32', 'joint', 'gumbel'),
])
def test_run_options_select_the_weighting(tmp_path, run_name, objective,
                                          estimator):
    import mmdet_slf  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    options = script_function('run_options', run_name)
    if options:
        assert options[0] == '--cfg-options'
        parsed = dict(item.split('=') for item in options[1:])
    out = tmp_path / 'digits.py'
    gpu_check.main([
        'make-config', gpu_check.find_config('yolo_slf'), str(out),
        '--data-root', str(tmp_path / 'VOCdevkit'), '--iters', '7'
    ])
    cfg = Config.fromfile(str(out))
    if options:
        cfg.merge_from_dict(parsed)
    # the merged weighting config builds, with the run's method
    weighting = MODELS.build(
        dict(cfg.model.bbox_head.weighting,
             terms=['coord', 'pred', 'obj', 'noobj']))
    assert weighting.decision_objective == objective
    assert weighting.estimator == estimator


@pytest.mark.parametrize('variable,value,message', [
    ('GPU_CHECK_TRAIN_RUNS', 'slf_fp32 slf_bf16',
     "unknown run 'slf_bf16'"),
    ('GPU_CHECK_STEP_MODELS', 'retinanet fcos', "unknown model 'fcos'"),
])
def test_unknown_selection_stops_before_any_stage(tmp_path, variable, value,
                                                  message):
    env = dict(os.environ, OUT=str(tmp_path / 'out'),
               GPU_CHECK_WORK=str(tmp_path / 'work'), **{variable: value})
    result = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools', 'gpu_check.sh')], env=env,
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert message in result.stdout
    # nothing was installed, built or recorded
    assert os.listdir(tmp_path / 'work' / 'state') == []
    assert not (tmp_path / 'work' / 'site').exists()


def test_record_and_summary(tmp_path):
    run_dir = tmp_path / 'train_slf_fp32'
    vis = run_dir / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    lines = [
        dict(loss=9.0, loss_coord=1.0, slf_w_coord=4.9, iter=10, time=0.1),
        dict(loss=7.0, loss_coord=0.5, slf_w_coord=4.8, iter=20, time=0.1),
    ]
    (vis / 'scalars.json').write_text(''.join(
        json.dumps(line) + '\n' for line in lines))
    (run_dir / 'iter_20.pth').write_bytes(b'0')
    state = str(tmp_path / 'state')
    assert gpu_check.main([
        'record', '--state', state, '--name', 'train_slf_fp32', '--parse',
        'train', '--work-dir', str(run_dir), '--expect-slf'
    ]) == 0
    # a non-finite loss fails the stage even with exit status 0
    lines[1]['loss'] = float('nan')
    (vis / 'scalars.json').write_text(''.join(
        json.dumps(line) + '\n' for line in lines))
    assert gpu_check.main([
        'record', '--state', state, '--name', 'train_fixed_amp', '--parse',
        'train', '--work-dir', str(run_dir)
    ]) == 1
    log = tmp_path / 'test.log'
    log.write_text("{'pascal_voc/mAP': 0.0123, 'pascal_voc/AP50': 0.012}\n")
    gpu_check.main([
        'record', '--state', state, '--name', 'test_slf_fp32', '--parse',
        'test', '--log', str(log)
    ])
    fps = tmp_path / 'fps.json'
    fps.write_text(json.dumps(dict(
        device='GPU', dtype='float32', ratio=1.01, ratio_2se=0.02,
        results=[dict(config='a', fps=100.0), dict(config='b', fps=101.0)])))
    gpu_check.main([
        'record', '--state', state, '--name', 'fps_yolo_fp32', '--parse',
        'fps', '--work-dir', str(fps)
    ])
    gpu_check.main(['record', '--state', state, '--name', 'fps_yolo_fp16',
                    '--skipped', 'deadline'])
    step = tmp_path / 'step.json'
    step.write_text(json.dumps(dict(
        device='GPU', mode='train', batch_size=2, dtype='float32',
        ratio=1 / 1.25, ratio_2se=0.032, step_ratio=1.25, step_ratio_2se=0.05,
        step_ratio_paired=1.24816, step_ratio_paired_ci=[1.2312, 1.26544],
        log_reads=True,
        results=[dict(config='a', fps=20.0, step_ms=100.0),
                 dict(config='b', fps=16.0, step_ms=125.0)],
        operators=dict(totals={'0': 2672, '1': 2810}, difference=138,
                       counts={}, differences={'mul': 9}),
        profile=dict(
            num_iters=5, sorted_by='self_device_ms',
            totals={'0': dict(host_op_calls=700.0, device_kernels=500.0,
                              self_cpu_ms=30.0, self_device_ms=99.0),
                    '1': dict(host_op_calls=850.0, device_kernels=640.0,
                              self_cpu_ms=36.0, self_device_ms=101.5)},
            differences=[dict(name=f'op{i}', diff_calls=float(i),
                              diff_self_cpu_ms=0.1 * i,
                              diff_self_device_ms=0.01 * i)
                         for i in range(8, 0, -1)]))))
    gpu_check.main([
        'record', '--state', state, '--name', 'step_faster_rcnn_fp32',
        '--parse', 'fps', '--work-dir', str(step)
    ])
    # a profile that failed is reported beside the timing it kept
    failed = tmp_path / 'step_amp.json'
    failed.write_text(json.dumps(dict(
        device='GPU', mode='train', batch_size=4, step_ratio=1.0,
        step_ratio_2se=0.1, profile_error='RuntimeError: no tracing',
        results=[dict(config='a', step_ms=10.0),
                 dict(config='b', step_ms=10.0)])))
    gpu_check.main([
        'record', '--state', state, '--name', 'step_yolo_amp',
        '--parse', 'fps', '--work-dir', str(failed)
    ])
    out = tmp_path / 'report.json'
    gpu_check.main(['summary', '--state', state, '--out', str(out)])
    summary = json.loads(out.read_text())['summary']
    assert summary['losses_finite'] == {
        'train_slf_fp32': True, 'train_fixed_amp': False}
    assert summary['slf_weights_logged'] == {
        'train_slf_fp32': ['slf_w_coord']}
    assert summary['amp_ok'] is False
    assert summary['test_map'] == {'test_slf_fp32': 0.0123}
    assert summary['fps']['yolo']['fp32']['slf_fps'] == 101.0
    assert summary['fps']['yolo']['fp32']['paper_titan_x_fps'] == 45
    # 'faster_rcnn' keeps its underscore: only the dtype is split off
    yolo = summary['train_step'].pop('yolo')
    assert yolo['amp']['profile_error'] == 'RuntimeError: no tracing'
    assert yolo['amp']['step_ratio_slf_over_fixed'] == 1.0
    assert 'profile' not in yolo['amp']
    assert summary['train_step'] == {'faster_rcnn': {'fp32': dict(
        stage_status='ok', batch_size=2, log_reads=True,
        fixed_step_ms=100.0, slf_step_ms=125.0,
        step_ratio_slf_over_fixed=1.25, step_ratio_2se=0.05,
        step_ratio_paired=1.248, step_ratio_paired_ci=[1.231, 1.265],
        device='GPU', operators=dict(fixed=2672, slf=2810,
                                     slf_minus_fixed=138), profile=dict(
            totals=[dict(host_op_calls=700.0, device_kernels=500.0,
                         self_cpu_ms=30.0, self_device_ms=99.0),
                    dict(host_op_calls=850.0, device_kernels=640.0,
                         self_cpu_ms=36.0, self_device_ms=101.5)],
            # the five largest differences, in the tool's order
            top_differences=[
                dict(name=f'op{i}', diff_calls=float(i),
                     diff_self_cpu_ms=round(0.1 * i, 3),
                     diff_self_device_ms=round(0.01 * i, 3))
                for i in range(8, 3, -1)]))}}
    assert 'step_faster_rcnn_fp32' not in summary['fps'] and \
        'faster_rcnn' not in summary['fps']
    assert sorted(summary['not_ok']) == ['fps_yolo_fp16', 'train_fixed_amp']
    assert summary['missing'] == []


def test_a_step_stopped_after_its_timing_keeps_it(tmp_path):
    """benchmark_fps.py writes its timing before the profile: a stage that
    ran out of time during the profile still reports the timing, marked."""
    state = str(tmp_path / 'state')
    step = tmp_path / 'step.json'
    step.write_text(json.dumps(dict(
        device='GPU', mode='train', batch_size=2, step_ratio=1.05,
        step_ratio_2se=0.02, results=[dict(config='a', step_ms=40.0),
                                      dict(config='b', step_ms=42.0)])))
    gpu_check.main(['record', '--state', state, '--name',
                    'step_retinanet_fp32', '--rc', '124', '--parse', 'fps',
                    '--work-dir', str(step)])
    out = tmp_path / 'report.json'
    gpu_check.main(['summary', '--state', state, '--out', str(out)])
    summary = json.loads(out.read_text())['summary']
    row = summary['train_step']['retinanet']['fp32']
    assert row['stage_status'] == 'timeout'
    assert (row['fixed_step_ms'], row['slf_step_ms']) == (40.0, 42.0)
    assert summary['not_ok'] == ['step_retinanet_fp32']


def test_a_required_stage_without_a_record_is_not_ok(tmp_path):
    """The script stopped before mmcv (e.g. cuda-env failed): the report
    must not read all ok for the stages that did run."""
    state = str(tmp_path / 'state')
    gpu_check.main(['record', '--state', state, '--name', 'install',
                    '--rc', '0'])
    out = tmp_path / 'report.json'
    gpu_check.main(['summary', '--state', state, '--out', str(out),
                    '--require', 'env,install,mmcv'])
    summary = json.loads(out.read_text())['summary']
    assert summary['all_ok'] is False
    assert summary['missing'] == ['env', 'mmcv']
    assert summary['not_ok'] == ['env', 'mmcv']


def test_amp_not_ok_while_an_amp_run_timed_out(tmp_path):
    state = str(tmp_path / 'state')
    gpu_check.main(['record', '--state', state, '--name', 'train_slf_amp',
                    '--rc', '124', '--seconds', '240'])
    gpu_check.main(['record', '--state', state, '--name', 'train_fixed_amp',
                    '--rc', '0'])
    out = tmp_path / 'report.json'
    gpu_check.main(['summary', '--state', state, '--out', str(out)])
    summary = json.loads(out.read_text())['summary']
    assert summary['not_ok'] == ['train_slf_amp']
    assert summary['amp_ok'] is False
    # with both AMP runs finished it holds
    gpu_check.main(['record', '--state', state, '--name', 'train_slf_amp',
                    '--rc', '0'])
    gpu_check.main(['summary', '--state', state, '--out', str(out)])
    assert json.loads(out.read_text())['summary']['amp_ok'] is True


def test_fps_tool_fp16_with_same_weights(tmp_path):
    out = str(tmp_path / 'fps.json')
    output = run([
        'tools/benchmark_fps.py', gpu_check.find_config('fast_yolo'),
        '--compare', gpu_check.find_config('fast_yolo_slf'), '--same-weights',
        '--fp16', '--device', 'cpu', '--num-iters', '3', '--warmup', '1',
        '--threads', '1', '--shape', '128', '128', '--out', out,
        '--cfg-options', 'model.bbox_head.input_size=128',
        'model.backbone.widen_factor=0.125', 'model.bbox_head.in_channels=128',
        'model.bbox_head.fc_channels=64'
    ])
    assert 'same weights:' in output
    with open(out) as f:
        summary = json.load(f)
    assert summary['dtype'] == 'float16 (autocast)'
    assert summary['same_weights'] is True
    fixed, slf = summary['results']
    assert slf['params'] == fixed['params'] + slf['weighting_params']
    assert os.path.getsize(out) > 0


def test_summary_reports_the_weightings_host_cost(tmp_path):
    import weighting_host_cost
    cost = tmp_path / 'host_cost_retinanet.json'
    measured = weighting_host_cost.main([
        '--rounds', '2', '--steps', '1', '--warmup', '0', '--out', str(cost)
    ])
    state = str(tmp_path / 'state')
    gpu_check.main(['record', '--state', state, '--name',
                    'host_cost_retinanet', '--rc', '0', '--parse', 'json',
                    '--work-dir', str(cost)])
    # a run that failed is left out of the summary, not reported as zero
    gpu_check.main(['record', '--state', state, '--name', 'host_cost_yolo',
                    '--rc', '1', '--parse', 'json', '--work-dir',
                    str(tmp_path / 'missing.json')])
    out = tmp_path / 'report.json'
    gpu_check.main(['summary', '--state', state, '--out', str(out)])
    summary = json.loads(out.read_text())['summary']
    assert list(summary['host_cost']) == ['retinanet']
    reported = summary['host_cost']['retinanet']
    assert reported['device'] == 'cpu'
    for name in ('fixed', 'slf'):
        added = measured['added'][name]
        assert reported[name]['operators'] == added['operators']
        assert reported[name]['added_us'] == round(added['us'], 1)
        assert reported[name]['ci'] == [round(added['ci_low'], 1),
                                        round(added['ci_high'], 1)]
    assert 'host_cost_yolo' in summary['not_ok']


@pytest.mark.parametrize('name,details,problem', [
    ('fps_yolo', dict(results=[dict(fps=1.0), dict(fps=1.0)]),
     'not enough values to unpack'),
    ('step_yolo_fp32', dict(results=[dict(step_ms=1.0), dict(step_ms=1.0)],
                            step_ratio_slf_over_fixed=None,
                            step_ratio_2se=0.1),
     'NoneType'),
])
def test_a_malformed_stage_record_is_named(tmp_path, name, details,
                                           problem):
    """A stage record without its numbers, or named without its dtype, is
    refused with the stage's name, not a bare traceback from inside the
    table."""
    state = tmp_path / 'state'
    state.mkdir()
    (state / f'{name}.json').write_text(json.dumps(
        dict(name=name, status='ok', details=details)))
    with pytest.raises(ValueError, match=f"stage '{name}' is malformed "
                       rf'\(.*{problem}.*\); fps_ and step_ stages'):
        gpu_check.main(['summary', '--state', str(state), '--out',
                        str(tmp_path / 'report.json')])


@pytest.mark.parametrize('iters,warmup', [(50, 10), (3, 1), (500, 20)])
def test_digits_config_schedule_follows_its_options(tmp_path, iters,
                                                    warmup):
    """--iters sets the schedule: warm-up iters // 5 held to [1, 20] (50
    -> 10, 3 -> 1, 500 -> 20) and an evaluation interval of 1000 x iters,
    which never comes; the data options are written as given."""
    out = tmp_path / 'digits.py'
    gpu_check.main([
        'make-config', gpu_check.find_config('yolo'), str(out),
        '--data-root', str(tmp_path / 'VOCdevkit'), '--iters', str(iters),
        '--subset', 'SUB', '--batch-size', '3', '--workers', '2',
        '--log-interval', '4'
    ])
    cfg = Config.fromfile(str(out))
    assert cfg.train_cfg.max_iters == iters
    assert cfg.train_cfg.val_interval == iters * 1000
    assert cfg.param_scheduler[0].end == warmup
    loader = cfg.train_dataloader
    assert (loader.batch_size, loader.num_workers) == (3, 2)
    assert loader.dataset.ann_file == 'SUB/ImageSets/Main/trainval.txt'
    assert cfg.default_hooks.logger.interval == 4


def test_patch_mmcv_covers_every_source_kind(tmp_path):
    """Each C/C++/CUDA source kind under csrc gets the header swapped; a
    file of another kind is left as it was."""
    csrc = tmp_path / 'mmcv' / 'ops' / 'csrc'
    csrc.mkdir(parents=True)
    include = '#include <THC/THCAtomics.cuh>\n'
    for ext in ('cu', 'cuh', 'h', 'hpp', 'cpp', 'txt'):
        (csrc / f'f.{ext}').write_text(include)
    (tmp_path / 'setup.py').write_text('import os\n')
    gpu_check.main(['patch-mmcv', str(tmp_path)])
    for ext in ('cu', 'cuh', 'h', 'hpp', 'cpp'):
        assert (csrc / f'f.{ext}').read_text() == \
            '#include <ATen/cuda/Atomic.cuh>\n', ext
    assert (csrc / 'f.txt').read_text() == include


def test_config_path_looks_under_its_root(tmp_path, capsys):
    """--root is searched, the first name found there printed (here the
    second of the two names); a root with none of them is named."""
    name = gpu_check.CONFIGS['yolo'][1]
    (tmp_path / name).parent.mkdir(parents=True)
    (tmp_path / name).write_text('')
    gpu_check.main(['config-path', 'yolo', '--root', str(tmp_path)])
    assert capsys.readouterr().out.strip() == name
    empty = tmp_path / 'empty'
    with pytest.raises(FileNotFoundError, match=f'under {empty}$'):
        gpu_check.find_config('yolo', str(empty))


def record(state, *argv):
    return gpu_check.main(['record', '--state', str(state), *argv])


def recorded(state, name):
    with open(osp.join(state, f'{name}.json')) as f:
        return json.load(f)


def test_record_status_from_exit_code_and_skip(tmp_path):
    """Exit 0 is ok, 124 (timeout's) and 137 (killed) are a timeout, any
    other code failed; a skipped stage is not a failure: exit 0."""
    state = tmp_path / 'state'
    for rc, status, code in (('0', 'ok', 0), ('124', 'timeout', 1),
                             ('137', 'timeout', 1), ('2', 'failed', 1)):
        assert record(state, '--name', f's{rc}', '--rc', rc) == code
        assert recorded(state, f's{rc}')['status'] == status
    assert record(state, '--name', 'skip', '--skipped', 'no GPU') == 0
    assert recorded(state, 'skip')['status'] == 'skipped'


def train_run(run_dir, checkpoint=True, slf=False):
    vis = run_dir / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    line = dict(loss=1.0, loss_cls=0.5, iter=10, time=0.1)
    if slf:
        line['slf_w_cls'] = 1.0
    (vis / 'scalars.json').write_text(json.dumps(line) + '\n')
    if checkpoint:
        (run_dir / 'iter_10.pth').write_bytes(b'0')
    return str(run_dir)


def test_a_training_needs_its_checkpoint_and_slf_keys_if_asked(tmp_path):
    """Finite losses without a checkpoint fail the stage; slf_w_* keys are
    required with --expect-slf only."""
    state = tmp_path / 'state'
    fixed = train_run(tmp_path / 'fixed')
    assert record(state, '--name', 'fixed', '--parse', 'train',
                  '--work-dir', fixed) == 0
    assert record(state, '--name', 'slf', '--parse', 'train',
                  '--work-dir', fixed, '--expect-slf') == 1
    assert recorded(state, 'slf')['reason'] == 'no slf_w_* keys logged'
    bare = train_run(tmp_path / 'bare', checkpoint=False, slf=True)
    assert record(state, '--name', 'bare', '--parse', 'train',
                  '--work-dir', bare, '--expect-slf') == 1
    entry = recorded(state, 'bare')
    assert entry['details']['losses_finite'] is True
    assert entry['reason'] == 'non-finite loss or no checkpoint'


def test_a_test_stage_needs_an_map_and_zero_is_one(tmp_path):
    """An mAP of 0.0 (a few iterations of training) is a result: ok. A log
    without any mAP fails the stage."""
    state = tmp_path / 'state'
    zero, none = tmp_path / 'zero.log', tmp_path / 'none.log'
    zero.write_text("{'pascal_voc/mAP': 0.0, 'pascal_voc/AP50': 0.0}\n")
    none.write_text('Traceback (most recent call last):\n')
    assert record(state, '--name', 'test_zero', '--parse', 'test', '--log',
                  str(zero)) == 0
    assert recorded(state, 'test_zero')['details']['map'] == 0.0
    assert record(state, '--name', 'test_none', '--parse', 'test', '--log',
                  str(none)) == 1
    entry = recorded(state, 'test_none')
    assert entry['reason'] == 'no pascal_voc/mAP printed'
    assert entry['errors'] == ['Traceback (most recent call last):']


def test_an_unreadable_result_fails_a_stage_that_exited_0(tmp_path):
    state = tmp_path / 'state'
    bad = tmp_path / 'fps.json'
    bad.write_text('{not json')
    assert record(state, '--name', 'fps_yolo_fp32', '--parse', 'fps',
                  '--work-dir', str(bad)) == 1
    entry = recorded(state, 'fps_yolo_fp32')
    assert entry['status'] == 'failed'
    assert entry['parse_error'].startswith('JSONDecodeError')


def test_summary_order_keeps_every_stage_and_amp_needs_a_run(tmp_path):
    """--order puts the named stages first, the others after them (in
    name order), none left out; with no AMP run recorded amp_ok is
    False, not vacuously True."""
    state = tmp_path / 'state'
    for name in ('a', 'b', 'c'):
        record(state, '--name', name)
    out = tmp_path / 'report.json'
    gpu_check.main(['summary', '--state', str(state), '--out', str(out),
                    '--order', 'c,x'])
    report = json.loads(out.read_text())
    assert [stage['name'] for stage in report['stages']] == ['c', 'a', 'b']
    assert report['summary']['all_ok'] is True
    assert report['summary']['amp_ok'] is False


def test_bad_arguments_are_refused_by_name(tmp_path, capsys):
    """Each of these failed with a traceback, or wrote a config or summary
    that read as fine: a folder that is not an mmcv source, a schedule of
    0 iterations, a state or root folder that does not exist."""
    missing = str(tmp_path / 'missing')
    config = gpu_check.find_config('yolo')
    cases = [
        (['patch-mmcv', str(tmp_path)],
         f'patch-mmcv: {tmp_path} is not an unpacked mmcv source'),
        (['make-config', config, 'o.py', '--data-root', 'D', '--iters', '0'],
         '--iters must be >= 1, got 0'),
        (['make-config', config, 'o.py', '--data-root', 'D',
          '--batch-size', '0'], '--batch-size must be >= 1, got 0'),
        (['make-config', config, 'o.py', '--data-root', 'D',
          '--log-interval', '0'], '--log-interval must be >= 1, got 0'),
        (['make-config', config, 'o.py', '--data-root', 'D',
          '--workers', '-1'], '--workers must be >= 0, got -1'),
        (['summary', '--state', missing, '--out', 'r.json'],
         f'--state: {missing} is not a folder'),
        (['config-path', 'yolo', '--root', missing],
         f'--root: {missing} is not a folder'),
    ]
    for argv, message in cases:
        assert message in refusal(gpu_check.parse_args, argv, capsys), argv
    with pytest.raises(SystemExit, match='config-path yolo: none of .* '
                       f'under {tmp_path}$'):
        gpu_check.main(['config-path', 'yolo', '--root', str(tmp_path)])


def test_a_summary_needs_readable_records(tmp_path):
    """A state folder without records is not all ok (no stage ran); a
    record that is not a JSON object is refused with its file named."""
    state = tmp_path / 'state'
    state.mkdir()
    out = tmp_path / 'report.json'
    gpu_check.main(['summary', '--state', str(state), '--out', str(out)])
    assert json.loads(out.read_text())['summary']['all_ok'] is False
    record(state, '--name', 'env')
    gpu_check.main(['summary', '--state', str(state), '--out', str(out)])
    assert json.loads(out.read_text())['summary']['all_ok'] is True
    for text, why in (('{not json', 'Expecting property name'),
                      ('[1, 2]', 'a JSON list, not an object')):
        (state / 'bad.json').write_text(text)
        with pytest.raises(ValueError,
                           match=f'{state}/bad.json: not a stage record '
                           fr'\(.*{why}'):
            gpu_check.main(['summary', '--state', str(state), '--out',
                            str(out)])
