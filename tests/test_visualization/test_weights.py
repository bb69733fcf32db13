# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Plots of weight trajectories: the PNG is written at the expected size
and the plotted data is the input data."""
import importlib.util
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from conftest import toy_runner, two_weightings_model
from matplotlib.colors import to_rgba

import mmdet_slf  # noqa: F401
from mmdet_slf.visualization import (find_scalars_file, load_scalars,
                                     plot_slf_weights, plot_weight_shares,
                                     plot_weight_trajectories,
                                     weight_shares)
from mmdet_slf.visualization.weights import line_styles

TOOL = osp.join(osp.dirname(__file__), '..', '..', 'tools',
                'plot_slf_weights.py')


def write_scalars(run_dir, records):
    path = run_dir / 'vis_data' / 'scalars.json'
    path.parent.mkdir(parents=True)
    path.write_text(''.join(json.dumps(r) + '\n' for r in records))
    return str(path)


def fake_records(num_iters=5, offset=0.0):
    """Lines as mmengine's LoggerHook writes them, plus a validation line."""
    records = []
    for it in range(1, num_iters + 1):
        w_coord = 5.0 - 0.3 * it + offset
        records.append({
            'lr': 0.01, 'data_time': 0.01, 'loss': 3.0, 'loss_coord': 1.0,
            'slf_w_coord': w_coord, 'slf_w_obj': 7.5 - w_coord,
            'slf_p_coord': w_coord / 7.5, 'slf_p_obj': 1 - w_coord / 7.5,
            'slf_temperature': 1.0 / it, 'slf_entropy': 0.6 - 0.05 * it,
            'bbox_head.cls.slf_w_x': 0.5 + 0.1 * it, 'time': 0.2,
            'iter': it, 'memory': 0, 'step': it})
    records.append({'pascal_voc/mAP': 0.4, 'data_time': 0.01, 'time': 0.1,
                    'step': num_iters})
    return records


def lines_by_gid(figure):
    return {line.get_gid(): line for ax in figure.axes
            for line in ax.get_lines() if line.get_gid()}


def load_tool():
    spec = importlib.util.spec_from_file_location('plot_slf_weights', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_latest_run_with_slf_keys_is_read(tmp_path):
    write_scalars(tmp_path / '20240101_000000', fake_records(3, offset=1.0))
    wanted = write_scalars(tmp_path / '20240102_000000', fake_records(5))
    # A later test-only run logs metrics but no weights: it is passed over.
    write_scalars(tmp_path / '20240103_000000',
                  [{'pascal_voc/mAP': 0.5, 'step': 0}])
    assert find_scalars_file(str(tmp_path)) == wanted
    assert find_scalars_file(str(tmp_path / '20240101_000000')).startswith(
        str(tmp_path / '20240101_000000'))
    assert len(load_scalars(str(tmp_path))) == 6


def test_plot_slf_weights_png_and_data(tmp_path):
    records = fake_records(5)
    scalars = write_scalars(tmp_path / '20240102_000000', records)
    out = str(tmp_path / 'weights.png')
    figure = plot_slf_weights(scalars, out, width=7, panel_height=2.5,
                              dpi=80)
    # Three panels (weights, probabilities, temperature/entropy).
    assert cv2.imread(out).shape == (3 * 2.5 * 80, 7 * 80, 3)
    lines = lines_by_gid(figure)
    assert set(lines) == {
        'slf_w_coord', 'slf_w_obj', 'bbox_head.cls.slf_w_x', 'slf_p_coord',
        'slf_p_obj', 'slf_temperature', 'slf_entropy'}
    train = [r for r in records if 'iter' in r]
    for key, line in lines.items():
        np.testing.assert_array_equal(line.get_xdata(),
                                      [r['iter'] for r in train])
        np.testing.assert_allclose(line.get_ydata(), [r[key] for r in train])
    weight_axis = lines['slf_w_coord'].axes
    assert lines['bbox_head.cls.slf_w_x'].axes is weight_axis
    assert lines['slf_p_coord'].axes is not weight_axis
    assert lines['bbox_head.cls.slf_w_x'].get_label() == 'bbox_head.cls: x'
    # every legend entry names its own term, on the panel of its kind
    for key, line in lines.items():
        term = key.rsplit('slf_w_', 1)[-1].rsplit('slf_p_', 1)[-1]
        if key.startswith(('slf_w_', 'slf_p_')):
            assert line.get_label() == term, key
    assert weight_axis.get_ylabel() == 'weight (lambda)'
    assert lines['slf_p_coord'].axes.get_ylabel() == 'probability p'


def test_schedule_panel_without_a_temperature(tmp_path):
    """Expected weights log no temperature: the entropy takes the panel's
    own axis, with no empty temperature axis beside it."""
    records = [{k: v for k, v in r.items() if k != 'slf_temperature'}
               for r in fake_records(4)]
    scalars = write_scalars(tmp_path / '20240102_000000', records)
    figure = plot_slf_weights(scalars, str(tmp_path / 'weights.png'))
    lines = lines_by_gid(figure)
    assert 'slf_temperature' not in lines
    entropy_axis = lines['slf_entropy'].axes
    assert entropy_axis.get_ylabel() == 'entropy (nats)'
    assert len(figure.axes) == 3  # weights, probabilities, entropy
    np.testing.assert_allclose(entropy_axis.lines[0].get_ydata(),
                               [0.6 - 0.05 * it for it in range(1, 5)])
    # With a temperature, the entropy sits on a twin of its axis.
    figure = plot_slf_weights(
        write_scalars(tmp_path / '20240103_000000', fake_records(4)),
        str(tmp_path / 'both.png'))
    lines = lines_by_gid(figure)
    assert lines['slf_temperature'].axes.get_ylabel() == 'temperature tau'
    assert lines['slf_entropy'].axes is not lines['slf_temperature'].axes
    assert len(figure.axes) == 4
    # Two weightings' temperatures and entropies: four distinct colours.
    nested = [dict(r, **{f'bbox_head.cls.{k}': r[k] + 0.1 for k in r
                         if k in ('slf_temperature', 'slf_entropy')})
              for r in fake_records(4)]
    figure = plot_slf_weights(
        write_scalars(tmp_path / '20240104_000000', nested),
        str(tmp_path / 'two.png'))
    lines = lines_by_gid(figure)
    keys = ['slf_temperature', 'bbox_head.cls.slf_temperature',
            'slf_entropy', 'bbox_head.cls.slf_entropy']
    assert len({tuple(lines[k].get_color()) for k in keys}) == 4


def test_cli_and_clear_errors(tmp_path, capsys):
    tool = load_tool()
    write_scalars(tmp_path / 'run' / '20240102_000000', fake_records(4))
    out = tool.main([str(tmp_path / 'run')])
    assert out == str(tmp_path / 'run' / 'slf_weights.png')
    assert cv2.imread(out).shape == (900, 800, 3)
    assert '3 weights over 4 logged iterations' in capsys.readouterr().out

    (tmp_path / 'empty').mkdir()
    with pytest.raises(SystemExit, match='no vis_data/scalars.json'):
        tool.main([str(tmp_path / 'empty')])
    write_scalars(tmp_path / 'plain' / '20240102_000000',
                  [{'loss': 1.0, 'iter': 1, 'step': 1}])
    with pytest.raises(SystemExit, match='SLFLoggerHook'):
        tool.main([str(tmp_path / 'plain')])
    with pytest.raises(SystemExit, match='does not exist'):
        tool.main([str(tmp_path / 'missing')])
    (tmp_path / 'config.py').write_text("model = dict(type='YOLOV1')\n")
    with pytest.raises(SystemExit, match='config.py is not an mmengine '
                       'scalars.json'):
        tool.main([str(tmp_path / 'config.py')])


def test_a_run_stopped_mid_record_is_plotted_from_what_it_wrote(tmp_path):
    """The work-dir form reads a scalars.json whose last line was cut off
    (warning, every whole record kept); a damaged line elsewhere is an error
    naming the file and line, from either form."""
    tool = load_tool()
    path = write_scalars(tmp_path / 'run' / '20240102_000000',
                         fake_records(4))
    text = open(path).read()
    open(path, 'w').write(text[:-40])  # the validation line cut off
    with pytest.warns(UserWarning, match='last line is cut off .*reading '
                      'the 4 records before it'):
        tool.main([str(tmp_path / 'run')])
    lines = text.splitlines()
    open(path, 'w').write('\n'.join(lines[:1] + ['{"iter": 2,'] + lines[2:]))
    for source in (str(tmp_path / 'run'), path):
        with pytest.raises(SystemExit, match=r'scalars.json is not an '
                           r'mmengine scalars.json .*: line 2: '):
            tool.main([source])


def test_weight_trajectories_overlay(tmp_path):
    runs = {'FixedWeighting': fake_records(4, offset=0.0),
            'SLFWeighting': fake_records(4, offset=0.5)}
    out = str(tmp_path / 'overlay.png')
    figure = plot_weight_trajectories(runs, out, dpi=50)
    # One panel per weight key (3), two per row.
    assert cv2.imread(out).shape == (2 * 3.2 * 50, 2 * 5.0 * 50, 3)
    lines = lines_by_gid(figure)
    assert len(lines) == 6
    for label, records in runs.items():
        for key in ('slf_w_coord', 'slf_w_obj', 'bbox_head.cls.slf_w_x'):
            np.testing.assert_allclose(
                lines[f'{label}/{key}'].get_ydata(),
                [r[key] for r in records if 'iter' in r])
    assert (lines['FixedWeighting/slf_w_coord'].axes is
            lines['SLFWeighting/slf_w_coord'].axes)
    # A run without the first panel's key is in the legend all the same.
    partial = [{k: v for k, v in r.items() if k != 'bbox_head.cls.slf_w_x'}
               for r in fake_records(4, offset=1.0)]
    figure = plot_weight_trajectories(dict(runs, Partial=partial), out,
                                      dpi=50)
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == ['FixedWeighting', 'SLFWeighting', 'Partial']


def share_records(weights_by_iter):
    """Train lines logging the four YOLO weights at the given iterations."""
    return [dict(iter=it, step=it, loss=1.0,
                 **{f'slf_w_{term}': w for term, w in weights.items()})
            for it, weights in weights_by_iter.items()]


PRIOR = dict(coord=5.0, pred=1.0, obj=1.0, noobj=0.5)


def test_weight_shares_against_hand_computed_ratios():
    records = share_records({
        50: dict(PRIOR),  # the prior itself: every share 1
        # pred at a tenth of its lambda, total kept at 7.5: its share
        # 0.1 / 7.5 over 1 / 7.5 = 0.1; coord 5.9 / 5
        100: dict(coord=5.9, pred=0.1, obj=1.0, noobj=0.5),
        # every weight doubled: the shares do not change
        150: {term: 2 * w for term, w in PRIOR.items()},
    })
    # a step at which one term was not logged is left out
    records.append(dict(iter=200, step=200, slf_w_coord=1.0))
    shares = weight_shares(records, PRIOR)
    assert list(shares) == list(PRIOR)
    for term in PRIOR:
        np.testing.assert_array_equal(shares[term][0], [50, 100, 150])
    np.testing.assert_allclose(shares['pred'][1], [1.0, 0.1, 1.0])
    np.testing.assert_allclose(shares['coord'][1], [1.0, 5.9 / 5, 1.0])
    np.testing.assert_allclose(shares['noobj'][1], [1.0, 1.0, 1.0])
    with pytest.raises(KeyError, match=r"terms \['noobj'\]"):
        weight_shares(share_records({1: dict(coord=1.0, pred=1.0,
                                             obj=1.0)}), PRIOR)


def test_weight_shares_plot_one_row_per_group(tmp_path):
    groups = {
        'baselines': {'Fixed': share_records({1: dict(PRIOR),
                                              2: dict(PRIOR)})},
        'SLF joint': {
            # pred starved to 1/20 of its share at iteration 2
            'joint': share_records({
                1: dict(PRIOR),
                2: dict(coord=5.0, pred=0.05, obj=1.0, noobj=0.5)}),
            'joint K=1': share_records({1: dict(PRIOR), 2: dict(PRIOR)})},
        'empty': {},
    }
    out = str(tmp_path / 'shares.png')
    figure = plot_weight_shares(groups, PRIOR, out, dpi=50)
    # 2 rows (the empty group dropped) of 4 terms, legends to the right
    assert cv2.imread(out).shape == (2 * 2.6 * 50, (4 * 3.2 + 4.0) * 50, 3)
    lines = lines_by_gid(figure)
    assert len(lines) == 3 * 4
    pred_share = 0.05 / 6.55 / (1.0 / 7.5)
    np.testing.assert_allclose(lines['joint/pred'].get_ydata(),
                               [1.0, pred_share])
    assert lines['joint/pred'].axes is lines['joint K=1/pred'].axes
    assert lines['joint/pred'].axes is not lines['Fixed/pred'].axes
    # one log range for all panels, down to the starved share
    low, high = lines['Fixed/coord'].axes.get_ylim()
    assert lines['joint/noobj'].axes.get_ylim() == (low, high)
    assert low == pytest.approx(pred_share / 1.3)
    assert lines['Fixed/coord'].axes.get_yscale() == 'log'
    with pytest.raises(ValueError, match='no runs'):
        plot_weight_shares({'empty': {}}, PRIOR, out)


def test_a_long_legend_widens_the_figure_instead_of_running_off_it(
        tmp_path):
    """A label too long for the 4-inch legend column widens the figure
    until the whole legend lies inside it; the panels keep about their
    width."""
    long = 'Fixed, tuned lambdas at total 7.5 (6.504, 0.5317, 0.2725, ' \
        '0.1918) and more words, ' * 2
    runs = {'Fixed': share_records({1: dict(PRIOR), 2: dict(PRIOR)})}
    short = plot_weight_shares({'row': runs}, PRIOR,
                               str(tmp_path / 'short.png'), dpi=50)
    out = str(tmp_path / 'long.png')
    figure = plot_weight_shares({'row': dict(runs, **{long: runs['Fixed']})},
                                PRIOR, out, dpi=50)
    height, width = cv2.imread(out).shape[:2]
    assert height == 2.6 * 50 and width > (4 * 3.2 + 4.0) * 50
    (legend, ) = figure.legends
    box = legend.get_window_extent(figure.canvas.get_renderer())
    assert 0 < box.x0 and box.x1 <= width
    # the four panels span about the same inches in both figures (the
    # spacing that tight_layout gives them moves a little)
    panels = [
        sum(ax.get_position().width for ax in fig.axes) * fig.get_figwidth()
        for fig in (short, figure)]
    assert panels[1] == pytest.approx(panels[0], rel=0.05)


def test_every_run_of_a_row_has_its_own_line_style(tmp_path):
    """Twelve runs in one row (the benchmark's baselines row holds up to
    13 configs): the default ten colours repeat from the eleventh run, so
    runs 0 and 10 looked alike. Each run now draws its own (colour, line
    style) in every panel; past 20, the colours come again dashed."""
    run = share_records({1: dict(PRIOR), 2: dict(PRIOR)})
    runs = {f'run{i}': run for i in range(12)}
    figure = plot_weight_shares({'row': runs}, PRIOR,
                                str(tmp_path / 'w.png'), dpi=50)
    looks = {}
    for line in figure.axes[0].get_lines():
        if line.get_gid():
            looks[line.get_gid()] = (tuple(to_rgba(line.get_color())),
                                     line.get_linestyle())
    assert len(looks) == 12 and len(set(looks.values())) == 12
    styles = line_styles(45)
    assert len({(str(s['color']), s['linestyle']) for s in styles}) == 45
    assert [s['linestyle'] for s in styles[::20]] == ['-', '--', ':']
    with pytest.raises(ValueError, match='61 runs in one figure'):
        line_styles(61)


def test_real_run_scalars_are_plotted(tmp_path):
    """A real mmengine run with SLFLoggerHook: the plot shows what the
    weighting modules computed."""
    torch.manual_seed(0)
    model = two_weightings_model()
    runner = toy_runner(
        model, str(tmp_path / 'work'), 6, [dict(type='SLFLoggerHook')],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=2)))
    runner.train()
    figure = plot_slf_weights(str(tmp_path / 'work'),
                              str(tmp_path / 'w.png'))
    lines = lines_by_gid(figure)
    assert {'slf_w_coord', 'slf_w_obj', 'cls.slf_w_x', 'slf_temperature',
            'slf_entropy'} <= set(lines)
    np.testing.assert_array_equal(lines['slf_w_coord'].get_xdata(),
                                  [2, 4, 6])
    last = model.weighting.last_diagnostics
    for key in ('slf_w_coord', 'slf_w_obj', 'slf_p_coord', 'slf_entropy'):
        assert lines[key].get_ydata()[-1] == pytest.approx(last[key])
    assert lines['cls.slf_w_x'].get_ydata().tolist() == [2.0, 2.0, 2.0]
    # SLF weights are sampled: p_hat on the 1/K grid, total = scale = 6.
    weights = lines['slf_w_coord'].get_ydata() + lines[
        'slf_w_obj'].get_ydata()
    assert weights == pytest.approx([6.0] * 3)


def test_cli_out_title_and_the_file_form(tmp_path, capsys):
    """``--out`` and ``--title`` reach the figure; a scalars.json given as
    a file puts the default PNG beside it; the count is of the longest
    series (4 logged weights, not the 1 validation point)."""
    tool = load_tool()
    path = write_scalars(tmp_path / 'run' / '20240102_000000',
                         fake_records(4))
    seen = {}

    def fake_plot(series, out, title):
        seen.update(series=series, out=out, title=title)

    tool.plot_slf_weights = fake_plot
    out = tool.main([str(tmp_path / 'run'), '--out', str(tmp_path / 'w.png'),
                     '--title', 'run 7'])
    assert out == seen['out'] == str(tmp_path / 'w.png')
    assert seen['title'] == 'run 7'
    assert 'over 4 logged iterations' in capsys.readouterr().out
    assert tool.main([path]) == osp.join(osp.dirname(path), 'slf_weights.png')


@pytest.mark.parametrize('name,message', [
    ('noext', 'must end in an image format matplotlib writes'),
    ('w.txt', 'must end in an image format matplotlib writes'),
    ('.', 'is a folder: name the image to write'),
])
def test_an_out_that_would_not_be_the_file_written_is_refused(
        tmp_path, capsys, name, message):
    """matplotlib writes ``noext`` as ``noext.png`` and the parent of a
    folder ``--out`` as ``<folder>.png``: the path printed was not the file
    written. Such names are refused before anything is read."""
    tool = load_tool()
    write_scalars(tmp_path / 'run' / '20240102_000000', fake_records(4))
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / 'run'), '--out', str(tmp_path / name)])
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['run']


@pytest.mark.parametrize('content,message', [
    (b'[1, 2]\n', r'line 1 is a JSON list, not an object'),
    (b'{"iter": 1}\n"text"\n', r'line 2 is a JSON str, not an object'),
    (b'\x89PNG\r\n\x1a\n\x00\x80\xff', r'not text'),
])
def test_a_file_of_other_json_or_bytes_is_named(tmp_path, content, message):
    tool = load_tool()
    path = tmp_path / 'scalars.json'
    path.write_bytes(content)
    with pytest.raises(SystemExit, match=r'scalars.json is not an mmengine '
                       r'scalars.json .*' + message):
        tool.main([str(path)])


def test_weight_shares_of_a_zero_total_and_a_zero_weight(tmp_path):
    """All weights 0 at a step: no share (nan). pred at 0 with the rest at
    the prior: pred's share 0, the others (total 6.5 instead of 7.5) each
    7.5 / 6.5 of their prior share. On the plot the zero runs off the
    bottom: the log range is 0.25 (starved) / 1.3 to 7.5 / 6.5 * 1.3."""
    zero = dict(coord=0.0, pred=0.0, obj=0.0, noobj=0.0)
    no_pred = dict(PRIOR, pred=0.0)
    shares = weight_shares(share_records({1: dict(PRIOR), 2: zero,
                                          3: no_pred}), PRIOR)
    np.testing.assert_allclose(shares['coord'][1], [1.0, np.nan, 7.5 / 6.5])
    np.testing.assert_allclose(shares['pred'][1], [1.0, np.nan, 0.0])
    figure = plot_weight_shares(
        {'runs': {'SLF': share_records({1: dict(PRIOR), 2: no_pred})}},
        PRIOR, str(tmp_path / 'shares.png'), dpi=50)
    low, high = lines_by_gid(figure)['SLF/pred'].axes.get_ylim()
    assert low == pytest.approx(0.25 / 1.3)
    assert high == pytest.approx(7.5 / 6.5 * 1.3)
