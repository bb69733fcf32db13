# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Accuracy figures: mAP per strategy over seeds, AP per class, and mAP
against training iterations. Every function returns the ``Figure``; bars
and lines carry a ``gid`` naming what they show, so tests can read the
plotted numbers back."""
import textwrap
from typing import Dict, Optional, Sequence, Union

import numpy as np

from .figure import new_figure, save_figure
from .scalars import Records, load_scalars, scalar_series

MAP_KEY = 'pascal_voc/mAP'


def plot_map_bars(results: Dict[str, Sequence[float]],
                  out_file: str,
                  ylabel: str = 'VOC mAP@0.5 (11-point)',
                  title: str = 'mAP per strategy (mean +- std over seeds)',
                  ddof: int = 1,
                  dpi: int = 100):
    """Bar per strategy at the mean over seeds, error bar +- standard
    deviation, dots at the single seeds.

    Args:
        results (dict[str, Sequence[float]]): Strategy -> mAP per seed.
        out_file (str): PNG to write.
        ylabel (str): Axis label. Defaults to 'VOC mAP@0.5 (11-point)'.
        title (str): Figure title.
        ddof (int): Delta degrees of freedom of the standard deviation
            (1: sample std; a single seed gives 0). Defaults to 1.
        dpi (int): Dots per inch. Defaults to 100.

    Returns:
        matplotlib.figure.Figure: The figure; bar ``gid`` is the strategy.
    """
    if not results or any(len(v) == 0 for v in results.values()):
        raise ValueError('results must map each strategy to at least one '
                         f'mAP, got {results}')
    names = list(results)
    values = [np.asarray(results[n], dtype=float) for n in names]
    means = np.array([v.mean() for v in values])
    stds = np.array([v.std(ddof=ddof) if v.size > ddof else 0.0
                     for v in values])
    figure, axes = new_figure(1, 1, (max(6.0, 1.3 * len(names)), 4.5), dpi)
    ax = axes[0, 0]
    positions = np.arange(len(names))
    bars = ax.bar(positions, means, yerr=stds, capsize=6, color='#8fb3d9',
                  edgecolor='#2b5d8c')
    for bar, name, mean, std, seeds, x in zip(bars, names, means, stds,
                                              values, positions):
        bar.set_gid(name)
        ax.scatter(np.full(seeds.size, x), seeds, color='#1f3f5f', s=12,
                   zorder=3)
        ax.annotate(f'{mean:.3f}\n+-{std:.3f}', (x, mean + std),
                    textcoords='offset points', xytext=(0, 4), ha='center',
                    fontsize='small')
    ax.set_xticks(positions)
    # long names (lambdas in them) wrapped, so that a slanted one does not
    # run off the left edge of the figure
    ax.set_xticklabels([textwrap.fill(name, 36) for name in names],
                       rotation=20, ha='right')
    ax.set_ylabel(ylabel)
    # room for the labels above the bars, and every seed's dot inside
    top = min(1.0, float((means + stds).max()) * 1.25 + 0.05)
    best = max(float(np.max(seeds)) for seeds in values if np.size(seeds))
    ax.set_ylim(0, max(top, best + 0.02))
    ax.grid(axis='y', alpha=0.3)
    ax.set_title(title)
    figure.tight_layout()
    save_figure(figure, out_file, dpi)
    return figure


def plot_class_ap(class_ap: Dict[str, float],
                  out_file: str,
                  mean_ap: Optional[float] = None,
                  title: str = 'AP per class (IoU 0.5)',
                  ylabel: str = 'AP',
                  dpi: int = 100):
    """One bar per class at its AP, its value written above it, and a
    dashed line at the mean (its value in the title).

    Args:
        class_ap (dict[str, float]): Class name -> AP, in class order.
        out_file (str): PNG to write.
        mean_ap (float, optional): Level of the dashed line; the mean of
            ``class_ap`` when None. Defaults to None.
        title (str): Figure title. Defaults to 'AP per class (IoU 0.5)'.
        ylabel (str): Axis label. Defaults to 'AP'.
        dpi (int): Dots per inch. Defaults to 100.

    Returns:
        matplotlib.figure.Figure: The figure; bar ``gid`` is the class
        name, the mean line's ``gid`` is 'mAP'.
    """
    if not class_ap:
        raise ValueError('class_ap must hold at least one class, got {}')
    names = list(class_ap)
    values = np.array([class_ap[name] for name in names], dtype=float)
    if mean_ap is None:
        mean_ap = float(values.mean())
    figure, axes = new_figure(1, 1, (max(6.0, 0.6 * len(names) + 2), 4.0),
                              dpi)
    ax = axes[0, 0]
    positions = np.arange(len(names))
    bars = ax.bar(positions, values, color='#8fb3d9', edgecolor='#2b5d8c')
    for bar, name, value, x in zip(bars, names, values, positions):
        bar.set_gid(name)
        ax.annotate(f'{value:.2f}', (x, value), textcoords='offset points',
                    xytext=(0, 3), ha='center', fontsize='small')
    ax.axhline(mean_ap, color='tab:red', linestyle='--', gid='mAP')
    ax.set_xticks(positions)
    ax.set_xticklabels(names)
    ax.set_xlabel('class')
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.08)
    ax.grid(axis='y', alpha=0.3)
    ax.set_title(f'{title}; mAP {mean_ap:.3f} (dashed)')
    figure.tight_layout()
    save_figure(figure, out_file, dpi)
    return figure


def plot_map_curve(runs: Dict[str, Union[str, Records]],
                   out_file: str,
                   key: str = MAP_KEY,
                   title: str = 'Validation mAP during training',
                   ylabel: str = 'VOC mAP@0.5 (11-point)',
                   dpi: int = 100):
    """The validation metric ``key`` against the training iteration, one
    line per run.

    Args:
        runs (dict[str, str | list[dict]]): Label -> work dir, run dir or
            ``scalars.json`` (the latest run that logged ``key``), or its
            records.
        out_file (str): PNG to write.
        key (str): Scalar to plot. Defaults to 'pascal_voc/mAP'.
        title (str): Figure title.
        ylabel (str): Axis label. Defaults to 'VOC mAP@0.5 (11-point)'.
        dpi (int): Dots per inch. Defaults to 100.

    Returns:
        matplotlib.figure.Figure: The figure; line ``gid`` is the label,
        and its legend entry ends with the run's final value.
    """
    curves = {}
    for label, source in runs.items():
        records = load_scalars(source, require=key) if isinstance(
            source, str) else source
        steps, values = scalar_series(records, key)
        if steps.size == 0:
            raise KeyError(f'run "{label}" logged no "{key}": validate '
                           'during training (train_cfg.val_interval)')
        curves[label] = (steps, values)
    figure, axes = new_figure(1, 1, (7.0, 4.0), dpi)
    ax = axes[0, 0]
    for label, (steps, values) in curves.items():
        # The final value goes in the legend: labels at the line ends
        # overlap when several runs end close together.
        ax.plot(steps, values, marker='o', label=f'{label}: {values[-1]:.3f}',
                gid=label)
    ax.set_xlabel('iteration')
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right', fontsize='small')
    ax.set_title(title)
    figure.tight_layout()
    save_figure(figure, out_file, dpi)
    return figure
