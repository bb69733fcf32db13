# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The benchmark's results page: tables, intervals, p-values and plots."""
import json
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.config import Config

from .archive import attach_weight_records, read_archive, write_archive
from .figures import plots
from .environment import environment_note
from .runs import load_results, paired_seeds, select_results
from .stats import p_gain_below, paired_comparison, summarize
from .tables import cost_table, fmt_p, seed_table, table, variant_table
from .terms import weight_shares

MIN_PRIOR_SHARE = 0.25  # a term below 25% of its prior weight is starved
TARGET_GAIN = 0.01  # the SLF default's target: Fixed + 1.0 mAP point ...
TARGET_P = 0.05  # ... with p below this
MIN_SEEDS = 5  # a variant is a candidate for the default with this many


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


def weight_share(result: dict, reference_terms: Sequence[str],
                 reference_prior: Optional[Sequence[float]]) -> float:
    """Smallest ratio, over terms, of a term's mean logged weight to its
    reference lambda, after scaling both to the same total (nan when no
    weights were logged). Terms are matched by name, so a strategy may
    list them in another order than the reference."""
    weights = result.get('mean_weights') or {}
    if not weights or not reference_prior:
        return math.nan
    return min(weight_shares(weights, reference_terms,
                             reference_prior).values())


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(
        value, bool) and math.isfinite(value)


def check_runs(results: Dict[str, Dict[int, dict]], reference: str) -> None:
    """Refuse runs that a page cannot compare, naming them: a strategy whose
    seeds disagree on its name, terms, lambdas or budget; strategies of
    different budgets; terms other than the reference's; lambdas that do
    not match the terms in number; an mAP that is not a finite number."""
    budgets = {}
    for key, runs in sorted(results.items()):
        seeds = sorted(runs)
        bad = [s for s in seeds if not _is_finite_number(runs[s].get('mAP'))]
        if bad:
            raise ValueError(
                f'{key} has no finite mAP for seeds {bad} (a run that logged '
                'no validation): train them again, or leave them out with '
                '--seeds')
        for field in ('name', 'terms', 'prior', 'max_iters'):
            values = {s: runs[s].get(field) for s in seeds}
            if any(value != values[seeds[0]] for value in values.values()):
                raise ValueError(
                    f'the seeds of {key} disagree on {field}: {values}; '
                    'runs of another config are not one strategy')
        first = runs[seeds[0]]
        prior = first.get('prior')
        if prior is not None and len(prior) != len(first['terms']):
            raise ValueError(
                f'{key} has {len(prior)} lambdas {prior} for its '
                f'{len(first["terms"])} terms {first["terms"]}')
        budgets[key] = first['max_iters']
    if len(set(budgets.values())) > 1:
        raise ValueError(
            f'the runs have different budgets {budgets} (max_iters); a page '
            'compares one budget: limit it with --strategies or --seeds, or '
            'keep each budget in its own work dir')
    if reference in results:
        terms = next(iter(results[reference].values()))['terms']
        for key, runs in results.items():
            other = next(iter(runs.values()))['terms']
            if sorted(other) != sorted(terms):
                raise ValueError(
                    f'{key} has the terms {other}, the reference {reference} '
                    f'{terms}: their weights cannot be compared')


def strategy_rows(results: Dict[str, Dict[int, dict]],
                  reference: str) -> List[dict]:
    """One row of statistics per strategy (the reference first), after
    :func:`check_runs`. ``min_share`` is the smallest weight share over
    the terms and the seeds; nan unless every seed logged its weights."""
    check_runs(results, reference)
    ref_terms, ref_prior = None, None
    if reference in results:
        first = next(iter(results[reference].values()))
        ref_terms, ref_prior = first['terms'], first.get('prior')
    keys = sorted(results, key=lambda k: (k != reference, k))
    rows = []
    for key in keys:
        runs = results[key]
        seeds = sorted(runs)
        maps = [runs[s]['mAP'] for s in seeds]
        minutes = [runs[s]['train_minutes'] for s in seeds
                   if runs[s].get('train_minutes') is not None]
        row = dict(key=key, name=next(iter(runs.values()))['name'],
                   reference=key == reference,
                   seeds=seeds, maps=maps, **summarize(maps),
                   minutes=float(np.median(minutes)) if minutes else math.nan)
        common = paired_seeds(results, key, reference)
        if key != reference and len(common) >= 2:
            row['paired'] = paired_comparison(
                [runs[s]['mAP'] for s in common],
                [results[reference][s]['mAP'] for s in common])
        shares = [weight_share(runs[s], ref_terms, ref_prior) for s in seeds]
        # a seed without weights leaves the minimum unknown
        row['min_share'] = min(shares) if all(
            math.isfinite(share) for share in shares) else math.nan
        rows.append(row)
    return rows


def reference_label(results: Dict[str, Dict[int, dict]],
                    reference: str) -> str:
    """How a page names its reference: 'Fixed' for the benchmark's own,
    the strategy's name for another (e.g. a learning-rate control)."""
    if reference == 'fixed' or reference not in results:
        return 'Fixed'
    return next(iter(results[reference].values()))['name']


def choose_slf_default(rows: List[dict],
                       prefix: str = 'slf') -> Optional[dict]:
    """The SLF variant with the best mean mAP among those that
    :func:`why_not_default` finds nothing against (None when there is
    none)."""
    candidates = [row for row in rows if row['key'].startswith(prefix)
                  and why_not_default(row) is None]
    return max(candidates, key=lambda row: row['mean']) if candidates \
        else None


def why_not_default(row: dict) -> Optional[str]:
    """Why a row cannot be the default (None when it can): fewer than
    ``MIN_SEEDS`` seeds, weights not logged on every seed, or a term whose
    weight share, averaged over the logged iterations, fell below
    ``MIN_PRIOR_SHARE`` of its share under the reference lambdas on some
    seed."""
    if row['n'] < MIN_SEEDS:
        return f'{row["n"]} seeds'
    if not math.isfinite(row['min_share']):
        return 'no weights logged on every seed'
    if row['min_share'] < MIN_PRIOR_SHARE:
        return f'min weight / prior {row["min_share"]:.3f}'
    return None


def verdict(results: Dict[str, Dict[int, dict]],
            rows: List[dict],
            reference: str,
            tuned: str = 'fixed-tuned',
            search_runs: Optional[int] = None,
            search_iters: Optional[int] = None) -> List[str]:
    """Lines stating the chosen SLF variant against Fixed (and the tuned
    lambdas when they were run), with intervals and p-values, and whether
    it meets the target: Fixed + ``TARGET_GAIN`` with p < ``TARGET_P``, and
    within the noise of (or above) the tuned lambdas, whose search cost
    ``search_runs`` training runs of ``search_iters`` iterations each
    besides their own (see :func:`search_cost`)."""
    chosen = choose_slf_default(rows)
    if not any(row['key'].startswith('slf') for row in rows):
        return ['No SLF variant has finished runs yet.']
    if chosen is None:
        reasons = '; '.join(f'{row["key"]}: {why_not_default(row)}'
                            for row in rows if row['key'].startswith('slf'))
        return [f'No SLF variant with {MIN_SEEDS} seeds kept every term at '
                f'>= {MIN_PRIOR_SHARE:.0%} of its prior weight, so none '
                f'qualifies as the default ({reasons}).']
    lines = [f'Chosen SLF variant (best mean mAP among those with >= '
             f'{MIN_SEEDS} seeds keeping every term at >= '
             f'{MIN_PRIOR_SHARE:.0%} of its prior weight): '
             f'**{chosen["name"]}** (`{chosen["key"]}`), mAP '
             f'{chosen["mean"]:.3f} over {chosen["n"]} seeds.']
    comparisons = {}
    reference_name = reference_label(results, reference)
    for other in (reference, tuned):
        seeds = paired_seeds(results, chosen['key'], other)
        if len(seeds) < 2:
            if other == tuned and tuned not in results:
                lines.append('Fixed with tuned lambdas has not been run, so '
                             'the comparison with it is missing.')
            elif other == tuned:
                lines.append(
                    f'Target 2: n/a ({len(seeds)} seeds of {chosen["name"]} '
                    f'paired with the tuned lambdas, which ran seeds '
                    f'{sorted(results[tuned])}; a paired test needs 2).')
            else:
                lines.append(
                    f'Target 1: n/a ({len(seeds)} seeds of '
                    f'{chosen["name"]} paired with {reference_name}; a '
                    'paired test needs 2).')
            continue
        cmp = paired_comparison(
            [results[chosen['key']][s]['mAP'] for s in seeds],
            [results[other][s]['mAP'] for s in seeds])
        comparisons[other] = cmp
        name = next(iter(results[other].values()))['name']
        lines.append(
            f'{chosen["name"]} minus {name}: {cmp["mean_diff"]:+.4f} mAP '
            f'(95% CI [{cmp["ci_low"]:+.4f}, {cmp["ci_high"]:+.4f}], '
            f'paired t-test p = {fmt_p(cmp["p"])}, {cmp["n"]} seeds).')
    if reference in comparisons:
        cmp = comparisons[reference]
        met = cmp['mean_diff'] >= TARGET_GAIN and cmp['p'] < TARGET_P
        lines.append(
            f'Target 1, SLF >= {reference_name} + {TARGET_GAIN:.3f} mAP with '
            f'p < {TARGET_P:g}: **{"met" if met else "missed"}** '
            f'({cmp["mean_diff"]:+.4f}, p = {fmt_p(cmp["p"])}). The rule '
            'reads the mean gain and the test against 0; the test of the '
            f'gain itself, H0: gain <= {TARGET_GAIN:.3f}, gives one-sided '
            f'p = {fmt_p(p_gain_below(cmp, TARGET_GAIN))}.')
    if tuned in comparisons:
        cmp = comparisons[tuned]
        # Within the noise: the interval of the difference reaches 0 or
        # lies above it.
        met = cmp['ci_high'] >= 0
        seed = paired_seeds(results, chosen['key'], tuned)[0]
        cost = search_cost(search_runs, search_iters,
                           results[tuned][seed]['max_iters'],
                           results[chosen['key']][seed]['max_iters'])
        lines.append(
            f'Target 2, SLF within the noise of the tuned lambdas: '
            f'**{"met" if met else "missed"}** (95% CI of the difference '
            f'[{cmp["ci_low"]:+.4f}, {cmp["ci_high"]:+.4f}]{cost}).')
    return lines


def search_cost(search_runs: Optional[int], search_iters: Optional[int],
                tuned_iters: int, slf_iters: int) -> str:
    """The clause that sets one SLF run against the cost of the tuned
    lambdas: ``search_runs`` runs of ``search_iters`` iterations, then
    their own run of ``tuned_iters``. Searched at 600 iterations and run
    at 600 that is 1/9; run at 1,200 it is 1,200 of 6,000, 1/5. Without
    the search's length only the runs are counted."""
    if search_runs is None:
        return ''
    if search_iters is None:
        return (f'; the tuned lambdas cost {search_runs} search runs '
                'besides their own, of a length their config does not '
                'record')
    total = search_runs * search_iters + tuned_iters
    return (f'; the tuned lambdas cost {search_runs} search runs of '
            f'{search_iters} iterations besides their own {tuned_iters}, so '
            f'one SLF run of {slf_iters} is 1/{total / slf_iters:.3g} of '
            'their training')


TEST_IMAGES = 'the 300 demo test images'


def evaluated_on(num_val: Optional[int] = None, split_seed: int = 0) -> str:
    """The images a page's mAP is measured on: the demo test images, or
    ``num_val`` validation images held out of trainval."""
    if num_val is None:
        return TEST_IMAGES
    return (f'the {num_val} validation images held out of the demo '
            f'trainval set (split seed {split_seed}; the runs trained on '
            'the rest, and the test images were not used)')


def write_report(work_dir: str,
                 out: str,
                 reference: str,
                 strategies: Dict[str, str],
                 tuned: str = 'fixed-tuned',
                 options: str = '',
                 seeds: Optional[Sequence[int]] = None,
                 keys: Optional[Sequence[str]] = None,
                 evaluated_on: str = TEST_IMAGES,
                 archive: Optional[str] = None) -> str:
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
    work dir the page names come from that file instead of ``work_dir``.
    """
    if archive is not None:
        results, work_dir, timing = read_archive(archive)
        source = archive
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
    # docs/results.md keeps its figures in docs/results/
    files = plots(results, rows, reference, osp.splitext(out)[0], configs)
    # The runs go beside the figures; an archive the page is written from
    # stays as it is (it may hold more runs than the page shows).
    kept = osp.join(osp.splitext(out)[0], 'runs.json')
    if archive is None or osp.abspath(archive) != osp.abspath(kept):
        write_archive(kept, results, work_dir, timing)
    kept = osp.relpath(kept, osp.dirname(out))
    budget = sorted({run['max_iters'] for runs in results.values()
                     for run in runs.values()})
    lines = [
        '# Benchmark: loss-weighting strategies on the digits demo', '',
        'Generated by `tools/benchmark.py` from the runs saved under '
        f'`{work_dir}`: each strategy trained with `python tools/benchmark.py '
        f'--strategies <key> --seeds {seed_list}{options}`, this page written '
        f'with `python tools/benchmark.py --report-only{limit} --seeds '
        f'{seed_list}'
        f'{options}` (the cost '
        'table with '
        '`--timing`).', '',
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
               if base not in strategies}
    if unknown:
        raise ValueError(f'paired_with names a strategy without a config: '
                         f'{unknown}; the strategies are {sorted(strategies)}')
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
    """The quoted notes under the title of the page ``out`` already has
    (paragraphs starting with ``> Note added``, with their ``>`` lines),
    which a rewrite of the page keeps."""
    if not osp.exists(out):
        return []
    with open(out) as f:
        lines = f.read().split('\n')
    kept, index = [], 1
    while index < len(lines) and (not lines[index]
                                  or lines[index].startswith('>')):
        kept.append(lines[index])
        index += 1
    while kept and not kept[-1]:
        kept.pop()
    while kept and not kept[0]:
        kept.pop(0)
    if kept and not kept[0].startswith(NOTE_PREFIX):
        return []
    return kept
