# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Plot the loss-weight trajectories of a training run.

``python tools/plot_slf_weights.py WORK_DIR [--out PNG]`` reads the
``vis_data/scalars.json`` of the latest run under ``WORK_DIR`` that logged
SLF diagnostics (train with ``custom_hooks=[dict(type='SLFLoggerHook')]``)
and writes one panel of weights ``slf_w_<term>``, one of probabilities
``slf_p_<term>`` and one of temperature / entropy, where logged.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_slf.utils.arguments import check_out_file  # noqa: E402
from mmdet_slf.visualization import (find_scalars_file,  # noqa: E402
                                     load_scalars, plot_slf_weights,
                                     slf_series)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Plot SLF weight trajectories of a work dir')
    parser.add_argument(
        'work_dir',
        help='work dir, run dir (<timestamp>) or a scalars.json file')
    parser.add_argument(
        '--out', help='PNG to write. Defaults to WORK_DIR/slf_weights.png')
    parser.add_argument('--title', default='SLF loss weights')
    args = parser.parse_args(argv)
    if args.out is not None:
        check_out_file(parser, args.out, '--out', 'name the image to write')
        # matplotlib would add .png to a name without a known extension,
        # and the path printed would not be the file written
        from matplotlib.backend_bases import FigureCanvasBase
        formats = FigureCanvasBase.get_supported_filetypes()
        extension = osp.splitext(args.out)[1].lstrip('.').lower()
        if extension not in formats:
            parser.error(f'--out {args.out} must end in an image format '
                         f'matplotlib writes ({", ".join(sorted(formats))})')
    return args


def main(argv=None) -> str:
    args = parse_args(argv)
    if not osp.exists(args.work_dir):
        raise SystemExit(f'{args.work_dir} does not exist')
    try:
        try:
            scalars = find_scalars_file(args.work_dir)
            records = load_scalars(scalars)
        except ValueError as error:  # a damaged line, named with its file
            raise SystemExit(f'error: {error}')
        series = slf_series(records)
        out = args.out or osp.join(
            args.work_dir if osp.isdir(args.work_dir) else osp.dirname(
                args.work_dir), 'slf_weights.png')
        plot_slf_weights(series, out, title=args.title)
    except (FileNotFoundError, KeyError) as error:
        raise SystemExit(f'error: {error.args[0]}')
    terms = sorted(k for k in series if '.slf_w_' in k or
                   k.startswith('slf_w_'))
    num_points = max(len(xs) for xs, _ in series.values())
    print(f'read {scalars}: {len(terms)} weights over {num_points} logged '
          f'iterations -> {out}')
    return out


if __name__ == '__main__':
    main()
