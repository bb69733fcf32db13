# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Whether a code change leaves training unchanged, bit for bit.

    python tools/training_trajectory.py record CONFIG [CONFIG ...] \\
        --steps 30 --batch-size 16 --out before.pt
    (change the code)
    python tools/training_trajectory.py record CONFIG [CONFIG ...] \\
        --steps 30 --batch-size 16 --out after.pt
    python tools/training_trajectory.py compare before.pt after.pt

``record`` trains each config for ``--steps`` calls of ``model.train_step``
with the config's ``optim_wrapper`` at its base learning rate, on random
images with 1 to 4 random boxes each (the batches of
``tools/benchmark_fps.py --train``), from the same seeds, and saves every
step's loss values and the final parameters, buffers and optimizer state.
``compare`` says, per config, whether the losses of every step and the final
state are bitwise equal, and otherwise the largest difference; it exits
with 1 if any config differs. A refactoring that claims not to change what
a model learns can be held to that claim with it: a change in rounding
anywhere in the step (a different but equivalent formula, another
reduction order) shows up here, while a mAP benchmark would drown it in
seed noise.

A record is of the checkout the script runs from: it imports that
checkout's ``mmdet_slf`` (one without ``benchmarking/speed.py`` through
``tools/benchmark_fps.py``). To record an older commit, check it out beside
this one (``git worktree add ../old COMMIT``), copy this file into its
``tools/`` if it is not there, and run it from there with the same relative
config paths, so that the two records name their configs alike.
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List

import torch

TOOLS = osp.dirname(osp.abspath(__file__))
sys.path[:0] = [osp.dirname(TOOLS), TOOLS]  # this checkout's mmdet_slf first

try:
    from mmdet_slf.benchmarking.speed import (  # noqa: E402
        build_model, load_cfg, num_classes, random_train_batches,
        test_resize_hw)
except ImportError:  # an older checkout (see above)
    from benchmark_fps import (build_model, load_cfg,  # noqa: E402
                               num_classes, random_train_batches,
                               test_resize_hw)
try:
    from mmdet_slf.utils.arguments import check_out_file  # noqa: E402
except ImportError:  # an older checkout: only a folder is refused there
    check_out_file = None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Record training steps, or compare two records')
    sub = parser.add_subparsers(dest='command', required=True)
    record = sub.add_parser('record', help='train and save a record')
    record.add_argument('configs', nargs='+', help='config files')
    record.add_argument('--steps', type=int, default=30,
                        help='training steps per config')
    record.add_argument('--batch-size', type=int, default=16,
                        help='images per step')
    record.add_argument('--seed', type=int, default=0,
                        help='seed of the initial weights and of the '
                        'random batches; the random draws of the steps use '
                        'seed + 1')
    record.add_argument('--out', required=True, help='record file (.pt)')
    compare = sub.add_parser('compare', help='compare two records')
    compare.add_argument('first', help='record file')
    compare.add_argument('second', help='record file')
    args = parser.parse_args(argv)
    if args.command == 'record':
        if args.steps < 1:
            parser.error(f'--steps must be >= 1, got {args.steps}')
        if args.batch_size < 1:
            parser.error(f'--batch-size must be >= 1, got {args.batch_size}')
        # before the training: a record that cannot be saved is lost work
        what = 'name the record file (.pt)'
        if check_out_file is not None:
            check_out_file(parser, args.out, '--out', what)
        elif osp.isdir(args.out):
            parser.error(f'--out {args.out} is a folder: {what}')
    paths = args.configs if args.command == 'record' else [
        args.first, args.second]
    for path in paths:
        # mmdet:: names pass; inline, not mmdet_slf.utils.paths, since
        # this file also runs in older checkouts
        if '::' not in path and not osp.isfile(path):
            parser.error(f'{path} does not exist')
    return args


def record_config(path: str, steps: int, batch_size: int,
                  seed: int) -> Dict:
    """Train ``path`` for ``steps`` steps; the loss values of every step
    and the final state."""
    from mmengine.optim import build_optim_wrapper
    cfg = load_cfg(path, None)
    torch.manual_seed(seed)
    model = build_model(cfg, None, 'cpu', False, train=True)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper.copy())
    batches = random_train_batches(
        test_resize_hw(cfg), batch_size, num_classes(cfg.model), seed=seed)
    torch.manual_seed(seed + 1)
    losses: List[Dict[str, torch.Tensor]] = []
    for _ in range(steps):
        log_vars = model.train_step(next(batches), optim_wrapper)
        losses.append({
            key: value.detach().clone()
            for key, value in log_vars.items() if 'loss' in key
        })
    return dict(
        losses=losses,
        state={
            key: value.detach().clone()
            for key, value in model.state_dict().items()
        },
        optimizer=optim_wrapper.state_dict())


def flat_tensors(node, prefix: str = '') -> Dict[str, torch.Tensor]:
    """Every tensor in a nested dict or list, by its path."""
    if isinstance(node, torch.Tensor):
        return {prefix: node}
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, (list, tuple)) else ()
    found = {}
    for key, value in items:
        found.update(flat_tensors(value, f'{prefix}/{key}'))
    return found


def bitwise_equal(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether two tensors of one shape and dtype hold the same bits: a NaN
    equals the same NaN, and 0.0 differs from -0.0."""
    return torch.equal(x.contiguous().reshape(-1).view(torch.uint8),
                       y.contiguous().reshape(-1).view(torch.uint8))


def difference(first: Dict, second: Dict) -> Dict:
    """How two records of one config differ: ``equal``, the paths present
    in one only, and the largest absolute difference and its path."""
    a, b = flat_tensors(first), flat_tensors(second)
    only = sorted(set(a) ^ set(b))
    largest, where = 0.0, None
    equal = not only
    for path in sorted(set(a) & set(b)):
        x, y = a[path], b[path]
        if x.shape != y.shape or x.dtype != y.dtype:
            equal, where, largest = False, path, float('inf')
            continue
        if bitwise_equal(x, y):
            continue
        equal = False
        if x.is_floating_point():
            gap = (x.double() - y.double()).abs().nan_to_num(
                nan=float('inf')).max().item()
        else:
            gap = (x.long() - y.long()).abs().max().item()
        if gap >= largest:
            largest, where = float(gap), path
    return dict(equal=equal, only_in_one=only, largest=largest, at=where)


def load_record(path: str) -> Dict:
    """A file ``record`` wrote, or SystemExit naming the file and what is
    wrong with it."""
    try:
        record = torch.load(path, weights_only=False)
    except Exception as error:  # torch raises many kinds for a bad file
        raise SystemExit(
            f'{path}: not a record of this tool ({type(error).__name__}: '
            f'{error})') from None
    if not (isinstance(record, dict) and isinstance(record.get('meta'), dict)
            and isinstance(record.get('configs'), dict)):
        raise SystemExit(f'{path}: not a record of this tool (no meta and '
                         'configs dicts; write one with `record`)')
    return record


def compare(first_path: str, second_path: str) -> bool:
    """Print the comparison per config; True if every config is equal."""
    first, second = load_record(first_path), load_record(second_path)
    if first['meta'] != second['meta']:
        print(f'the records differ in their settings: {first["meta"]} '
              f'against {second["meta"]}')
        return False
    all_equal = True
    for name in sorted(set(first['configs']) | set(second['configs'])):
        if name not in first['configs'] or name not in second['configs']:
            print(f'{name}: in one record only')
            all_equal = False
            continue
        result = difference(first['configs'][name], second['configs'][name])
        if result['equal']:
            print(f'{name}: bitwise equal')
            continue
        all_equal = False
        message = f'{name}: differs, largest |difference| ' \
                  f'{result["largest"]:.3g} at {result["at"]}'
        if result['only_in_one']:
            message += f'; in one record only: {result["only_in_one"]}'
        print(message)
    return all_equal


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == 'compare':
        return 0 if compare(args.first, args.second) else 1
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    configs = {}
    for path in args.configs:
        configs[path] = record_config(path, args.steps, args.batch_size,
                                      args.seed)
        print(f'{path}: {args.steps} steps, last loss '
              f'{float(configs[path]["losses"][-1]["loss"]):.6f}')
    meta = dict(steps=args.steps, batch_size=args.batch_size, seed=args.seed)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    torch.save(dict(meta=meta, configs=configs), args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
