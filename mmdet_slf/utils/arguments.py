# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Argument checks the tools share: ``--cfg-options`` as mmengine's
``DictAction`` with an item that is not ``KEY=VALUE`` refused by the parser
by name, a ``--work-dir`` that is a file, an output file that cannot be
written and a ``--device`` refused before any model is built."""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import DictAction


class CfgOptionsAction(DictAction):
    """``--cfg-options KEY=VALUE ...`` as mmengine's :class:`DictAction`
    parses it. An item without ``=`` (``--cfg-options foo``) or with a
    value the action cannot parse ends the tool with the parser's usage
    and the item named, not with a ``ValueError`` from inside argparse."""

    def __call__(self, parser, namespace, values, option_string=None):
        bad = [value for value in values or () if '=' not in value]
        if bad:
            raise argparse.ArgumentError(
                self, f'{", ".join(map(repr, bad))} is not KEY=VALUE (a '
                'config key, =, and its value, as model.bbox_head.'
                'num_classes=20)')
        try:
            super().__call__(parser, namespace, values, option_string)
        except (ValueError, AssertionError) as err:
            raise argparse.ArgumentError(
                self, f'cannot parse {" ".join(values)}: {err}') from None


def check_device(parser: argparse.ArgumentParser, device: str) -> None:
    """Refuse, through ``parser``, a ``--device`` torch cannot parse, one
    that is neither CPU nor CUDA, or a CUDA one this machine does not have,
    before any model is built."""
    try:
        parsed = torch.device(device)
    except RuntimeError:
        parser.error(f'--device must be cpu, cuda or cuda:N, got {device!r}')
    if parsed.type not in ('cpu', 'cuda'):
        parser.error(f'--device must be cpu, cuda or cuda:N, got {device!r}')
    if parsed.type == 'cuda' and not (
            torch.cuda.is_available() and
            (parsed.index or 0) < torch.cuda.device_count()):
        parser.error(f'--device {device}: no such CUDA device here '
                     f'({torch.cuda.device_count()} visible)')


def check_work_dir(parser: argparse.ArgumentParser, work_dir,
                   what: str = 'the work dir is the folder the logs and '
                   'checkpoints go to') -> None:
    """Refuse, through ``parser``, a ``--work-dir`` that is an existing
    file (a folder that does not exist yet is made by the run); ``what``
    says what the folder is for."""
    if work_dir is not None and osp.exists(work_dir) and \
            not osp.isdir(work_dir):
        parser.error(f'--work-dir {work_dir} is a file; {what}')


def check_out_file(parser: argparse.ArgumentParser, path: str, key: str,
                   what: str = 'name the file to write') -> None:
    """Refuse, through ``parser``, an output ``path`` that is a folder or
    lies under a file, before the work whose result it is meant to keep;
    folders that do not exist yet are left for the writer to make. ``key``
    names the argument in the message. A path that names no file (empty,
    as an unset shell variable gives, or ending in a separator: a folder
    to be) is refused too."""
    if not path or path.endswith(('/', os.sep)) or osp.basename(path) in (
            '.', '..'):
        parser.error(f'{key} {path!r} names no file: {what}')
    if osp.isdir(path):
        parser.error(f'{key} {path} is a folder: {what}')
    folder = osp.dirname(osp.abspath(path))
    while not osp.exists(folder):
        folder = osp.dirname(folder)
    if not osp.isdir(folder):
        parser.error(f'{key} {path}: {folder} is a file, not a folder')
