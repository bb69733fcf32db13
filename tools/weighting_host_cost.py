# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Host time a loss weighting adds to a training step, timed on its own.

At small batches on a fast GPU a detector's training step is host-bound:
the GPU waits for the host to issue kernels, so whatever a weighting issues
costs its host time in full. ``tools/benchmark_fps.py --train`` times whole
steps, where the weighting's cost sits inside the detector's own
step-to-step noise (on a shared GPU machine the 95% interval of 50 paired
RetinaNet steps can be +-6%). This tool times the weighting alone, with
nothing else that varies:

* ``none``: ``n`` raw terms (``exp`` of a parameter vector on the device),
  each summed over the images (a scalar's sum is a copy) and then summed as
  mmengine's ``parse_losses`` sums loss keys, backward, the optimizer step,
  and the runner's reads of every returned value;
* ``fixed``: the same with :class:`FixedWeighting` (all weights 1), as
  ``SLFDetector`` runs it;
* ``slf``: the same with :class:`SLFWeighting` (the defaults, options from
  ``--slf-options``) with ``cuda_graph=False``, each call eager, as every
  measurement before the graphs; its decision network in an optimizer
  group of its own without weight decay, as the configs have it;
* ``slf_graph``: the same SLF with ``cuda_graph=True`` (opt-in): on
  CUDA each call replays captured graphs of its forward and backward (on
  other devices it runs eagerly, as ``slf``).

The weightings hand their diagnostics to the reader in one copy, as
``SLFLoggerHook`` does. The rounds are interleaved (the order rotating every
round), and each weighting's per-step difference from ``none`` is reported
in microseconds with a 95% t-interval over the rounds, next to the exact
number of operators each step dispatches. A detector's step time divided
into that difference is the share the weighting adds to a host-bound step.

The tool imports the weightings alone (``mmdet_slf.slf``, which needs only
torch, mmengine and mmdet's registry), not the package's models, so it runs
where mmcv has no compiled ops::

    python tools/weighting_host_cost.py --device cuda --rounds 200
"""
import argparse
import importlib
import json
import os
import os.path as osp
import sys
import types

import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
VARIANTS = ('none', 'fixed', 'slf', 'slf_graph')
# SLFWeighting arguments the variants set: --slf-options may not
SET_BY_TOOL = ('type', 'terms', 'cuda_graph', 'in_channels')


def import_weightings():
    """Register the weightings in mmdet's ``MODELS``.

    Where mmcv has its compiled ops this imports the package, as configs
    do. Where it has none (a machine on which mmcv was not built), it
    imports ``mmdet_slf.slf`` past the package's ``__init__``, which imports
    mmdet's models, whose layers need the ops; and it keeps ``MODELS`` from
    importing those models at its first lookup. The weightings need none of
    them.
    """
    try:
        import mmcv.ops  # noqa: F401
    except ImportError:
        from mmdet.registry import MODELS
        if 'mmdet_slf' not in sys.modules:
            package = types.ModuleType('mmdet_slf')
            package.__path__ = [osp.join(REPO, 'mmdet_slf')]
            sys.modules['mmdet_slf'] = package
        MODELS._imported = True
        importlib.import_module('mmdet_slf.slf')
        return
    importlib.import_module('mmdet_slf')


def parse_value(text):
    """A ``--slf-options`` value: a number, True/False/None, or a string."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {'True': True, 'False': False, 'None': None}.get(text, text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu', help='e.g. cuda or cpu')
    parser.add_argument(
        '--terms', nargs='+', default=['cls', 'box'],
        help="term names (default: RetinaNet's cls box)")
    parser.add_argument(
        '--images', type=int, default=0,
        help='per-image terms [N, n] for N images (0: batch-level scalars, '
        "as mmdet's detectors return them; default 0)")
    parser.add_argument('--slf-options', nargs='*', default=[],
                        metavar='KEY=VALUE',
                        help="SLFWeighting arguments, e.g. estimator=gumbel")
    parser.add_argument('--rounds', type=int, default=100,
                        help='timed rounds (default 100)')
    parser.add_argument('--steps', type=int, default=20,
                        help='steps of each variant per round (default 20)')
    parser.add_argument('--warmup', type=int, default=50,
                        help='untimed steps of each variant (default 50)')
    parser.add_argument('--out', help='write the results here as JSON')
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error('--rounds must be >= 2 (an interval needs two), got '
                     f'{args.rounds}')
    if args.steps < 1:
        parser.error(f'--steps must be >= 1, got {args.steps}')
    if args.warmup < 0 or args.images < 0:
        parser.error('--warmup and --images must be >= 0, got '
                     f'{args.warmup} and {args.images}')
    if len(set(args.terms)) != len(args.terms):
        parser.error(f'--terms must be distinct, got {" ".join(args.terms)}')
    options = {}
    for item in args.slf_options:
        key, sep, value = item.partition('=')
        if not sep or not key:
            parser.error(f'--slf-options takes KEY=VALUE, got {item!r}')
        if key in SET_BY_TOOL:
            parser.error(
                f'--slf-options {key}: the tool sets {", ".join(SET_BY_TOOL)}'
                ' itself (terms from --terms, cuda_graph per variant), got '
                f'{item!r}')
        options[key] = parse_value(value)
    args.slf_options = options
    # SLFWeighting checks its arguments when built: once here, so that a
    # bad one is refused by name before anything is timed.
    import_weightings()
    from mmdet_slf.utils.arguments import check_device, check_out_file
    check_device(parser, args.device)
    if args.out is not None:
        # written after every round is timed
        check_out_file(parser, args.out, '--out',
                       'name the JSON file to write')
    from mmdet.registry import MODELS
    try:
        MODELS.build(slf_config(args, cuda_graph=False))
    except (TypeError, ValueError) as error:
        parser.error(f'--slf-options: {error}')
    return args


def slf_config(args, cuda_graph):
    """The config of the SLF variants' weighting."""
    return dict(type='SLFWeighting', terms=args.terms, **args.slf_options,
                cuda_graph=cuda_graph)


class Step:
    """One training step of ``n`` raw terms through a weighting (or none),
    with the optimizer and the reads of a training run."""

    def __init__(self, weighting, terms, images, device):
        shape = (images, len(terms)) if images else (len(terms), )
        # exp() of these gives positive terms of different sizes
        start = torch.linspace(-1.0, 1.0, len(terms)).expand(shape)
        self.param = torch.nn.Parameter(start.clone().to(device))
        self.terms = terms
        self.weighting = weighting
        groups = [dict(params=[self.param])]
        if weighting is not None:
            weighting.to(device).train()
            # SLFLoggerHook reads the diagnostics, in one copy per step
            weighting.diagnostics_logged_by_hook = True
            decision = list(weighting.parameters())
            if decision:
                groups.append(dict(params=decision, weight_decay=0.0))
        self.optimizer = torch.optim.SGD(
            groups, lr=0.01, momentum=0.9, weight_decay=1e-4)

    def __call__(self):
        raw = self.param.exp()
        losses = {f'loss_{name}': value
                  for name, value in zip(self.terms, raw.unbind(-1))}
        if self.weighting is None:
            # what a detector returns: each term summed over the images
            # (for batch-level terms, a copy)
            outputs = {key: value.sum() for key, value in losses.items()}
        else:
            outputs = self.weighting(losses)
        # mmengine's BaseModel.parse_losses
        log_vars = [(key, value.mean()) for key, value in outputs.items()]
        loss = sum(value for key, value in log_vars if 'loss' in key)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        # the runner's reads, and SLFLoggerHook's one copy
        reads = [loss.item()] + [value.item() for _, value in log_vars]
        if self.weighting is not None:
            _, values = self.weighting.diagnostic_vector
            reads += values.tolist()
        return 1


def build_steps(args):
    """The steps of :data:`VARIANTS`, each with its own parameter and
    optimizer, on ``args.device``."""
    from mmdet.registry import MODELS
    weightings = dict(
        none=None,
        fixed=MODELS.build(dict(type='FixedWeighting', terms=args.terms)),
        slf=MODELS.build(slf_config(args, cuda_graph=False)),
        slf_graph=MODELS.build(slf_config(args, cuda_graph=True)))
    device = torch.device(args.device)
    return {name: Step(weightings[name], args.terms, args.images, device)
            for name in VARIANTS}


def main(argv=None):
    args = parse_args(argv)  # registers the weightings in mmdet's MODELS
    from mmdet_slf.benchmarking.stats import summarize
    from mmdet_slf.utils.profiling import count_operators
    from mmdet_slf.utils.timing import (device_synchronizer,
                                        interleaved_timing)
    torch.manual_seed(0)
    steps = build_steps(args)
    device = torch.device(args.device)
    timings = interleaved_timing(
        steps, rounds=args.rounds, calls_per_round=args.steps,
        warmup=args.warmup, synchronize=device_synchronizer(device))
    operators = {name: sum(count_operators(step).values())
                 for name, step in steps.items()}
    per_step = {name: [1e6 * s for s in timing.per_item()]
                for name, timing in timings.items()}
    result = dict(
        device=(torch.cuda.get_device_name(device)
                if device.type == 'cuda' else 'cpu'),
        torch=torch.__version__, terms=args.terms, images=args.images,
        slf_options=args.slf_options, rounds=args.rounds,
        steps_per_round=args.steps, warmup=args.warmup,
        step_us={name: summarize(values)['mean']
                 for name, values in per_step.items()},
        operators=operators, added={})
    print(f'{result["device"]}, torch {torch.__version__}: '
          f'{args.rounds} rounds of {args.steps} steps, interleaved')
    print(f'  none: {result["step_us"]["none"]:.1f} us per step, '
          f'{operators["none"]} operators')
    for name in VARIANTS[1:]:
        added = summarize([b - a for a, b in zip(per_step['none'],
                                                 per_step[name])])
        result['added'][name] = dict(
            us=added['mean'], ci_low=added['ci_low'],
            ci_high=added['ci_high'],
            operators=operators[name] - operators['none'])
        print(f'  {name}: {added["mean"]:+.1f} us per step '
              f'[{added["ci_low"]:.1f}, {added["ci_high"]:.1f}] (95% '
              f't-interval over {added["n"]} rounds), '
              f'{operators[name] - operators["none"]:+d} operators')
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == '__main__':
    main()
