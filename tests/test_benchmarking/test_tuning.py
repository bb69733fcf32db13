# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The search for tuned fixed lambdas: the validation split, the log-uniform
draws, the configs of the search and tools/tune_fixed_lambdas.py."""
import json
import math
import os
import os.path as osp
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT, refusal
from mmengine.config import Config

import mmdet_slf  # noqa: F401
from mmdet_slf.benchmarking import environment, runs, tuned_config, tuning

sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
import tune_fixed_lambdas  # noqa: E402

CONFIG_DIR = osp.join(REPO_ROOT, 'configs/demo/benchmark')
BASE_CONFIG = osp.join(CONFIG_DIR, '_base_digits-128.py')
YOLO = np.array([5.0, 1.0, 1.0, 0.5])


def write_ids(path, ids):
    with open(path, 'w') as f:
        f.write('\n'.join(ids) + '\n')


def read_ids(path):
    with open(path) as f:
        return f.read().split()


@pytest.fixture
def ann_dir(tmp_path):
    """A VOC ImageSets/Main folder: 40 trainval ids and 10 test ids."""
    write_ids(tmp_path / 'trainval.txt', [f'{i:06d}' for i in range(40)])
    write_ids(tmp_path / 'test.txt', [f'{i:06d}' for i in range(40, 50)])
    return str(tmp_path)


def test_validation_split_partitions_trainval_and_leaves_test(ann_dir):
    trainval = read_ids(osp.join(ann_dir, 'trainval.txt'))
    test = read_ids(osp.join(ann_dir, 'test.txt'))
    test_mtime = os.stat(osp.join(ann_dir, 'test.txt')).st_mtime_ns
    train_path, val_path = tuning.write_validation_split(ann_dir, 10, seed=0)
    assert (train_path, val_path) == (osp.join(ann_dir, 'train.txt'),
                                      osp.join(ann_dir, 'val.txt'))
    train, val = read_ids(train_path), read_ids(val_path)
    assert len(val) == 10 and len(train) == 30
    assert not set(train) & set(val)
    assert sorted(train + val) == trainval
    assert not (set(train) | set(val)) & set(test)
    # both lists keep trainval's order
    assert train == sorted(train) and val == sorted(val)
    assert read_ids(osp.join(ann_dir, 'test.txt')) == test
    assert os.stat(osp.join(ann_dir, 'test.txt')).st_mtime_ns == test_mtime


def test_validation_split_is_deterministic_and_idempotent(ann_dir):
    paths = tuning.write_validation_split(ann_dir, 10, seed=0)
    first = [read_ids(path) for path in paths]
    mtimes = [os.stat(path).st_mtime_ns for path in paths]
    assert tuning.write_validation_split(ann_dir, 10, seed=0) == paths
    assert [read_ids(path) for path in paths] == first
    # the files already held the split: not rewritten
    assert [os.stat(path).st_mtime_ns for path in paths] == mtimes
    tuning.write_validation_split(ann_dir, 10, seed=1)
    assert read_ids(paths[1]) != first[1]
    tuning.write_validation_split(ann_dir, 10, seed=0)
    assert [read_ids(path) for path in paths] == first


def test_validation_split_refuses_bad_sizes_and_a_leaking_test_list(
        ann_dir):
    for num_val in (0, 40):
        with pytest.raises(ValueError, match=r'num_val must be in \[1, 39\]'):
            tuning.write_validation_split(ann_dir, num_val, seed=0)
    write_ids(osp.join(ann_dir, 'test.txt'), ['000003', '000045'])
    with pytest.raises(ValueError, match='share 1 ids'):
        tuning.write_validation_split(ann_dir, 10, seed=0)


def test_sampled_lambdas_lie_in_the_bounds_and_are_seeded():
    settings = np.array(tuning.sample_lambdas(num_settings=500, seed=0))
    assert settings.shape == (500, 4)
    assert (settings >= YOLO / 4 - 1e-12).all()
    assert (settings <= YOLO * 4 + 1e-12).all()
    # both ends of every term's interval are reached, up to 2% in the log
    for term in range(4):
        span = np.log(settings[:, term] / YOLO[term]) / math.log(4.0)
        assert span.min() < -0.98 and span.max() > 0.98
    assert tuning.sample_lambdas(seed=0) == tuning.sample_lambdas(seed=0)
    assert tuning.sample_lambdas(seed=0) != tuning.sample_lambdas(seed=1)
    # a larger search under the same seed extends a smaller one
    assert tuning.sample_lambdas(num_settings=12, seed=0)[:8] == \
        tuning.sample_lambdas(num_settings=8, seed=0)
    # 3 significant digits, so a written config shows them exactly
    for value in settings.ravel():
        assert value == float(f'{value:.3g}')
    spread = np.array(tuning.sample_lambdas([2.0, 3.0], 100, 1.5, seed=3))
    assert (spread >= np.array([2.0, 3.0]) / 1.5).all()
    assert (spread <= np.array([2.0, 3.0]) * 1.5).all()


def test_sampled_log_lambdas_are_uniform_and_independent():
    """2000 settings: per term, log(lambda / base) / ln(spread) against
    U(-1, 1) by a KS test at alpha = 0.01, its mean and variance against
    0 and 1/3 within 4 standard errors, and no correlation across terms."""
    from scipy.stats import kstest
    num, spread = 2000, 4.0
    settings = np.array(
        tuning.sample_lambdas(num_settings=num, spread=spread, seed=0))
    unit = np.log(settings / YOLO) / math.log(spread)  # [2000, 4]
    for term in range(4):
        assert kstest(unit[:, term], 'uniform', args=(-1, 2)).pvalue > 0.01
        # U(-1, 1): mean 0, variance 1/3; var of s^2 is (1/5 - 1/9) / n
        assert abs(unit[:, term].mean()) < 4 * math.sqrt(1 / 3 / num)
        assert abs(unit[:, term].var() - 1 / 3) < \
            4 * math.sqrt((1 / 5 - 1 / 9) / num)
    # in the units: log(lambda / base) has variance ln(spread)^2 / 3
    logs = np.log(settings / YOLO)
    assert logs.var(axis=0) == pytest.approx(
        [math.log(spread)**2 / 3] * 4, rel=0.06)
    corr = np.corrcoef(unit.T)[np.triu_indices(4, 1)]
    assert np.abs(corr).max() < 4 / math.sqrt(num)


def test_sample_lambdas_refuses_bad_arguments():
    with pytest.raises(ValueError, match='spread must be > 1, got 1.0'):
        tuning.sample_lambdas(spread=1.0)
    with pytest.raises(ValueError, match='num_settings must be >= 1'):
        tuning.sample_lambdas(num_settings=0)
    with pytest.raises(ValueError, match='positive'):
        tuning.sample_lambdas(base=[5.0, 0.0])


def test_tuning_config_trains_on_train_and_validates_on_val(ann_dir):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'fixed.py'))
    split = tuning.write_validation_split(ann_dir, 10, seed=0)
    tuned = tuning.tuning_config(cfg, [2.5, 1.7, 0.4, 1.0], split)
    assert tuned.train_dataloader.dataset.ann_file == osp.join(
        ann_dir, 'train.txt')
    assert tuned.val_dataloader.dataset.ann_file == osp.join(
        ann_dir, 'val.txt')
    assert tuned.test_dataloader.dataset.ann_file == osp.join(
        ann_dir, 'val.txt')
    assert tuned.model.bbox_head.weighting == dict(
        type='FixedWeighting', weights=[2.5, 1.7, 0.4, 1.0])
    assert tuned.strategy_name == 'Fixed (2.5, 1.7, 0.4, 1)'
    # everything else is the strategy's; the strategy itself is unchanged
    assert tuned.train_cfg == cfg.train_cfg
    assert tuned.val_evaluator == cfg.val_evaluator
    assert cfg.model.bbox_head.weighting.weights == [5.0, 1.0, 1.0, 0.5]
    assert cfg.train_dataloader.dataset.ann_file.endswith('trainval.txt')
    assert cfg.test_dataloader.dataset.ann_file.endswith('test.txt')
    with pytest.raises(ValueError, match=r'one weight per term \(4\)'):
        tuning.tuning_config(cfg, [1.0, 2.0], split)


def fake_search(settings, maps):
    results = [dict(mAP=m, train_minutes=3.0) for m in maps]
    return tuning.summarize_search(
        settings, results, ['coord', 'pred', 'obj', 'noobj'],
        base=[5.0, 1.0, 1.0, 0.5], spread=4.0, seed=0, max_iters=600,
        num_train=1700, num_val=300)


def test_selection_takes_the_highest_validation_map():
    assert tuning.select_best([dict(mAP=0.5), dict(mAP=0.7),
                               dict(mAP=0.6)]) == 1
    assert tuning.select_best([dict(mAP=0.7), dict(mAP=0.7)]) == 0
    assert tuning.select_best([dict(mAP=math.nan), dict(mAP=0.1)]) == 1
    with pytest.raises(ValueError, match='no setting'):
        tuning.select_best([dict(mAP=math.nan)])
    search = fake_search([[1, 1, 1, 1], [6.1, 0.5, 2, 0.3], [2, 2, 2, 2]],
                         [0.81, 0.86, 0.84])
    assert search['best'] == 1 and search['lambdas'] == [6.1, 0.5, 2, 0.3]
    assert search['num_runs'] == 3 and search['train_minutes'] == 9.0


def test_written_config_builds_and_carries_the_chosen_weights(tmp_path):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    search = fake_search([[1, 1, 1, 1], [6.1, 0.52, 2.3, 0.31]],
                         [0.81, 0.86])
    path = str(tmp_path / 'fixed-tuned.py')
    text = tuned_config.write_tuned_config(
        path, search, BASE_CONFIG,
        'python tools/tune_fixed_lambdas.py --num-settings 2 --seed 0 '
        '--num-val 300 --work-dir work_dirs/tune_fixed --write-config')
    # Every line but `_base_` (a path, which cannot wrap, and which is long
    # here because tmp_path is far from the configs) keeps to 79 columns.
    assert all(len(line) <= 79 for line in text.splitlines()
               if not line.startswith('_base_ = '))
    assert 'the best of 2 settings' in text
    assert 'Cost: 2 training runs, 6.0 minutes of training.' in text
    assert '# | 1 (best) | 6.1 | 0.52 | 2.3 | 0.31 | 0.8600 | 3.0 |' in text
    assert '--work-dir work_dirs/tune_fixed' in text
    assert 'search_runs = 2  # the cost of choosing them' in text
    cfg = Config.fromfile(path)
    assert cfg.strategy_name == 'Fixed, tuned lambdas (6.1, 0.52, 2.3, 0.31)'
    assert cfg.train_cfg.max_iters == Config.fromfile(
        BASE_CONFIG).train_cfg.max_iters
    assert cfg.train_dataloader.dataset.ann_file.endswith('trainval.txt')
    model = MODELS.build(cfg.model)
    weighting = model.bbox_head.weighting
    assert type(weighting).__name__ == 'FixedWeighting'
    assert weighting.weights.tolist() == pytest.approx([6.1, 0.52, 2.3, 0.31])


@pytest.fixture(scope='module')
def tiny_options(tmp_path_factory):
    """--cfg-options for a digits set of 24 trainval and 4 test images,
    made by the tool itself, read without worker processes."""
    root = str(tmp_path_factory.mktemp('digits') / 'VOCdevkit') + '/'
    options = ['demo_data.num_trainval=24', 'demo_data.num_test=4']
    for split in ('train', 'val'):
        options += [
            f'{split}_dataloader.dataset.data_root={root}',
            f'{split}_dataloader.num_workers=0',
            f'{split}_dataloader.persistent_workers=False'
        ]
    return options


def tool_args(work_dir, num_settings, *extra):
    return ['--num-settings', str(num_settings), '--seed', '0', '--num-val',
            '8', '--work-dir', str(work_dir), *extra]


def test_written_config_trains_what_the_search_trained(tmp_path):
    """Inherits the searched strategy (here at lr x4), applies the search's
    --cfg-options (merged key by key, as merge_from_dict merges them), and
    its lambdas replace the strategy's weighting."""
    search = fake_search([[6.1, 0.52, 2.3, 0.31]], [0.86])
    reference = osp.join(CONFIG_DIR, 'fixed-lr4x.py')
    options = {'train_dataloader.num_workers': 0,
               'train_dataloader.dataset.data_root': '/data/digits/',
               'optim_wrapper.optimizer.weight_decay': 0.01,
               'model.bbox_head.lambda_noobj': 0.25}
    path = str(tmp_path / 'fixed-tuned.py')
    tuned_config.write_tuned_config(path, search, reference, options=options)
    written = Config.fromfile(path)
    searched = Config.fromfile(reference)
    searched.merge_from_dict(options)
    assert written.optim_wrapper.optimizer.lr == 1.6e-2
    for key in ('train_dataloader', 'optim_wrapper', 'param_scheduler',
                'train_cfg'):
        assert written[key] == searched[key], key
    head = written.model.bbox_head
    assert head.weighting == dict(type='FixedWeighting',
                                  weights=[6.1, 0.52, 2.3, 0.31])
    assert dict(head, weighting=None) == dict(searched.model.bbox_head,
                                              weighting=None)


@pytest.mark.parametrize('options,message', [
    ({'param_scheduler.0.end': 10}, 'no list indices'),
    ({'train_cfg': 3, 'train_cfg.max_iters': 10}, 'and a key below it'),
])
def test_options_a_config_cannot_carry_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        tuned_config.nest_options(options)


@pytest.mark.parametrize('extra,message', [
    (['--max-iters', '0'], '--max-iters must be >= 1, got 0'),
    (['--num-settings', '0'], '--num-settings and --num-val must be >= 1'),
    (['--num-val', '0'], '--num-settings and --num-val must be >= 1'),
    (['--spread', '1'], '--spread must be > 1, got 1.0'),
])
def test_tool_refuses_bad_arguments(extra, message, capsys):
    assert message in refusal(tune_fixed_lambdas.parse_args, extra, capsys)


def test_tool_refuses_options_it_cannot_write_before_training(
        tmp_path, monkeypatch):
    monkeypatch.setattr(tune_fixed_lambdas, 'train_one', None)  # not called
    with pytest.raises(SystemExit, match='no list indices'):
        tune_fixed_lambdas.main(tool_args(
            tmp_path / 'work', 2, '--write-config', '--cfg-options',
            'param_scheduler.0.end=10'))
    assert not osp.exists(tmp_path / 'work')


def test_tool_selects_the_best_validation_map_and_resumes(
        tiny_options, tmp_path, monkeypatch):
    """Training replaced by a score per setting: the tool picks the
    highest, writes it, and a second call trains nothing."""
    scores = [0.62, 0.55, 0.71, 0.60]
    settings = tuning.sample_lambdas(num_settings=4, seed=0)
    trained = []

    def fake_train(cfg, key, seed, args):
        index = int(key[len('setting'):])
        assert cfg.model.bbox_head.weighting.weights == settings[index]
        assert cfg.val_dataloader.dataset.ann_file.endswith('val.txt')
        trained.append(key)
        result = dict(seed=seed, strategy=key, terms=['coord', 'pred', 'obj',
                                                      'noobj'],
                      prior=settings[index], max_iters=600,
                      train_minutes=3.0, mAP=scores[index])
        runs.save_result(
            osp.join(runs.run_dir(args.work_dir, key, seed),
                     runs.RESULT_FILE), result)
        return result

    monkeypatch.setattr(tune_fixed_lambdas, 'train_one', fake_train)
    out = str(tmp_path / 'fixed-tuned.py')
    args = tool_args(tmp_path / 'work', 4, '--write-config', '--config-out',
                     out, '--cfg-options', *tiny_options)
    search = tune_fixed_lambdas.main(args)
    assert trained == ['setting0', 'setting1', 'setting2', 'setting3']
    assert search['best'] == 2 and search['lambdas'] == settings[2]
    assert [row['mAP'] for row in search['settings']] == scores
    assert search['num_runs'] == 4 and search['train_minutes'] == 12.0
    assert (search['num_train'], search['num_val']) == (16, 8)
    written = Config.fromfile(out)
    assert written.model.bbox_head.weighting.weights == settings[2]
    # the search's data options are the written config's
    assert written.train_dataloader.num_workers == 0
    assert written.train_dataloader.dataset.data_root == next(
        option.split('=', 1)[1] for option in tiny_options
        if option.startswith('train_dataloader.dataset.data_root='))
    with open(tmp_path / 'work' / 'tuning.json') as f:
        assert json.load(f)['best'] == 2

    trained.clear()
    assert tune_fixed_lambdas.main(args)['best'] == 2
    assert trained == []
    # another spread draws other lambdas: refused in the same work dir
    with pytest.raises(SystemExit, match='another search'):
        tune_fixed_lambdas.main(args + ['--spread', '2'])


def test_tool_refuses_saved_settings_scored_on_another_split(
        tiny_options, tmp_path, monkeypatch):
    """Settings saved by a search with 8 validation images are not reused,
    as if scored on 10, by a search in the same work dir."""
    settings = tuning.sample_lambdas(num_settings=2, seed=0)
    trained = []

    def fake_train(cfg, key, seed, args):
        trained.append((key, args.num_val))
        result = dict(seed=seed, strategy=key,
                      terms=['coord', 'pred', 'obj', 'noobj'],
                      prior=settings[int(key[len('setting'):])],
                      max_iters=600, train_minutes=3.0, mAP=0.5,
                      eval_split=tune_fixed_lambdas.evaluation_split(args))
        runs.save_result(
            osp.join(runs.run_dir(args.work_dir, key, seed),
                     runs.RESULT_FILE), result)
        return result

    monkeypatch.setattr(tune_fixed_lambdas, 'train_one', fake_train)
    work_dir = tmp_path / 'work'
    tune_fixed_lambdas.main(
        tool_args(work_dir, 2, '--cfg-options', *tiny_options))
    assert trained == [('setting0', 8), ('setting1', 8)]
    with pytest.raises(SystemExit, match=r'setting0 scored on val \(8 of '
                       r'trainval, split seed 0\), not on val \(10 of'):
        tune_fixed_lambdas.main(
            tool_args(work_dir, 2, '--num-val', '10', '--cfg-options',
                      *tiny_options))
    assert len(trained) == 2


def test_tool_trains_two_settings_for_two_iterations(tiny_options,
                                                     tmp_path):
    work_dir = tmp_path / 'work'
    search = tune_fixed_lambdas.main(
        tool_args(work_dir, 2, '--max-iters', '2', '--cfg-options',
                  *tiny_options))
    assert search['num_runs'] == 2 and search['max_iters'] == 2
    maps = [row['mAP'] for row in search['settings']]
    assert all(0.0 <= value <= 1.0 for value in maps)
    assert search['best'] == tuning.select_best(search['settings'])
    assert search['train_minutes'] == pytest.approx(
        sum(row['train_minutes'] for row in search['settings']))
    assert search['train_minutes'] > 0
    result = runs.load_results(str(work_dir))['setting1'][0]
    assert result['prior'] == tuning.sample_lambdas(num_settings=2)[1]
    assert result['eval_split'] == 'val (8 of trainval, split seed 0)'
    assert result['environment'] == environment.environment()
    # and the fingerprint of the set it read
    root = next(option.split('=', 1)[1] for option in tiny_options
                if option.startswith('train_dataloader.dataset.data_root='))
    assert result['data'] == environment.data_fingerprint(
        osp.join(root, 'DIGITS'))
    # the run read train.txt and validated on val.txt
    dumped = [
        name for name in os.listdir(result['work_dir'])
        if name.endswith('.py')
    ]
    cfg = Config.fromfile(osp.join(result['work_dir'], dumped[0]))
    assert cfg.train_dataloader.dataset.ann_file.endswith(
        'DIGITS/ImageSets/Main/train.txt')
    assert cfg.val_dataloader.dataset.ann_file.endswith(
        'DIGITS/ImageSets/Main/val.txt')
    assert cfg.test_dataloader.dataset.ann_file.endswith(
        'DIGITS/ImageSets/Main/val.txt')
