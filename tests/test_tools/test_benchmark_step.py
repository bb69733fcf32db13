# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""``tools/benchmark_fps.py --train``: the interleaved training-step timing
of a fixed-weight detector against its SLF version."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT, refusal, small_yolo_cfg

from mmdet_slf.benchmarking import speed

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import benchmark_fps  # noqa: E402

# tools/benchmark_fps.py's --cfg-options for conftest.SMALL_YOLO.
SMALL_OPTIONS = [
    'model.bbox_head.input_size=128', 'model.backbone.widen_factor=0.125',
    'model.bbox_head.in_channels=128', 'model.bbox_head.fc_channels=64'
]


def test_every_compared_model_gets_the_same_batches():
    """The rounds of an interleaved timing pair up only if both models see
    the same images, boxes and labels in the same order."""
    cfgs = [speed.load_cfg(osp.join(REPO_ROOT, 'configs/demo/benchmark',
                                    name), None)
            for name in ('fixed.py', 'slf-scale-free-expected.py')]
    for train in (True, False):
        streams, batch_size = speed.input_streams(cfgs, train=train,
                                                  batch_size=2)
        assert batch_size == (2 if train else 1)
        for _ in range(3):
            first, second = next(streams[0]), next(streams[1])
            for a, b in zip(first['inputs'], second['inputs']):
                assert torch.equal(a, b)
            for a, b in zip(first['data_samples'], second['data_samples']):
                assert a.metainfo == b.metainfo
                if train:
                    assert torch.equal(a.gt_instances.bboxes,
                                       b.gt_instances.bboxes)
                    assert torch.equal(a.gt_instances.labels,
                                       b.gt_instances.labels)


def test_random_train_batches_are_valid_and_reproducible():
    first = speed.random_train_batches((96, 160), 3, classes=5)
    second = speed.random_train_batches((96, 160), 3, classes=5)
    for _ in range(4):
        batch, again = next(first), next(second)
        assert len(batch['inputs']) == len(batch['data_samples']) == 3
        for image, sample, other in zip(batch['inputs'],
                                        batch['data_samples'],
                                        again['data_samples']):
            assert image.shape == (3, 96, 160) and image.dtype == torch.uint8
            boxes = sample.gt_instances.bboxes
            labels = sample.gt_instances.labels
            assert 1 <= len(boxes) <= 4 and len(labels) == len(boxes)
            assert ((labels >= 0) & (labels < 5)).all()
            x1, y1, x2, y2 = boxes.unbind(1)
            assert (x1 >= 0).all() and (y1 >= 0).all()
            assert (x2 <= 160).all() and (y2 <= 96).all()
            assert (x2 - x1 >= 16).all() and (y2 - y1 >= 16).all()
            assert torch.equal(boxes, other.gt_instances.bboxes)


def test_random_train_batches_draw_one_to_four_boxes():
    """Every count from 1 to 4 boxes turns up among 40 seeded images (a
    uniform draw misses 4 in all of them with odds (3 / 4) ** 40 < 1e-4),
    and never more, so the assigner sees the intended spread of loads."""
    stream = speed.random_train_batches((32, 32), 4, classes=3)
    counts = {len(sample.gt_instances.bboxes)
              for _ in range(10) for sample in next(stream)['data_samples']}
    assert counts == {1, 2, 3, 4}


def test_random_train_batches_refuse_images_smaller_than_a_box():
    with pytest.raises(ValueError, match='got 8 x 160'):
        next(speed.random_train_batches((8, 160), 1, classes=5))


def test_bad_arguments_exit_the_script_with_status_2():
    result = subprocess.run(
        [sys.executable, 'tools/benchmark_fps.py', 'configs/yolo_voc.py',
         '--shape', '0', '448'], cwd=REPO_ROOT, capture_output=True,
        text=True)
    assert result.returncode == 2
    assert '--shape H W must be >= 1 each' in result.stderr
    assert 'got 0 448' in result.stderr


@pytest.mark.parametrize('extra,message', [
    (['--train', '--shape', '8', '8'], 'got 8 8'),
    (['--same-weights'], 'need --compare'),
    (['--compare-checkpoint', 'b.pth'], 'need --compare'),
    (['--compare', osp.join(REPO_ROOT, 'configs/yolo_slf_voc.py'),
      '--compare-checkpoint',
      'b.pth', '--same-weights'], 'would overwrite the weights'),
    (['--train', '--fuse-conv-bn'], 'neither --fuse-conv-bn nor --dataset'),
    (['--train', '--dataset'], 'neither --fuse-conv-bn nor --dataset'),
    (['--train', '--fp16', '--device', 'cpu'],
     'needs a GPU (--device cuda)'),
    (['--batch-size', '4'], '--batch-size needs --train'),
    (['--train', '--batch-size', '0'], '--batch-size needs --train and '
     'must be >= 1, got 0'),
    (['--log-reads'], '--log-reads needs --train'),
])
def test_bad_arguments_are_refused(extra, message, capsys):
    assert message in refusal(benchmark_fps.parse_args,
                              [osp.join(REPO_ROOT, 'configs/yolo_voc.py'),
                               *extra], capsys)


def test_good_arguments_pass():
    args = benchmark_fps.parse_args([
        osp.join(REPO_ROOT, 'configs/yolo_voc.py'), '--train',
        '--batch-size', '2', '--shape',
        '16', '32', '--log-reads'
    ])
    assert args.train and args.batch_size == 2 and args.shape == [16, 32]


def test_num_classes_takes_the_largest_in_the_model():
    two_stage = dict(
        rpn_head=dict(type='RPNHead', num_classes=1),
        roi_head=dict(bbox_head=[dict(num_classes=20),
                                 dict(num_classes=20)]))
    assert speed.num_classes(two_stage) == 20
    assert speed.num_classes(small_yolo_cfg('yolo_voc.py').model) == 20
    with pytest.raises(ValueError, match='no num_classes'):
        speed.num_classes(dict(backbone=dict(depth=50)))


def test_without_pretrained_drops_only_pretrained_initialisers():
    model = dict(
        backbone=dict(type='ResNet', init_cfg=dict(
            type='Pretrained', checkpoint='torchvision://resnet50')),
        neck=[dict(type='FPN', init_cfg=dict(type='Xavier'))],
        bbox_head=dict(init_cfg=dict(type='Normal', std=0.01)))
    assert speed.without_pretrained(model) == dict(
        backbone=dict(type='ResNet'),
        neck=[dict(type='FPN', init_cfg=dict(type='Xavier'))],
        bbox_head=dict(init_cfg=dict(type='Normal', std=0.01)))
    # the input is left as it was
    assert model['backbone']['init_cfg']['type'] == 'Pretrained'
    retinanet = speed.load_cfg(
        'mmdet::pascal_voc/retinanet_r50_fpn_1x_voc0712.py', None)
    assert 'Pretrained' in str(retinanet.model)
    assert 'Pretrained' not in str(
        speed.without_pretrained(retinanet.model))


def test_timed_step_trains_the_detector_and_runs_the_weighting():
    """The callable that is timed is a whole training step: the detector's
    weights move and the SLF weighting runs once per step."""
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = small_yolo_cfg('fast-yolo_slf_voc.py')
    torch.manual_seed(0)
    model = speed.build_model(cfg, None, 'cpu', False, train=True)
    assert model.training
    calls = []
    model.bbox_head.weighting.register_forward_hook(
        lambda *args: calls.append(1))
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    step = speed.training_step(model, cfg)
    batches = speed.random_train_batches((128, 128), 2, classes=20)
    assert step(next(batches)) == 2
    assert calls == [1]
    moved = [
        k for k, v in model.backbone.state_dict().items()
        if v.is_floating_point() and not torch.equal(v, before[k])
    ]
    assert len(moved) > 0


def test_read_log_vars_gives_the_runner_its_numbers():
    log_vars = {'loss': torch.tensor(1.5), 'slf_w_box': torch.tensor(0.25),
                'count': 3}
    read = speed.read_log_vars(log_vars)
    assert read == {'loss': 1.5, 'slf_w_box': 0.25, 'count': 3}
    assert all(type(value) in (float, int) for value in read.values())


def test_step_ratio_of_fixed_and_slf(tmp_path):
    out = tmp_path / 'step.json'
    result = subprocess.run(
        [sys.executable, 'tools/benchmark_fps.py', 'configs/fast-yolo_voc.py',
         '--compare', 'configs/fast-yolo_slf_voc.py', '--same-weights',
         '--train', '--batch-size', '2', '--device', 'cpu', '--num-iters',
         '4', '--warmup', '1', '--threads', '1', '--shape', '128', '128',
         '--profile', '2', '--log-reads', '--count-ops', '--out', str(out),
         '--cfg-options', *SMALL_OPTIONS],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'step time ratio (second / first)' in result.stdout
    summary = json.loads(out.read_text())
    # Exact operator counts: the SLF step adds the decision network's
    # LayerNorm and two Linear layers (addmm) forward and backward.
    ops = summary['operators']
    for key in ('0', '1'):
        assert ops['totals'][key] == sum(ops['counts'][key].values())
    assert ops['difference'] == ops['totals']['1'] - ops['totals']['0'] \
        == sum(ops['differences'].values()) > 0
    assert ops['differences']['native_layer_norm'] == 1
    assert ops['differences']['native_layer_norm_backward'] == 1
    assert ops['differences']['addmm'] == 2
    assert summary['mode'] == 'train' and summary['batch_size'] == 2
    assert summary['same_weights'] is True and summary['log_reads'] is True
    assert 'with the runner\'s reads of the returned values' in result.stdout
    fixed, slf = summary['results']
    # the SLF model is the same detector plus its loss weighting
    assert fixed['weighting_params'] == 0 and slf['weighting_params'] > 0
    assert slf['params'] == fixed['params'] + slf['weighting_params']
    for entry in (fixed, slf):
        assert entry['step_ms'] == pytest.approx(2 * entry['mean_ms'])
        assert entry['fps'] == pytest.approx(1e3 / entry['mean_ms'])
    # the step-time ratio is the inverse of the speed ratio
    assert summary['step_ratio'] == pytest.approx(
        slf['step_ms'] / fixed['step_ms'])
    assert summary['step_ratio'] * summary['ratio'] == pytest.approx(1.0)
    assert summary['step_ratio_2se'] == pytest.approx(
        summary['ratio_2se'] / summary['ratio']**2)
    # paired by round: a geometric mean of the four per-round ratios,
    # inside its own interval
    assert 'step time ratio, paired by round' in result.stdout
    low, high = summary['step_ratio_paired_ci']
    assert low < summary['step_ratio_paired'] < high
    assert 0.5 < summary['step_ratio_paired'] < 2.0
    # the profile: the SLF step runs the decision network besides the
    # detector's operators, on the CPU without device kernels
    profile = summary['profile']
    assert profile['num_iters'] == 2 and profile['sorted_by'] == 'self_cpu_ms'
    totals = profile['totals']
    assert totals['1']['host_op_calls'] > totals['0']['host_op_calls']
    assert totals['0']['device_kernels'] == totals['1']['device_kernels'] == 0
    diffs = [abs(row['diff_self_cpu_ms']) for row in profile['differences']]
    assert len(diffs) == 20 and diffs == sorted(diffs, reverse=True)
    assert 'largest differences (second - first)' in result.stdout
    # In both losses the weighting's non-finite check is the one host sync,
    # and only the application of the weights follows it (mul, sum and one
    # unbind into the terms coord, pred, obj, noobj).
    for key in ('0', '1'):
        syncs = profile['loss_host_syncs'][key]
        assert [sync['operator'] for sync in syncs['syncs']] == \
            ['_local_scalar_dense']
        assert syncs['operators_after_last_sync'] == 3
    assert profile['loss_host_syncs']['1']['operators'] > \
        profile['loss_host_syncs']['0']['operators']


def test_a_failed_profile_keeps_the_timing(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError('no device tracing')

    from mmdet_slf.benchmarking import step_operators
    monkeypatch.setattr(step_operators, 'profile_calls', broken)
    out = tmp_path / 'step.json'
    monkeypatch.setattr(sys, 'argv', [
        'benchmark_fps.py', 'configs/fast-yolo_voc.py', '--train',
        '--batch-size', '1', '--device', 'cpu', '--num-iters', '1',
        '--warmup', '1', '--shape', '128', '128', '--profile', '1', '--out',
        str(out), '--cfg-options', *SMALL_OPTIONS
    ])
    monkeypatch.chdir(REPO_ROOT)
    benchmark_fps.main()
    summary = json.loads(out.read_text())
    assert summary['profile_error'] == 'RuntimeError: no device tracing'
    assert 'profile' not in summary
    assert summary['results'][0]['step_ms'] > 0
    assert 'profile failed: RuntimeError' in capsys.readouterr().err


@pytest.mark.parametrize('train', [True, False])
def test_ratios_are_second_over_first_in_time_and_first_over_second_in_fps(
        train):
    """The second model 10% slower on every round: step-time ratios of
    1.1, FPS ratios of 1 / 1.1, whatever the rounds' own speeds."""
    from mmdet_slf.utils.timing import Timing
    first = Timing(seconds=[1.0, 1.3, 0.9, 1.1], items=[10] * 4)
    second = Timing(seconds=[1.1 * s for s in first.seconds],
                    items=[10] * 4)
    out = benchmark_fps.two_model_ratios(dict(zip('01', (first, second))),
                                         train)
    assert out['ratio'] == pytest.approx(1 / 1.1)
    if train:
        assert out['step_ratio'] == pytest.approx(1.1)
        assert out['step_ratio_paired'] == pytest.approx(1.1)
        assert out['step_ratio_paired_ci'] == pytest.approx([1.1, 1.1])
    else:
        assert out['ratio_paired'] == pytest.approx(1 / 1.1)
        assert out['ratio_paired_ci'] == pytest.approx([1 / 1.1, 1 / 1.1])


@pytest.mark.parametrize('train', [True, False])
def test_two_standard_errors_keep_their_relative_size_in_either_ratio(
        train):
    """Times per image 1.0, 1.3, 0.9, 1.1 s / 10 for the first model and
    1.1 x those for the second: both have cv = 0.170783 / 1.075 =
    0.158867, so the ratio's relative standard error is
    sqrt(2 cv^2 / 4) = 0.112336 and two standard errors are
    2 x 1.1 x 0.112336 = 0.247140 of the step time ratio 1.1, and
    2 / 1.1 x 0.112336 = 0.204248 of the FPS ratio 1 / 1.1."""
    from mmdet_slf.utils.timing import Timing
    first = Timing(seconds=[1.0, 1.3, 0.9, 1.1], items=[10] * 4)
    second = Timing(seconds=[1.1 * s for s in first.seconds],
                    items=[10] * 4)
    out = benchmark_fps.two_model_ratios(dict(zip('01', (first, second))),
                                         train)
    assert out['ratio_2se'] == pytest.approx(0.204248, abs=2e-6)
    if train:
        assert out['step_ratio_2se'] == pytest.approx(0.247140, abs=2e-6)
