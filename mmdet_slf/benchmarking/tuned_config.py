# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The winner of a fixed-lambda search as a benchmark strategy config.

The config inherits the strategy the search trained, carries the search's
``--cfg-options`` and replaces the weighting by :class:`FixedWeighting` of
the best lambdas; its header records the search (:mod:`.tuning`).
"""
import os.path as osp
import textwrap
from typing import List, Optional

from mmengine.config import Config

from mmdet_slf.engine.checkpoint.atomic_io import atomic_write

from .tuning import format_lambdas, format_table


def _comment(text: str) -> List[str]:
    return textwrap.wrap(text, width=77, initial_indent='# ',
                         subsequent_indent='# ')


def nest_options(options: Optional[dict]) -> dict:
    """``--cfg-options`` (``{'a.b': value}``) as the nested dicts a child
    config assigns, which mmengine merges into its base key by key, as
    ``merge_from_dict`` merges the options.

    Raises:
        ValueError: For a key that indexes a list (``param_scheduler.0.end``)
            or that sets a value and a key below it: a config file cannot
            merge those into its base.
    """
    nested: dict = {}
    for key, value in (options or {}).items():
        parts = key.split('.')
        if any(part.isdigit() or not part.isidentifier() for part in parts):
            raise ValueError(
                f'--cfg-options {key}: a written config can only carry '
                'options whose keys are names (no list indices); put this '
                'setting in a strategy config and pass it as --reference')
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f'--cfg-options sets {part} and a key below '
                                 f'it ({key})')
        if isinstance(node.get(parts[-1]), dict):
            raise ValueError(f'--cfg-options sets {key} and a key below it')
        node[parts[-1]] = value
    return nested


def format_assignment(name: str, value, indent: int = 0) -> str:
    """``name=value`` (or ``name = value`` at the top) with nested dicts
    as ``dict(...)`` over several lines; other values by ``repr``."""
    sep = ' = ' if indent == 0 else '='
    if not isinstance(value, dict):
        return f'{" " * indent}{name}{sep}{value!r}'
    items = [format_assignment(key, item, indent + 4)
             for key, item in value.items()]
    return f'{" " * indent}{name}{sep}dict(\n' + ',\n'.join(items) + ')'


def inherited_files(path: str) -> List[str]:
    """``path`` and every config file it inherits, directly or through
    others, as absolute paths (configs of a package, ``mmdet::...``, are
    left out): a config written in place of one of them would inherit
    itself."""
    found: List[str] = []
    todo = [osp.abspath(path)]
    while todo:
        current = todo.pop()
        if current in found:
            continue
        found.append(current)
        todo += [osp.abspath(osp.join(osp.dirname(current), base))
                 for base in Config._get_base_files(current)
                 if '::' not in base]
    return found


def write_tuned_config(path: str,
                       search: dict,
                       base_config: str,
                       command: Optional[str] = None,
                       options: Optional[dict] = None) -> str:
    """Write the best setting as a benchmark strategy config.

    The config inherits ``base_config`` (by a path relative to ``path``),
    sets a :class:`FixedWeighting` of the best lambdas and a
    ``strategy_name``, and its header gives the search: what was drawn, the
    table of settings and validation mAPs, the cost and the command.

    Args:
        path (str): The config to write.
        search (dict): From :func:`summarize_search`, with the keys
            ``seed``, ``spread``, ``base``, ``max_iters``, ``num_train``
            and ``num_val`` among its ``meta``.
        base_config (str): The benchmark setting the strategy inherits.
        command (str, optional): The command that ran the search.
            Defaults to None.
        options (dict, optional): The search's ``--cfg-options``, written
            into the config so that it trains what the search trained.
            Defaults to None.

    Returns:
        str: The text written, whole or not at all (a temporary file is
        moved onto ``path``).
    """
    tree = nest_options(options)  # refuses what a config cannot carry
    lambdas = format_lambdas(search['lambdas'])
    lines = _comment(
        f'Fixed lambdas tuned on a validation split: the best of '
        f'{search["num_runs"]} settings drawn log-uniformly within '
        f'x{search["spread"]:g} of {format_lambdas(search["base"])} '
        f'({", ".join(search["terms"])}; each lambda independently, seed '
        f'{search["seed"]}), each trained once ({search["max_iters"]} '
        f'iterations, training seed {search["seed"]}) on the '
        f'{search["num_train"]} images of train.txt and ranked by the final '
        f'VOC mAP on the {search["num_val"]} images of val.txt, both held '
        f'out of trainval.txt; the test images were not used.')
    lines += _comment(
        f'Cost: {search["num_runs"]} training runs, '
        f'{search["train_minutes"]:.1f} minutes of training.')
    if command:
        wrapped = textwrap.wrap(
            command, width=71, initial_indent='#   ',
            subsequent_indent='#       ', break_long_words=False,
            break_on_hyphens=False)
        lines += ['# Made by:'] + [line + ' \\' for line in wrapped[:-1]]
        lines += wrapped[-1:]
    lines += ['#'] + ['# ' + line for line in format_table(search)]
    relative = osp.relpath(osp.abspath(base_config),
                           osp.dirname(osp.abspath(path)))
    lines += [
        f"_base_ = './{relative}'" if not relative.startswith('..') else
        f"_base_ = '{relative}'",
        f"strategy_name = 'Fixed, tuned lambdas {lambdas}'",
        f'search_runs = {search["num_runs"]}  # the cost of choosing them',
        f'search_iters = {search["max_iters"]}  # the length of each search '
        'run',
    ]
    head = tree.setdefault('model', {}).setdefault('bbox_head', {})
    head['weighting'] = dict(
        _delete_=True,
        type='FixedWeighting',
        weights=[float(f'{value:g}') for value in search['lambdas']])
    if options:
        lines.append('# --cfg-options of the search')
    lines += [format_assignment(key, value) for key, value in tree.items()]
    text = '\n'.join(lines) + '\n'
    # Old text or new, never a part: a truncated config would be found and
    # trained as a strategy. The temporary name does not end in .py.
    atomic_write(path, text.encode())
    return text
