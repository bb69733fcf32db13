# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Figures drawn on matplotlib's Agg canvas directly (no ``pyplot``), so
drawing never changes the user's matplotlib backend and works without a
display. matplotlib is imported when a figure is made, not on import."""
import os
import os.path as osp
from typing import Tuple


def new_figure(num_rows: int, num_cols: int, size: Tuple[float, float],
               dpi: int):
    """A ``Figure`` on an Agg canvas and its ``[num_rows, num_cols]``
    array of axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    figure = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(num_rows, num_cols, squeeze=False)
    return figure, axes


def save_figure(figure, out_file: str, dpi: int) -> None:
    """Write ``figure`` as a PNG, creating the directory."""
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    # No bbox_inches='tight': the PNG is exactly figsize * dpi pixels.
    figure.savefig(out_file, dpi=dpi)
