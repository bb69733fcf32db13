# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The figures of the benchmark's results page: mAP per strategy, the
reference's mAP curves, and each term's weight share relative to its prior
by group of strategies. matplotlib is imported when a figure is drawn."""
import inspect
import os
import os.path as osp
from typing import Dict, List, Optional

from mmengine.config import Config


def default_objective() -> str:
    """The decision objective an ``SLFWeighting`` config that names none
    trains with."""
    from mmdet_slf.slf import SLFWeighting
    return inspect.signature(SLFWeighting).parameters[
        'decision_objective'].default


def weight_groups(rows: List[dict],
                  configs: Dict[str, Config]) -> Dict[str, List[dict]]:
    """Rows of strategies grouped for the weight figure: the baselines
    (every weighting other than SLF), then SLF by decision objective, then
    strategies whose config names no weighting."""
    groups: Dict[str, List[dict]] = {}
    for row in rows:
        cfg = configs.get(row['key']) or {}
        weighting = cfg.get('model', {}).get('bbox_head', {}).get(
            'weighting')
        if not weighting:  # no config, or none naming a weighting
            group = 'strategies'
        elif weighting.get('type') == 'SLFWeighting':
            objective = weighting.get('decision_objective',
                                      default_objective())
            group = f'SLF {objective}'.replace('_', '-')
        else:
            group = 'baselines'
        groups.setdefault(group, []).append(row)
    order = sorted(groups, key=lambda name: (name != 'baselines', name))
    return {name: groups[name] for name in order}


def plots(results: Dict[str, Dict[int, dict]], rows: List[dict],
          reference: str, out_dir: str,
          configs: Optional[Dict[str, Config]] = None) -> Dict[str, str]:
    """mAP per strategy with intervals, each term's weight share relative
    to its prior (first seed of each strategy, one row of panels per group
    of :func:`weight_groups`) and the reference's mAP curves."""
    from mmdet_slf.visualization import (plot_map_bars, plot_map_curve,
                                         plot_weight_shares)
    os.makedirs(out_dir, exist_ok=True)
    files = dict(
        map=osp.join(out_dir, 'map.png'),
        weights=osp.join(out_dir, 'weights.png'),
        curve=osp.join(out_dir, 'fixed_curve.png'))
    plot_map_bars({row['name']: row['maps']
                   for row in rows}, files['map'],
                  title='mAP per strategy (mean +- std, dots: seeds)')
    prior = None
    if reference in results:
        first = next(iter(results[reference].values()))
        if first.get('prior'):
            prior = dict(zip(first['terms'], first['prior']))
    groups = {}
    for name, members in weight_groups(rows, configs or {}).items():
        groups[name] = {}
        for row in members:
            first = results[row['key']][row['seeds'][0]]
            # archived runs carry their logged weights; others, their logs
            source = first['weight_records'] if 'weight_records' in first \
                else first.get('work_dir')
            if first.get('mean_weights') and source:
                groups[name][row['name']] = source
    if prior and any(groups.values()):
        plot_weight_shares(groups, prior, files['weights'])
    else:
        files.pop('weights')
    curves = {
        f'seed {seed}': [{'pascal_voc/mAP': value, 'step': step}
                         for step, value in run['curve']]
        for seed, run in sorted(results.get(reference, {}).items())
        if run.get('curve')
    }
    if curves:
        # The reference's runs share one split (the tool refuses mixed
        # work dirs); runs saved before splits were recorded were on test.
        run = next(iter(results[reference].values()))
        split = run.get('eval_split', 'test')
        plot_map_curve(curves, files['curve'],
                       title=f"{run.get('name', reference)}\n"
                       f'mAP during training on the {split} images')
    else:
        files.pop('curve')
    return files
