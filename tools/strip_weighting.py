# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Drop the loss weighting from a trained checkpoint, for testing and
deployment: ``python tools/strip_weighting.py CONFIG CHECKPOINT OUT``.

The weighting (SLF's decision network and its running scales and counter,
or the state of any other weighting of the package) serves the loss only:
at test time nothing of it runs. This tool builds CONFIG's model (no data,
no weights), finds its weightings (every ``BaseWeighting`` inside it: a
head's ``weighting``, ``SLFDetector``'s, an ``SLFLoss``'s) and writes OUT
with the checkpoint's model weights less theirs, and its ``meta``. The
optimizer and scheduler states and the message hub, which only resume a
run, are left out, as mmdet's ``publish_model.py`` leaves them; so is an
``ema_state_dict``, since mmengine's ``EMAHook`` swaps the averaged weights
into ``state_dict`` before it saves, and those are kept. OUT then
holds the baseline detector exactly: with ``--baseline BASELINE_CONFIG`` it
must load strictly (same keys, same shapes) into BASELINE_CONFIG's model,
which is checked before anything is written, so that it can be tested or
exported with the baseline's config. A baseline with a weighting of its own
(DWA's loss history, FAMO's logits, Uncertainty's variances) is compared
without it: that state is left at its initialisation, as the test runner
takes it (it warns and goes on, since prediction never runs it)::

    python tools/strip_weighting.py configs/yolo_slf_voc.py \\
        work_dirs/yolo_slf_voc/epoch_135.pth yolo_slf_voc.pth \\
        --baseline configs/yolo_voc.py
    python tools/test.py configs/yolo_voc.py yolo_slf_voc.pth

Configs may be files or ``mmdet::`` names. The checkpoint must fit CONFIG's
model exactly: a checkpoint of another model is refused, naming the keys,
since then no one can say which of its weights were the weighting's.
"""
import argparse
import hashlib
import io
import os.path as osp
import sys
from typing import List, Optional

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from benchmark_fps import load_cfg  # noqa: E402

from mmdet_slf.utils.arguments import CfgOptionsAction  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a checkpoint without its loss weighting, for '
        'testing and deployment with the baseline config')
    parser.add_argument('config', help='the config the checkpoint was '
                        'trained with (file or mmdet:: name)')
    parser.add_argument('checkpoint', help='the trained checkpoint')
    parser.add_argument('out', help='where to write the stripped checkpoint')
    parser.add_argument(
        '--baseline', help='a config without the weighting (e.g. '
        'configs/yolo_voc.py) whose model must load OUT strictly')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='overrides of CONFIG, as in tools/train.py')
    args = parser.parse_args(argv)
    # safe_torch_load expands '~': compare and write the paths it reads
    args.checkpoint = osp.expanduser(args.checkpoint)
    args.out = osp.expanduser(args.out)
    if osp.isdir(args.out):
        parser.error(f'OUT {args.out} is a folder: name the file to write')
    if osp.abspath(args.out) == osp.abspath(args.checkpoint) or (
            osp.exists(args.out) and osp.exists(args.checkpoint)
            and osp.samefile(args.out, args.checkpoint)):
        parser.error(f'OUT {args.out} is the checkpoint itself: write the '
                     'stripped weights to another file, so that the '
                     'training checkpoint (and its resume state) is kept')
    return args


def build_model(cfg) -> torch.nn.Module:
    """``cfg.model`` as built, with the package's modules registered."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import mmdet_slf  # noqa: F401
    register_all_modules(init_default_scope=True)
    return MODELS.build(cfg.model)


def weighting_prefixes(model: torch.nn.Module) -> List[str]:
    """The names of the model's weightings, as state-dict prefixes
    (``'bbox_head.weighting.'``). A weighting held under two names is
    listed under both, as ``state_dict`` saves it under both."""
    from mmdet_slf.engine.hooks.slf_logger_hook import find_weightings
    return [
        name + '.'
        for name, _ in find_weightings(model, remove_duplicate=False)
    ]


def without_weightings(state: dict, prefixes: List[str]) -> dict:
    return {key: value for key, value in state.items()
            if not key.startswith(tuple(prefixes))}


def strip(checkpoint: dict, model: torch.nn.Module, source: str) -> dict:
    """The checkpoint's ``state_dict`` less the weightings' keys, with its
    ``meta``; refused unless it fits ``model`` exactly."""
    from mmdet_slf.engine.checkpoint import (checkpoint_state_dict,
                                             compare_state_dicts,
                                             describe_mismatch, has_mismatch)
    prefixes = weighting_prefixes(model)
    if not prefixes:
        raise ValueError('the config\'s model has no loss weighting '
                         '(no BaseWeighting inside it): nothing to strip')
    state = checkpoint_state_dict(checkpoint, source)
    meta = checkpoint.get('meta')
    if meta is not None and not isinstance(meta, dict):
        raise ValueError(f'{source}: its meta is a {type(meta).__name__}, '
                         'not a dict: not a checkpoint mmengine saved')
    report = compare_state_dicts(model.state_dict(), state)
    if has_mismatch(report):
        raise ValueError(f'{source} does not fit the config\'s model, so '
                         'its weighting keys are not known:\n' +
                         describe_mismatch(report))
    kept = without_weightings(state, prefixes)
    meta = dict(meta or {})
    meta['weighting_stripped'] = dict(
        prefixes=prefixes, num_keys=len(state) - len(kept))
    return dict(meta=meta, state_dict=kept)


def check_baseline(stripped: dict, baseline: torch.nn.Module,
                   name: str) -> int:
    """Refuse weights that the baseline's model, less its own weightings,
    would not load strictly. Returns the number of the baseline's weighting
    keys, which OUT leaves at their initialisation."""
    from mmdet_slf.engine.checkpoint import (compare_state_dicts,
                                             describe_mismatch, has_mismatch)
    state = baseline.state_dict()
    detector = without_weightings(state, weighting_prefixes(baseline))
    report = compare_state_dicts(detector, stripped['state_dict'])
    if has_mismatch(report):
        raise ValueError(f'the stripped weights do not fit {name}\'s model; '
                         'nothing was written:\n' + describe_mismatch(report))
    return len(state) - len(detector)


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    from mmdet_slf.engine.checkpoint import (CheckpointError, atomic_write,
                                             safe_torch_load)
    left = 0
    try:
        cfg = load_cfg(args.config, args.cfg_options)
        baseline = None if args.baseline is None else load_cfg(
            args.baseline, None)
        checkpoint = safe_torch_load(args.checkpoint)
        stripped = strip(checkpoint, build_model(cfg), args.checkpoint)
        if baseline is not None:
            left = check_baseline(stripped, build_model(baseline),
                                  args.baseline)
    except (ValueError, OSError, CheckpointError) as error:
        # OSError: a missing file, or a --baseline that is no config
        sys.exit(f'strip_weighting.py: {error}')
    buffer = io.BytesIO()
    torch.save(stripped, buffer)
    data = buffer.getvalue()
    try:
        atomic_write(args.out, data)
    except OSError as error:
        sys.exit(f'strip_weighting.py: cannot write {args.out}: {error}')
    info = stripped['meta']['weighting_stripped']
    print(f'{args.out}: {len(stripped["state_dict"])} tensors kept, '
          f'{info["num_keys"]} of the weighting dropped '
          f'({", ".join(p[:-1] for p in info["prefixes"])}); '
          f'sha256 {hashlib.sha256(data).hexdigest()}')
    if left:
        print(f'{args.baseline} has a weighting of its own: its {left} '
              'keys are not in OUT and stay at their initialisation there '
              '(prediction does not run them)')
    return stripped


if __name__ == '__main__':
    main()
