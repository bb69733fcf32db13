# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Write the digits demo set (VOC format) under ``data/``.

``python tools/make_demo_data.py`` writes ``data/digits_voc/VOCdevkit/DIGITS``
with the parameters of the demo configs (``demo_data`` in
``configs/demo/fast-yolo_digits.py``; about 10 s on one core) and does
nothing when a complete set made with the same parameters is already there;
changed parameters regenerate it.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdet_slf.demo_data import make_digits_voc  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Make the handwritten-digits demo set in VOC format')
    parser.add_argument(
        '--root',
        default='data/digits_voc/VOCdevkit',
        help='VOCdevkit directory; the set goes to ROOT/SUBSET')
    parser.add_argument('--num-trainval', type=int, default=2000)
    parser.add_argument('--num-test', type=int, default=300)
    parser.add_argument(
        '--image-size',
        type=int,
        nargs='+',
        default=[192],
        help='side, or width and height')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--digits-per-image', type=int, nargs=2, default=[1, 3])
    parser.add_argument(
        '--max-overlap', type=float, default=0.1,
        help='largest overlap of two digits, as a share of the smaller box')
    parser.add_argument(
        '--overlap-prob', type=float, default=0.15,
        help='probability that a digit is placed overlapping another')
    parser.add_argument(
        '--digit-size',
        type=float,
        nargs=2,
        default=[0.2, 0.38],
        help='range of the digit height over the shorter image side')
    parser.add_argument(
        '--subset',
        default='DIGITS',
        help='directory under ROOT (the demo configs read DIGITS/); with '
        'VOC2007, VOCDataset reports VOC2007 and VOCMetric prints VOC class '
        'names in its table')
    parser.add_argument(
        '--force',
        action='store_true',
        help='regenerate even if a complete set is there')
    parser.add_argument(
        '--quiet', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if len(args.image_size) not in (1, 2):
        raise SystemExit('--image-size takes a side or width and height, '
                         f'got {args.image_size}')
    image_size = args.image_size[0] if len(args.image_size) == 1 else tuple(
        args.image_size)
    try:
        summary = make_digits_voc(
            root=args.root,
            num_trainval=args.num_trainval,
            num_test=args.num_test,
            image_size=image_size,
            seed=args.seed,
            digits_per_image=tuple(args.digits_per_image),
            digit_size=tuple(args.digit_size),
            max_overlap=args.max_overlap,
            overlap_prob=args.overlap_prob,
            subset=args.subset,
            force=args.force,
            progress=not args.quiet)
    except ValueError as error:  # a setting out of range, named
        raise SystemExit(f'make_demo_data.py: {error}')
    except OSError as error:  # a root that cannot be written, a full disk
        raise SystemExit(f'make_demo_data.py: cannot make the set under '
                         f'--root {args.root}: {error}')
    where = osp.join(summary['root'], summary['subset'])
    if summary['skipped']:
        print(f'{where}: complete set with these parameters found, skipped '
              '(--force regenerates)')
    else:
        print(f'{where}: written in {summary["seconds"]:.1f} s')
    for split in ('trainval', 'test'):
        info = summary['splits'][split]
        counts = info['class_counts'].values()
        print(f'  {split}: {info["num_images"]} images, '
              f'{info["num_objects"]} digits (per class {min(counts)}-'
              f'{max(counts)}), {info["num_images_with_overlap"]} images '
              f'with overlapping digits, {len(info["source_pool"])} source '
              'scans')
    return summary


if __name__ == '__main__':
    main()
