# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Accuracy figures and the AP per class behind them: the bars and lines
hold the input numbers, and the per-class AP agrees with mmdet's VOCMetric
on the same detections."""
import json

import cv2
import numpy as np
import pytest
import torch

import mmdet_slf  # noqa: F401
from mmdet.evaluation import VOCMetric
from mmdet_slf.visualization import (class_average_precision, plot_class_ap,
                                     plot_map_bars, plot_map_curve)


def _bar_names(ax):
    """Bar gids from left to right."""
    return [p.get_gid() for p in sorted(ax.patches, key=lambda p: p.get_x())]


def _tick_names(ax):
    """Tick label texts from left to right."""
    ticks = sorted(zip(ax.get_xticks(), ax.get_xticklabels()),
                   key=lambda tick: tick[0])
    # a long name is wrapped onto several lines at its spaces
    return [label.get_text().replace('\n', ' ') for _, label in ticks]


def test_map_bars_mean_and_std(tmp_path):
    results = {'FixedWeighting': [0.50, 0.70], 'SLFWeighting': [0.60],
               'DWAWeighting': [0.2, 0.3, 0.4]}
    out = str(tmp_path / 'bars.png')
    figure = plot_map_bars(results, out, dpi=50)
    assert cv2.imread(out).shape == (4.5 * 50, 6 * 50, 3)
    ax = figure.axes[0]
    heights = {p.get_gid(): p.get_height() for p in ax.patches}
    assert heights == pytest.approx({'FixedWeighting': 0.6,
                                     'SLFWeighting': 0.6,
                                     'DWAWeighting': 0.3})
    # the name under each bar is the bar's own
    assert _tick_names(ax) == _bar_names(ax)
    # Error bar half-lengths: sample std (0.1414, 0 for one seed, 0.1).
    segments = ax.containers[0].lines[2][0].get_segments()
    half = [abs(s[1][1] - s[0][1]) / 2 for s in segments]
    assert half == pytest.approx([np.sqrt(0.02), 0.0, 0.1])
    with pytest.raises(ValueError, match='at least one'):
        plot_map_bars({'SLFWeighting': []}, out)
    # One seed far above the others: its dot stays inside the axes.
    figure = plot_map_bars({'RLW': [0.05, 0.05, 0.05, 0.05, 0.6]}, out,
                           dpi=50)
    assert figure.axes[0].get_ylim()[1] >= 0.6


def test_map_bars_keep_long_names_inside_the_figure(tmp_path):
    """Names as long as the benchmark's (lambdas in them) are wrapped, and
    every tick label lies inside the PNG; the names read back whole."""
    names = ['Fixed (5, 1, 1, 0.5)',
             'Fixed, tuned lambdas (13.7, 1.12, 0.574, 0.404)',
             'Fixed, tuned lambdas at total 7.5 (6.504, 0.5317, 0.2725, '
             '0.1918)', 'SLF scale-free (expected)']
    out = str(tmp_path / 'bars.png')
    figure = plot_map_bars({name: [0.85, 0.86] for name in names}, out,
                           dpi=50)
    ax = figure.axes[0]
    assert _tick_names(ax) == names
    renderer = figure.canvas.get_renderer()
    width = cv2.imread(out).shape[1]
    for label in ax.get_xticklabels():
        box = label.get_window_extent(renderer)
        assert 0 <= box.x0 and box.x1 <= width, label.get_text()
        assert max(map(len, label.get_text().splitlines())) <= 36


def test_class_ap_bars(tmp_path):
    class_ap = {'0': 0.9, '1': 0.5, '2': 1.0}
    out = str(tmp_path / 'class_ap.png')
    figure = plot_class_ap(class_ap, out, dpi=50)
    assert cv2.imread(out).shape == (4.0 * 50, 6.0 * 50, 3)
    ax = figure.axes[0]
    heights = {p.get_gid(): p.get_height() for p in ax.patches}
    assert heights == pytest.approx(class_ap)
    assert _tick_names(ax) == _bar_names(ax) == ['0', '1', '2']
    [mean_line] = [line for line in ax.get_lines() if line.get_gid() == 'mAP']
    assert mean_line.get_ydata()[0] == pytest.approx(0.8)
    figure = plot_class_ap(class_ap, out, mean_ap=0.75)
    [mean_line] = [ln for ln in figure.axes[0].get_lines()
                   if ln.get_gid() == 'mAP']
    assert mean_line.get_ydata()[0] == pytest.approx(0.75)
    with pytest.raises(ValueError, match='at least one class'):
        plot_class_ap({}, out)


def test_map_curve_reads_validation_lines(tmp_path):
    records = [{'loss': 2.0, 'iter': 100, 'step': 100},
               {'pascal_voc/mAP': 0.4, 'step': 200},
               {'loss': 1.0, 'iter': 300, 'step': 300},
               {'pascal_voc/mAP': 0.7, 'step': 400}]
    run_dir = tmp_path / 'work' / '20240101_000000' / 'vis_data'
    run_dir.mkdir(parents=True)
    (run_dir / 'scalars.json').write_text(
        ''.join(json.dumps(r) + '\n' for r in records))
    # A later test-only run without the key is passed over.
    later = tmp_path / 'work' / '20240102_000000' / 'vis_data'
    later.mkdir(parents=True)
    (later / 'scalars.json').write_text('{"step": 0}\n')
    out = str(tmp_path / 'curve.png')
    figure = plot_map_curve(
        {'SLF': str(tmp_path / 'work'), 'fixed': records[:2]}, out, dpi=50)
    assert cv2.imread(out).shape == (4.0 * 50, 7.0 * 50, 3)
    lines = {ln.get_gid(): ln for ln in figure.axes[0].get_lines()}
    assert lines['SLF'].get_xdata().tolist() == [200, 400]
    assert lines['SLF'].get_ydata().tolist() == [0.4, 0.7]
    assert lines['fixed'].get_xdata().tolist() == [200]
    # each run's final value is in its legend entry
    assert lines['SLF'].get_label() == 'SLF: 0.700'
    with pytest.raises(KeyError, match='val_interval'):
        plot_map_curve({'SLF': records[:1]}, out)


def voc_metric_map(samples, classes):
    """mAP of mmdet's own VOCMetric on data samples."""
    metric = VOCMetric(eval_mode='11points')
    metric.dataset_meta = dict(classes=classes)
    metric.process({}, samples)
    return metric.compute_metrics(metric.results)['mAP']


def sample(gt_bboxes, gt_labels, bboxes, scores, labels):
    return dict(
        gt_instances=dict(bboxes=torch.tensor(gt_bboxes).reshape(-1, 4),
                          labels=torch.tensor(gt_labels)),
        ignored_instances=dict(bboxes=torch.zeros((0, 4)),
                               labels=torch.zeros(0, dtype=torch.long)),
        pred_instances=dict(bboxes=torch.tensor(bboxes).reshape(-1, 4),
                            scores=torch.tensor(scores),
                            labels=torch.tensor(labels)))


def test_class_average_precision_matches_voc_metric():
    classes = ('a', 'b', 'c')
    samples = [
        # class a: the top detection hits its one object -> AP 1.
        sample([[0., 0., 20., 20.]], [0],
               [[0., 0., 20., 20.], [40., 40., 60., 60.]], [0.9, 0.3],
               [0, 0]),
        # class b: two objects; a miss (0.8) ranks above a hit (0.7).
        sample([[0., 0., 20., 20.], [30., 30., 50., 50.]], [1, 1],
               [[60., 60., 70., 70.], [0., 0., 20., 20.]], [0.8, 0.7],
               [1, 1]),
    ]
    results = class_average_precision(
        [s['pred_instances'] for s in samples],
        [s['gt_instances'] for s in samples], classes)
    by_name = {c['name']: c for c in results['classes']}
    assert by_name['a']['ap'] == pytest.approx(1.0)
    # Precision 1/2 up to recall 1/2: 6 of the 11 recall points.
    assert by_name['b']['ap'] == pytest.approx(6 * 0.5 / 11)
    assert by_name['b']['recall'] == pytest.approx(0.5)
    assert (by_name['b']['num_gts'], by_name['b']['num_dets']) == (2, 2)
    # Class c has no objects: AP 0, left out of the mean as VOC does.
    assert by_name['c']['num_gts'] == 0
    assert results['mAP'] == pytest.approx((1.0 + 6 * 0.5 / 11) / 2)
    assert results['mAP'] == pytest.approx(voc_metric_map(samples, classes))


def test_class_average_precision_reads_data_infos():
    infos = [dict(img_path='x.jpg', instances=[
        dict(bbox=[0, 0, 20, 20], bbox_label=0, ignore_flag=0),
        dict(bbox=[30, 30, 50, 50], bbox_label=0, ignore_flag=1)])]
    # The detection on the ignored (difficult) object counts neither way.
    detections = [dict(bboxes=np.array([[30., 30., 50., 50.],
                                        [0., 0., 20., 20.]]),
                       scores=np.array([0.9, 0.8]), labels=np.array([0, 0]))]
    results = class_average_precision(detections, infos, ('a', ))
    assert results['mAP'] == pytest.approx(1.0)
    # Nor does a missed one: 1 object to find, found, AP 1 (not the
    # 6 / 11 of one object found out of two).
    results = class_average_precision(
        [dict(bboxes=detections[0]['bboxes'][1:], scores=np.array([0.8]),
              labels=np.array([0]))], infos, ('a', ))
    assert results['mAP'] == pytest.approx(1.0)
    assert results['classes'][0]['num_gts'] == 1
    with pytest.raises(ValueError, match='equal length'):
        class_average_precision(detections, [], ('a', ))


def test_map_bars_upper_limit(tmp_path):
    """Mean 0.3 +- sample std 0.1414 of (0.2, 0.4): the axis ends at
    0.4414 * 1.25 + 0.05 = 0.6018 (room for the label), not at 1."""
    figure = plot_map_bars({'a': [0.2, 0.4]}, str(tmp_path / 'b.png'),
                           dpi=50)
    top = (0.3 + np.sqrt(0.02)) * 1.25 + 0.05
    assert figure.axes[0].get_ylim() == pytest.approx((0.0, top))


def test_map_curve_legend_holds_the_final_not_the_best_value(tmp_path):
    """mAP 0.4, 0.7, 0.6: the legend ends with the last value, 0.600."""
    records = [{'pascal_voc/mAP': v, 'step': 100 * (i + 1)}
               for i, v in enumerate((0.4, 0.7, 0.6))]
    figure = plot_map_curve({'run': records}, str(tmp_path / 'c.png'),
                            dpi=50)
    [line] = figure.axes[0].get_lines()
    assert line.get_label() == 'run: 0.600'
    assert line.get_xdata().tolist() == [100, 200, 300]


def test_class_ap_iou_threshold_and_legacy_coordinates():
    """Boxes in VOC's inclusive pixel coordinates (width x2 - x1 + 1), as
    VOCMetric counts them.

    gt (0, 0, 9, 9) is 10 x 10; a detection (0, 0, 9, 5) is 10 x 6: IoU
    0.6, a hit at 0.5 (AP 1) and a miss at 0.7 (AP 0).
    gt (0, 0, 4, 4) is 5 x 5; a detection (0, 0, 4, 1.8) is 5 x 2.8: IoU
    0.56, a hit (without the +1 it would be 7.2 / 16 = 0.45, a miss).
    """
    gt = [dict(bboxes=np.array([[0., 0., 9., 9.]]), labels=np.array([0]))]
    det = [dict(bboxes=np.array([[0., 0., 9., 5.]]), scores=np.array([0.9]),
                labels=np.array([0]))]
    assert class_average_precision(det, gt, ('a', ))['mAP'] == \
        pytest.approx(1.0)
    assert class_average_precision(det, gt, ('a', ),
                                   iou_thr=0.7)['mAP'] == pytest.approx(0.0)
    samples = [sample([[0., 0., 4., 4.]], [0], [[0., 0., 4., 1.8]], [0.9],
                      [0])]
    results = class_average_precision(
        [s['pred_instances'] for s in samples],
        [s['gt_instances'] for s in samples], ('a', ))
    assert results['mAP'] == pytest.approx(1.0)
    assert voc_metric_map(samples, ('a', )) == pytest.approx(1.0)
