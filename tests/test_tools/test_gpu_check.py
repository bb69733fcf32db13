# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""tools/gpu_check.sh and its helper, as far as they run without a GPU, and
the --fp16 / --same-weights options of tools/benchmark_fps.py."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO_ROOT
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
