# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Loss-weight trajectories: one run (:func:`plot_slf_weights`), several
overlaid (:func:`plot_weight_trajectories`), or each term's share of the
total weight relative to its prior, by group of runs
(:func:`plot_weight_shares`). Every function returns the ``Figure`` so
callers (and tests) can read back the plotted data."""
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

from .figure import new_figure, save_figure
from .scalars import Records, Series, as_series


def line_styles(count: int) -> List[Dict[str, object]]:
    """``count`` distinct line styles, one per run of a figure: the ten
    default colours, tab20's twenty above ten runs, and above twenty the
    same colours dashed, then dotted, so that no two runs of a legend
    look alike (up to 60)."""
    from matplotlib import colormaps
    colours = [f'C{i}' for i in range(10)] if count <= 10 else [
        colormaps['tab20'](i) for i in range(20)]
    dashes = ['-', '--', ':']
    if count > len(colours) * len(dashes):
        raise ValueError(f'{count} runs in one figure: at most '
                         f'{len(colours) * len(dashes)} can be told apart')
    return [dict(color=colours[i % len(colours)],
                 linestyle=dashes[i // len(colours)]) for i in range(count)]


def _split_key(key: str) -> Tuple[str, str]:
    """``'bbox_head.cls.slf_w_x'`` -> ``('slf_w_', 'bbox_head.cls: x')``."""
    owner, _, leaf = key.rpartition('.')
    for kind in ('slf_w_', 'slf_p_'):
        if leaf.startswith(kind):
            term = leaf[len(kind):]
            return kind, f'{owner}: {term}' if owner else term
    name = leaf[len('slf_'):] if leaf.startswith('slf_') else leaf
    return leaf, f'{owner}: {name}' if owner else name


def plot_slf_weights(source: Union[str, Records, Series],
                     out_file: str,
                     title: str = 'SLF loss weights',
                     width: float = 8.0,
                     panel_height: float = 3.0,
                     dpi: int = 100):
    """Plot the weight trajectory of every term of one run.

    Panels, top to bottom: weights ``slf_w_<term>``; sampling probabilities
    ``slf_p_<term>`` (SLF only); temperature ``tau`` (left axis) and the
    entropy of the decision distribution (right axis), when logged. Every
    line's ``gid`` is its scalars key.

    Args:
        source (str | list[dict] | dict): Work dir, run dir or
            ``scalars.json``; records; or :func:`slf_series` output.
        out_file (str): PNG to write.
        title (str): Figure title. Defaults to 'SLF loss weights'.
        width (float): Width in inches. Defaults to 8.0.
        panel_height (float): Height of a panel in inches. Defaults to 3.0.
        dpi (int): Dots per inch. Defaults to 100.

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    series = as_series(source)
    groups = {'slf_w_': [], 'slf_p_': [], 'slf_temperature': [],
              'slf_entropy': []}
    for key in sorted(series):
        kind, _ = _split_key(key)
        if kind in groups:
            groups[kind].append(key)
    if not groups['slf_w_']:
        raise KeyError('no slf_w_<term> scalars to plot (found '
                       f'{sorted(series) or "no slf_ keys"})')
    panels = [k for k in ('slf_w_', 'slf_p_') if groups[k]]
    if groups['slf_temperature'] or groups['slf_entropy']:
        panels.append('schedule')
    figure, axes = new_figure(
        len(panels), 1, (width, panel_height * len(panels)), dpi)
    titles = {'slf_w_': 'weight (lambda)', 'slf_p_': 'probability p'}
    for ax, panel in zip(axes[:, 0], panels):
        if panel == 'schedule':
            _plot_schedule(ax, series, groups)
            continue
        for key in groups[panel]:
            xs, ys = series[key]
            ax.plot(xs, ys, label=_split_key(key)[1], gid=key)
        ax.set_ylabel(titles[panel])
        ax.legend(loc='best', fontsize='small')
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel('iteration')
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, out_file, dpi)
    return figure


def _plot_schedule(ax, series: Series, groups: dict) -> None:
    """Temperature on ``ax`` and entropy on a twin axis (other units); the
    entropy alone (no Gumbel draws, so no temperature) on ``ax``."""
    handles = []
    # Temperatures in reds, entropies in blues, one shade per weighting.
    from matplotlib import colormaps
    reds, blues = colormaps['Reds'], colormaps['Blues']

    def shade(cmap, index: int, count: int):
        return cmap(0.85 - 0.5 * index / max(count - 1, 1))

    temperatures = groups['slf_temperature']
    for i, key in enumerate(temperatures):
        handles += ax.plot(*series[key], color=shade(reds, i,
                                                     len(temperatures)),
                           gid=key, label=_split_key(key)[1])
    if temperatures:
        ax.set_ylabel('temperature tau')
    if groups['slf_entropy']:
        twin = ax.twinx() if groups['slf_temperature'] else ax
        entropies = groups['slf_entropy']
        for i, key in enumerate(entropies):
            handles += twin.plot(*series[key],
                                 color=shade(blues, i, len(entropies)),
                                 gid=key, linestyle='--',
                                 label=_split_key(key)[1])
        twin.set_ylabel('entropy (nats)')
    ax.legend(handles=handles, loc='best', fontsize='small')
    ax.grid(alpha=0.3)


def plot_weight_trajectories(runs: Dict[str, Union[str, Records, Series]],
                             out_file: str,
                             title: str = 'Loss weights per strategy',
                             num_cols: int = 2,
                             dpi: int = 100):
    """Overlay the weight trajectories of several runs, one panel per term.

    Args:
        runs (dict): Run label (e.g. the strategy) -> source as in
            :func:`plot_slf_weights`.
        out_file (str): PNG to write.
        title (str): Figure title. Defaults to 'Loss weights per strategy'.
        num_cols (int): Panels per row. Defaults to 2.
        dpi (int): Dots per inch. Defaults to 100.

    Returns:
        matplotlib.figure.Figure: The figure; line ``gid`` is
        ``'<label>/<key>'``.
    """
    all_series = {label: as_series(src) for label, src in runs.items()}
    keys = sorted({k for s in all_series.values() for k in s
                   if _split_key(k)[0] == 'slf_w_'})
    if not keys:
        raise KeyError(f'no slf_w_<term> scalars in any of {list(runs)}')
    num_cols = min(num_cols, len(keys))
    num_rows = -(-len(keys) // num_cols)
    figure, axes = new_figure(num_rows, num_cols,
                              (5.0 * num_cols, 3.2 * num_rows), dpi)
    styles = dict(zip(all_series, line_styles(len(all_series))))
    for ax, key in zip(axes.flat, keys):
        for label, series in all_series.items():
            if key in series:
                ax.plot(*series[key], **styles[label], label=label,
                        gid=f'{label}/{key}')
        ax.set_title(f'weight of {_split_key(key)[1]}')
        ax.set_xlabel('iteration')
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    figure.suptitle(title)
    figure.tight_layout()
    figure.subplots_adjust(right=0.66)
    # One legend for all panels, right of them, so it hides no line; one
    # entry per run, from whichever panel has the run's line.
    legend = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    order = [label for label in all_series if label in legend]
    handles, labels = [legend[label] for label in order], order
    figure.legend(handles, labels, loc='center left', fontsize='small',
                  bbox_to_anchor=(0.67, 0.5))
    save_figure(figure, out_file, dpi)
    return figure


def weight_shares(source: Union[str, Records, Series],
                  prior: Dict[str, float]) -> Dict[str, Tuple]:
    """Each term's share of the total weight at every logged step, divided
    by its share under ``prior``: 1 is the prior's balance, 0.25 a term
    with a quarter of its prior share.

    Args:
        source (str | list[dict] | dict): A run, as in
            :func:`plot_slf_weights`, that logged ``slf_w_<term>`` for every
            term of ``prior``.
        prior (dict): Term -> its prior weight (e.g. the fixed lambdas).

    Returns:
        dict: Term -> ``(steps, shares)`` over the steps at which every
        term was logged.
    """
    series = as_series(source)
    weights = {}
    for key, (xs, ys) in series.items():
        kind, term = _split_key(key)
        if kind == 'slf_w_' and term in prior:
            weights[term] = dict(zip(xs.tolist(), ys.tolist()))
    missing = [term for term in prior if term not in weights]
    if missing:
        raise KeyError(f'no slf_w_<term> scalars for the terms {missing} '
                       f'(found {sorted(weights)})')
    steps = sorted(set.intersection(*(set(w) for w in weights.values())))
    matrix = np.array([[weights[term][step] for term in prior]
                       for step in steps], dtype=float).reshape(
                           len(steps), len(prior))
    prior_share = np.array(list(prior.values()), dtype=float)
    prior_share = prior_share / prior_share.sum()
    total = matrix.sum(axis=1, keepdims=True)
    with np.errstate(divide='ignore', invalid='ignore'):
        shares = np.where(total > 0, matrix / total, np.nan) / prior_share
    return {term: (np.asarray(steps), shares[:, i])
            for i, term in enumerate(prior)}


def plot_weight_shares(groups: Dict[str, Dict[str, Union[str, Records,
                                                         Series]]],
                       prior: Dict[str, float],
                       out_file: str,
                       title: str = 'Share of the total weight / share '
                       'under the prior',
                       starved: float = 0.25,
                       dpi: int = 100):
    """One row of panels per group of runs, one column per term: the
    term's share of the total weight relative to its prior share
    (:func:`weight_shares`), on a log axis, with the prior (1) and the
    share below which a term counts as starved marked.

    Args:
        groups (dict): Row title -> {run label -> source}.
        prior (dict): Term -> prior weight; its order is the column order.
        out_file (str): PNG to write.
        title (str): Figure title.
        starved (float): Share marked as starved. Defaults to 0.25.
        dpi (int): Dots per inch. Defaults to 100.

    Returns:
        matplotlib.figure.Figure: The figure; line ``gid`` is
        ``'<label>/<term>'``.
    """
    groups = {name: runs for name, runs in groups.items() if runs}
    if not groups:
        raise ValueError('no runs to plot')
    terms: Sequence[str] = list(prior)
    num_rows, num_cols = len(groups), len(terms)
    legend_width = 4.0  # inches right of the panels, more for a long label
    figure, axes = new_figure(
        num_rows, num_cols, (3.2 * num_cols + legend_width, 2.6 * num_rows),
        dpi)
    legends, values = [], [starved, 1.0]
    for row, (name, runs) in enumerate(groups.items()):
        styles = line_styles(len(runs))
        for style, (label, source) in zip(styles, runs.items()):
            shares = weight_shares(source, prior)
            for col, term in enumerate(terms):
                values.extend(shares[term][1].tolist())
                ax = axes[row, col]
                ax.plot(*shares[term], **style, label=label,
                        linewidth=1.2, gid=f'{label}/{term}')
        for col, term in enumerate(terms):
            ax = axes[row, col]
            ax.axhline(1.0, color='black', linewidth=0.8)
            ax.axhline(starved, color='red', linewidth=0.8,
                       linestyle='--')
            ax.grid(alpha=0.3, which='both')
            if row == 0:
                ax.set_title(term)
            if row == num_rows - 1:
                ax.set_xlabel('iteration')
        axes[row, 0].set_ylabel(name)
        legends.append(axes[row, 0].get_legend_handles_labels())
    _shared_log_axis(axes, values)
    # Widen the figure for the longest legend, so that no label is cut off
    # at the right edge (the panels keep about their size).
    gap = 0.15  # inches between the panels and a legend
    legend_width = max([legend_width] + [
        gap + _legend_inches(figure, *legend) + 0.15 for legend in legends])
    width = 3.2 * num_cols + legend_width
    figure.set_size_inches(width, 2.6 * num_rows)
    figure.suptitle(f'{title} (black: prior; red dashed: {starved:g})')
    figure.tight_layout()
    right = 3.2 * num_cols / width
    figure.subplots_adjust(right=right)
    # One legend per row, right of its panels.
    for row, (handles, labels) in enumerate(legends):
        box = axes[row, -1].get_position()
        figure.legend(handles, labels, loc='center left', fontsize='small',
                      bbox_to_anchor=(right + gap / width,
                                      (box.y0 + box.y1) / 2))
    save_figure(figure, out_file, dpi)
    return figure


def _legend_inches(figure, handles, labels) -> float:
    """Width in inches of the legend of ``handles`` and ``labels`` as
    :func:`plot_weight_shares` draws it (it does not depend on the size of
    the figure)."""
    legend = figure.legend(handles, labels, fontsize='small')
    width = legend.get_window_extent(figure.canvas.get_renderer()).width
    legend.remove()
    return width / figure.dpi


def _shared_log_axis(axes, values: Sequence[float],
                     floor: float = 1e-3) -> None:
    """One log y-range for every panel, covering the positive ``values``
    (those below ``floor``, such as a zero weight, run off the bottom),
    with plain tick labels."""
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, \
        NullFormatter
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values >= floor)]
    low, high = values.min() / 1.3, values.max() * 1.3
    ticks = [t for t in (0.001, 0.003, 0.01, 0.03, 0.1, 0.25, 0.5, 1, 2, 4,
                         10, 30, 100) if low <= t <= high]
    for ax in axes.flat:
        ax.set_yscale('log')
        ax.set_ylim(low, high)
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(FormatStrFormatter('%g'))
        ax.yaxis.set_minor_formatter(NullFormatter())
