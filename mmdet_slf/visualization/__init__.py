# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Figures of a run: detections beside the ground truth, AP per class, mAP
during training, loss-weight trajectories. matplotlib and OpenCV are
imported when something is drawn, never on import."""
from .class_ap import class_average_precision
from .detections import (CORRECT_COLOUR, GT_COLOUR, PALETTE, WRONG_COLOUR,
                         as_detections, as_ground_truth, draw_comparison,
                         draw_comparison_grid, draw_detection_grid,
                         draw_detections, draw_ground_truth,
                         match_detections)
from .metrics import plot_class_ap, plot_map_bars, plot_map_curve
from .scalars import (find_scalars_file, load_scalars, scalar_series,
                      slf_series)
from .weights import (plot_slf_weights, plot_weight_shares,
                      plot_weight_trajectories, weight_shares)

__all__ = [
    'class_average_precision', 'CORRECT_COLOUR', 'GT_COLOUR', 'PALETTE',
    'WRONG_COLOUR', 'as_detections', 'as_ground_truth', 'draw_comparison',
    'draw_comparison_grid', 'draw_detection_grid', 'draw_detections',
    'draw_ground_truth', 'match_detections', 'plot_class_ap',
    'plot_map_bars', 'plot_map_curve', 'find_scalars_file', 'load_scalars',
    'scalar_series', 'slf_series', 'plot_slf_weights',
    'plot_weight_trajectories', 'plot_weight_shares', 'weight_shares'
]
