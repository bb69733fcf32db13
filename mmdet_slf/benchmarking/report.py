# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The benchmark's results page: tables, intervals, p-values and plots.

The rules that make its verdict are in :mod:`.rules`; their names are
also reachable from here, where the pages and the tools first had them."""
import json
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Union

from mmengine.config import Config

from .archive import (attach_weight_records, read_archive, read_archives,
                      write_archive)
from .environment import environment_note
from .figures import plots
from .rules import (MIN_PRIOR_SHARE, MIN_SEEDS, TARGET_GAIN,  # noqa: F401
                    TARGET_P, check_runs, choose_slf_default,
                    reference_label, search_cost, strategy_rows, verdict,
                    weight_share, why_not_default)
from .runs import load_results, select_results
from .tables import cost_table, seed_table, table, variant_table


def prior_weights(cfg: Config) -> Optional[List[float]]:
    """The lambdas a strategy starts from (its ``weights``, ``prior`` or
    ``init_weights``) as its config gives them, not rescaled (the weight
    shares compare them by their share of their own total)."""
    weighting = cfg.model.bbox_head.get('weighting', {})
    for key in ('weights', 'prior', 'init_weights'):
        value = weighting.get(key)
        if value is not None:
            return [float(v) for v in value]
    return None


TEST_IMAGES = 'the 300 demo test images'


def evaluated_on(num_val: Optional[int] = None, split_seed: int = 0) -> str:
    """The images a page's mAP is measured on: the demo test images, or
    ``num_val`` validation images held out of trainval."""
    if num_val is None:
        return TEST_IMAGES
    return (f'the {num_val} validation images held out of the demo '
            f'trainval set (split seed {split_seed}; the runs trained on '
            'the rest, and the test images were not used)')


def check_kept_runs(kept: str, paths: Sequence[str],
                    results: Dict[str, Dict[int, dict]]) -> None:
    """Refuse a page written from several archives, one of them its own
    ``kept``, that would drop runs ``kept`` holds: the page's archive is
    written anew with the runs the page shows (after ``--seeds`` and
    ``--strategies``), and the others would be lost."""
    if osp.abspath(kept) not in [osp.abspath(path) for path in paths]:
        return
    held, _, _ = read_archive(kept)
    lost = [f'{key} seed {seed}' for key in sorted(held)
            for seed in sorted(held[key]) if seed not in results.get(key, {})]
    if lost:
        raise ValueError(
            f'{kept} is one of the archives this page is written from, and '
            f'writing the page would replace it without its runs of '
            f'{", ".join(lost)}; write the page to another --out, or give '
            'the --seeds and --strategies that keep them')


def write_report(work_dir: str,
                 out: str,
                 reference: str,
                 strategies: Dict[str, str],
                 tuned: str = 'fixed-tuned',
                 options: str = '',
                 seeds: Optional[Sequence[int]] = None,
                 keys: Optional[Sequence[str]] = None,
                 evaluated_on: str = TEST_IMAGES,
                 archive: Union[None, str, Sequence[str]] = None) -> str:
    """Merge every saved run under ``work_dir`` (or in ``archive``) into the
    page ``out``.

    ``strategies`` maps each key to its config: a config's ``strategy_name``
    names it in the cost table, ``paired_with`` (a key) puts it in the
    table of variants, and the ``search_runs`` of the ``tuned`` strategy's
    config is the cost of its search in the verdict. The figures go to the
    folder named like ``out`` without its extension. ``options`` are the
    command-line options (beginning with a space) that made these runs,
    such as another budget, for the commands the page quotes. The page
    covers the runs of ``seeds`` and of the strategies ``keys`` with the
    reference (None: every saved one), so seeds run later for a few
    strategies do not change a table made over fewer. ``evaluated_on``
    names the images the mAP is measured on (:func:`evaluated_on`).

    The page's runs are archived beside its figures (``runs.json``, see
    :mod:`.archive`). With ``archive`` the runs, the cost table and the
    work dir the page names come from that file instead of ``work_dir``;
    several files give one page of their runs together
    (:func:`.archive.read_archives`), which names their work dirs and
    them.
    """
    sources: List[str] = []
    if archive is not None:
        paths = [archive] if isinstance(archive, str) else list(archive)
        results, work_dirs, timing, sources = read_archives(paths)
        work_dir = work_dirs[0] if len(work_dirs) == 1 else work_dirs
        source = ' and '.join(paths)
    else:
        results, timing = load_results(work_dir), None
        source = f'{work_dir}/runs'
        timing_file = osp.join(work_dir, 'timing.json')
        if osp.exists(timing_file):
            with open(timing_file) as f:
                timing = json.load(f)
    if not results:
        raise FileNotFoundError(f'no finished runs in {source}')
    results = select_results(results, seeds, keys, reference)
    if not results:
        raise FileNotFoundError(
            f'no finished runs of seeds {list(seeds or [])} and strategies '
            f'{list(keys or [])} in {source}')
    if reference not in results:
        raise ValueError(
            f'the reference {reference!r} has no finished run of seeds '
            f'{sorted({s for runs in results.values() for s in runs})} in '
            f'{source}: every difference on the page is taken against it')
    if archive is None:
        attach_weight_records(results, work_dir)
    # a variant's paired_with may name a strategy left off a limited page
    every_key = set(strategies)
    if keys is not None:
        strategies = {key: path for key, path in strategies.items()
                      if key in keys or key == reference}
    seeds = sorted({seed for runs in results.values() for seed in runs})
    seed_list = ' '.join(map(str, seeds))
    # the page's own command names the strategies it was limited to
    limit = '' if keys is None else ' --strategies ' + ' '.join(keys)
    rows = strategy_rows(results, reference)
    reference_name = reference_label(results, reference)
    configs = {key: Config.fromfile(path) for key, path in strategies.items()}
    # The runs go beside the figures; an archive the page is written from
    # stays as it is (it may hold more runs than the page shows).
    kept = osp.join(osp.splitext(out)[0], 'runs.json')
    if archive is not None and len(paths) > 1:
        check_kept_runs(kept, paths, results)
    # docs/results.md keeps its figures in docs/results/
    files = plots(results, rows, reference, osp.splitext(out)[0], configs)
    if archive is None or [osp.abspath(path) for path in paths] != [
            osp.abspath(kept)]:
        write_archive(kept, results, work_dir, timing,
                      sources if len(sources) > 1 else None)
    kept = osp.relpath(kept, osp.dirname(out))
    budget = sorted({run['max_iters'] for runs in results.values()
                     for run in runs.values()})
    if isinstance(work_dir, str):
        generated = (
            'Generated by `tools/benchmark.py` from the runs saved under '
            f'`{work_dir}`: each strategy trained with `python '
            f'tools/benchmark.py --strategies <key> --seeds {seed_list}'
            f'{options}`, this page written with `python tools/benchmark.py '
            f'--report-only{limit} --seeds {seed_list}{options}` (the cost '
            'table with `--timing`).')
    else:
        generated = (
            'Generated by `tools/benchmark.py` from the runs of several work '
            'dirs, ' + ', '.join(f'`{name}`' for name in work_dir) +
            ', read from ' + ', '.join(f'`{path}`' for path in sources) +
            ': each strategy trained with `python tools/benchmark.py '
            f'--strategies <key> --seeds {seed_list}{options} --work-dir '
            '<its work dir>`, this page written with `python '
            f'tools/benchmark.py --report-only{limit} --seeds {seed_list}'
            f'{options} --archive ' + ' '.join(sources) + '`.')
    lines = [
        '# Benchmark: loss-weighting strategies on the digits demo', '',
        generated, '',
        f'- Budget: {", ".join(map(str, budget))} training iterations per '
        f'run; mAP is VOC mAP@0.5 (11-point) on {evaluated_on} at '
        'the end of training.',
        '- Paired seeds: seed s gives every strategy the same initial '
        'detector weights and the same data order; the difference to '
        f'{reference_name} is taken seed by seed (two-sided paired t-test, '
        '95% t-interval).',
        share_note(results, reference),
        '- "min / run": the median wall-clock training minutes of the '
        "strategy's runs as each recorded it; a run made while another job "
        'used the machine is slower, so compare speed with the cost table.',
        ''
    ]
    lines[-1:-1] = [
        environment_note(results),
        '- The runs behind this page, each with its result and the weights '
        f'it logged, are kept in [`{kept}`]({kept}); the command above with '
        '`--archive` naming that file writes this page from them, without '
        'the work dir.'
    ]
    if keys is not None:
        lines[-1:-1] = [
            '- Only the strategies ' + ', '.join(
                f'`{key}`' for key in sorted(results)) +
            ' are on this page (`--strategies`); the verdict below chooses '
            'among its SLF strategies only.'
        ]
    lines += [table(rows, reference_name), '', '### mAP per seed', '',
              seed_table(results, rows), '']
    bases = {key: cfg.paired_with
             for key, cfg in configs.items() if cfg.get('paired_with')}
    unknown = {key: base for key, base in bases.items()
               if base not in every_key}
    if unknown:
        raise ValueError(f'paired_with names a strategy without a config: '
                         f'{unknown}; the strategies are {sorted(every_key)}')
    itself = sorted(key for key, base in bases.items() if key == base)
    if itself:
        raise ValueError(f'paired_with of {itself} names the strategy itself '
                         "(inherited from its _base_? set paired_with = None)")
    variants = variant_table(results, bases)
    if variants:
        lines += [
            '## Variants', '',
            'Each of these strategies changes one thing in the strategy '
            'it is set against (its config\'s `paired_with`); the '
            'difference is taken seed by seed against that strategy, not '
            'against Fixed.', '', variants, ''
        ]
    missing = sorted(set(strategies) - set(results))
    if missing:
        lines += [
            'Strategies with a config but no finished run (not compared): ' +
            ', '.join(f'`{key}`' for key in missing) + '.', ''
        ]
    if timing:
        names = {key: cfg.get('strategy_name', key)
                 for key, cfg in configs.items()}
        lines += [
            '## Cost', '',
            f'Measured {timing["date"]} with `{timing["command"]}` on '
            f'{timing["machine"]}: every strategy in one process, '
            'interleaved round by round; FPS with the same detector weights '
            'in every model.', '',
            cost_table(timing, reference, names), ''
        ]
    lines += ['## Verdict', '']
    search = configs.get(tuned, {})
    lines += [
        line + '\n' for line in verdict(
            results, rows, reference, tuned=tuned,
            search_runs=search.get('search_runs'),
            search_iters=search.get('search_iters'))
    ]
    for label, key in (('mAP per strategy', 'map'),
                       ('Fixed lambdas: mAP during training', 'curve'),
                       ('Weight share of each term relative to its prior, '
                        'first seed', 'weights')):
        if key in files:
            rel = osp.relpath(files[key], osp.dirname(out))
            lines += [f'![{label}]({rel})', '']
    notes = notes_kept(out)
    if notes:
        lines[2:2] = notes + ['']  # under the title
    text = '\n'.join(lines)
    with open(out, 'w') as f:
        f.write(text)
    return text


def share_note(results: Dict[str, Dict[int, dict]], reference: str) -> str:
    """The page's line on its "min weight / prior" column."""
    first = next(iter(results[reference].values()))
    terms, prior = first['terms'], first.get('prior') or []
    lambdas = '/'.join(f'{value:g}' for value in prior)
    return (
        '- "min weight / prior": the smallest, over the '
        f'{len(terms)} terms and the seeds, of a term\'s share of the total '
        'of the weights averaged over training, divided by its share under '
        f'the reference\'s lambdas {lambdas} (1 = that balance; below '
        f'{MIN_PRIOR_SHARE:g} the term is starved). The average is over the '
        'values the logger recorded, one every logging interval (50 '
        'iterations in the demo configs); the column is rounded down, so '
        f'{MIN_PRIOR_SHARE:.2f} means at least {MIN_PRIOR_SHARE:g}.')


NOTE_PREFIX = '> Note added'


def notes_kept(out: str) -> List[str]:
    """The notes under the title of the page ``out`` already has, which a
    rewrite of the page keeps: the quoted paragraphs (``>`` lines between
    blank ones) whose first line starts with ``> Note added``. Other
    quoted paragraphs there are not the tool's and are dropped, with a
    warning naming them."""
    if not osp.exists(out):
        return []
    with open(out) as f:
        lines = f.read().split('\n')
    paragraphs, current, index = [], [], 1
    while index < len(lines) and (not lines[index].strip()
                                  or lines[index].startswith('>')):
        if lines[index].strip():
            current.append(lines[index])
        elif current:
            paragraphs.append(current)
            current = []
        index += 1
    if current:
        paragraphs.append(current)
    kept = [p for p in paragraphs if p[0].startswith(NOTE_PREFIX)]
    dropped = [p[0] for p in paragraphs if not p[0].startswith(NOTE_PREFIX)]
    if dropped:
        warnings.warn(f'{out}: quoted paragraphs under the title that are '
                      f'not notes ("{NOTE_PREFIX} ...") are not kept: '
                      f'{dropped}')
    return [line for paragraph in kept for line in paragraph + ['']][:-1]
