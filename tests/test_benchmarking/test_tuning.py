# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The search for tuned fixed lambdas: the validation split, the log-uniform
draws, the configs of the search and tools/tune_fixed_lambdas.py."""
import json
import math
import os
import os.path as osp
import re
import shutil
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT, fill_disk_on_write, refusal, write_voc_xml
from mmengine.config import Config

import mmdet_slf  # noqa: F401
from mmdet_slf.benchmarking import environment, runs, tuned_config, tuning
from mmdet_slf.engine.checkpoint import atomic_io

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
    split_dir = osp.join(ann_dir, 'val10-seed0')
    assert (train_path, val_path) == (osp.join(split_dir, 'train.txt'),
                                      osp.join(split_dir, 'val.txt'))
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
    # other sizes and seeds have lists of their own and leave these alone
    other = tuning.write_validation_split(ann_dir, 10, seed=1)
    bigger = tuning.write_validation_split(ann_dir, 20, seed=0)
    assert len({paths[1], other[1], bigger[1]}) == 3
    assert read_ids(other[1]) != first[1]
    assert len(read_ids(bigger[1])) == 20
    assert [read_ids(path) for path in paths] == first
    assert [os.stat(path).st_mtime_ns for path in paths] == mtimes
    assert not [name for name in os.listdir(osp.dirname(paths[0]))
                if atomic_io.TEMP_INFIX in name]


def test_two_processes_writing_one_split_do_not_share_a_temporary_file(
        tmp_path, monkeypatch):
    """Two writers of the same list, the second one between the first's
    write and its rename: with one temporary name for both, the second
    moved the file away and the first's rename failed (FileNotFoundError).
    Each process writes its own temporary file."""
    path = str(tmp_path / 'train.txt')
    real_replace = os.replace
    pids = iter([100, 200])
    monkeypatch.setattr(atomic_io.os, 'getpid', lambda: next(pids))
    # both writers run: the second's clean-up must keep the first's file
    monkeypatch.setattr(atomic_io, '_process_alive',
                        lambda pid: pid in (100, 200))
    sources = []

    def replace(src, dst):
        sources.append(src)
        if len(sources) == 1:  # the other process runs now
            tuning._write_if_changed(path, ['000002', '000001'])
        real_replace(src, dst)

    monkeypatch.setattr(atomic_io.os, 'replace', replace)
    tuning._write_if_changed(path, ['000002', '000001'])
    host = atomic_io._host_tag()
    assert [re.sub('[0-9a-f]{8}$', '', osp.basename(src))
            for src in sources] == [
        f'.train.txt.tmp-100-{host}-', f'.train.txt.tmp-200-{host}-']
    assert read_ids(path) == ['000002', '000001']
    assert sorted(os.listdir(tmp_path)) == ['train.txt']


def test_split_lists_are_text_files_of_one_id_a_line(ann_dir, tmp_path):
    """train.txt and val.txt end each id, the last included, with a
    newline, as VOC's lists do; a list already holding that text is left as
    it is (same inode and mtime), so a split is never rewritten."""
    for path in tuning.write_validation_split(ann_dir, 10, seed=0):
        with open(path) as f:
            text = f.read()
        assert text == ''.join(f'{image_id}\n'
                               for image_id in read_ids(path))
        assert len(text) == 7 * len(read_ids(path))  # '000012\n' each
    path = str(tmp_path / 'train.txt')
    with open(path, 'w') as f:
        f.write('000002\n000001\n')
    before = os.stat(path)
    tuning._write_if_changed(path, ['000002', '000001'])
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino,
                                                 before.st_mtime_ns)
    tuning._write_if_changed(path, ['000003'])
    with open(path) as f:
        assert f.read() == '000003\n'


def test_validation_split_refuses_bad_sizes_and_a_leaking_test_list(
        ann_dir):
    for num_val in (0, 40):
        with pytest.raises(ValueError, match=r'num_val must be in \[1, 39\]'):
            tuning.write_validation_split(ann_dir, num_val, seed=0)
    write_ids(osp.join(ann_dir, 'test.txt'), ['000003', '000045'])
    with pytest.raises(ValueError, match='share 1 ids'):
        tuning.write_validation_split(ann_dir, 10, seed=0)
    # an id listed twice could fall on both sides of a split by position
    ids = [f'{i:06d}' for i in range(40)] + ['000003']
    write_ids(osp.join(ann_dir, 'trainval.txt'), ids)
    with pytest.raises(ValueError, match=r"lists \['000003'\] more than "
                       'once'):
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


def test_sampled_lambdas_are_the_values_they_show_within_the_bounds():
    """Bounds of more than 3 significant digits (5/3, 1/3, 1/6) are rounded
    inward: a lambda drawn just above 1/3 and rounded to 0.333 becomes
    0.334, not 0.3333333333333333, which a config would show as 0.333."""
    base = np.array([5.0, 1.0, 1.0, 0.5])
    settings = np.array(tuning.sample_lambdas(base, 2000, 3.0, seed=0))
    for value in settings.ravel():
        assert value == float(f'{value:.3g}'), value
    assert (settings >= base / 3).all() and (settings <= base * 3).all()
    # terms 1 and 2 reach their bound, 1/3 rounded up
    assert settings[:, 1].min() == 0.334 and settings[:, 2].min() == 0.334
    assert settings.max(axis=0).tolist() == [15.0, 3.0, 3.0, 1.5]
    assert tuning._round(0.99996, 'ROUND_FLOOR') == 0.999
    assert tuning._round(1 / 3, 'ROUND_CEILING') == 0.334
    assert tuning._round(1.25, 'ROUND_CEILING') == 1.25
    with pytest.raises(ValueError, match='spread 1.002 leaves no lambda of '
                       r'3 significant digits around \[1.005\]'):
        tuning.sample_lambdas([1.005], 1, 1.002)


@pytest.mark.parametrize('name,iters',
                         [('fixed-tuned', 600), ('fixed-tuned-1200', 1200)])
def test_sampled_lambdas_reproduce_the_committed_search(name, iters):
    """configs/demo/benchmark/fixed-tuned.py and fixed-tuned-1200.py list
    the settings their searches drew (8 within x4 of YOLO's, seed 0, the
    same 8 for both budgets): the sampler still draws them, and each config
    trains the setting of the best validation mAP in its table."""
    path = osp.join(CONFIG_DIR, f'{name}.py')
    with open(path) as f:
        text = f.read()
    header = unwrap_header(text)
    assert 'the best of 8 settings drawn log-uniformly within x4 of ' \
        '(5, 1, 1, 0.5) (coord, pred, obj, noobj; each lambda ' \
        f'independently, seed 0), each trained once ({iters} iterations' \
        in header
    rows = re.findall(
        r'^# \| \d+( \(best\))? \| (.+?) \| (0\.\d{4}) \|', text,
        re.MULTILINE)
    committed = [[float(v) for v in row[1].split(' | ')] for row in rows]
    assert len(committed) == 8
    assert tuning.sample_lambdas(YOLO, 8, 4.0, seed=0) == committed
    scores = [float(row[2]) for row in rows]
    best = scores.index(max(scores))
    assert [index for index, row in enumerate(rows) if row[0]] == [best]
    cfg = Config.fromfile(path)
    assert cfg.model.bbox_head.weighting.weights == committed[best]
    assert (cfg.search_runs, cfg.search_iters) == (8, iters)


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


def test_a_spread_that_leaves_one_lambda_draws_it():
    """Base 1, spread 1.001: the bounds 1/1.001 = 0.999000999 rounded up
    and 1.001 rounded down, at 3 significant digits, are both 1.00. One
    lambda of 3 digits lies within them, so it is drawn, not refused; the
    refusal is for bounds that cross (1.005 at x1.002: 1.01 > 1.00)."""
    assert tuning.sample_lambdas([1.0], num_settings=2, spread=1.001) == [
        [1.0], [1.0]]
    with pytest.raises(ValueError, match='spread 1.002 leaves no lambda'):
        tuning.sample_lambdas([1.005], 1, 1.002)


def test_tuning_config_trains_on_train_and_validates_on_val(ann_dir):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'fixed.py'))
    split = tuning.write_validation_split(ann_dir, 10, seed=0)
    tuned = tuning.tuning_config(cfg, [2.5, 1.7, 0.4, 1.0], split)
    split_dir = osp.join(ann_dir, 'val10-seed0')
    assert tuned.train_dataloader.dataset.ann_file == osp.join(
        split_dir, 'train.txt')
    assert tuned.val_dataloader.dataset.ann_file == osp.join(
        split_dir, 'val.txt')
    assert tuned.test_dataloader.dataset.ann_file == osp.join(
        split_dir, 'val.txt')
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


def test_tuning_config_counts_the_terms_of_an_slf_prior(ann_dir):
    """An SLF reference gives its weights as ``prior`` (4 terms, no
    ``weights``): 3 lambdas are refused with the count of the prior."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'slf-joint.py'))
    assert 'weights' not in cfg.model.bbox_head.weighting
    assert cfg.model.bbox_head.weighting.prior == [5.0, 1.0, 1.0, 0.5]
    split = tuning.write_validation_split(ann_dir, 10, seed=0)
    with pytest.raises(ValueError, match=r'one weight per term \(4\), got '
                       r'\[1.0, 2.0, 3.0\]'):
        tuning.tuning_config(cfg, [1.0, 2.0, 3.0], split)
    tuned = tuning.tuning_config(cfg, [1.0, 2.0, 3.0, 4.0], split)
    assert tuned.model.bbox_head.weighting == dict(
        type='FixedWeighting', weights=[1.0, 2.0, 3.0, 4.0])


def test_validation_drops_a_root_the_training_set_does_not_have():
    """The training dataset gives no data_root or data_prefix: the val
    (and test) dataset, which reads the same ids, loses its own rather
    than reading them below another set's root."""
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(ann_file='trainval.txt')),
        val_dataloader=dict(dataset=dict(
            data_root='/sets/b/', data_prefix=dict(sub_data_root='OTHER/'),
            ann_file='test.txt'))))
    tuned = tuning.validation_config(cfg, ('/s/train.txt', '/s/val.txt'))
    for loader in (tuned.val_dataloader, tuned.test_dataloader):
        assert loader.dataset == dict(ann_file='/s/val.txt')
    assert tuned.train_dataloader.dataset == dict(ann_file='/s/train.txt')
    assert cfg.val_dataloader.dataset.data_root == '/sets/b/'


def test_validation_makes_relative_split_paths_absolute(tmp_path,
                                                        monkeypatch):
    """Lists given relative to the working directory are written as
    absolute paths: mmengine would read a relative ann_file below
    data_root (here /sets/a/split/train.txt)."""
    monkeypatch.chdir(tmp_path)
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(data_root='/sets/a/',
                                           ann_file='trainval.txt')),
        val_dataloader=dict(dataset=dict(ann_file='test.txt'))))
    tuned = tuning.validation_config(cfg, ('split/train.txt',
                                           'split/val.txt'))
    assert tuned.train_dataloader.dataset.ann_file == str(
        tmp_path / 'split' / 'train.txt')
    for loader in (tuned.val_dataloader, tuned.test_dataloader):
        assert loader.dataset.ann_file == str(tmp_path / 'split' / 'val.txt')
        assert loader.dataset.data_root == '/sets/a/'


def write_digits_set(root, trainval, test):
    """A digits VOC set under ``root``: the id lists and one annotation
    per image (the images themselves are not read)."""
    main = osp.join(root, 'DIGITS', 'ImageSets', 'Main')
    os.makedirs(main)
    os.makedirs(osp.join(root, 'DIGITS', 'Annotations'))
    write_ids(osp.join(main, 'trainval.txt'), trainval)
    write_ids(osp.join(main, 'test.txt'), test)
    for image_id in trainval + test:
        write_voc_xml(osp.join(root, 'DIGITS', 'Annotations',
                               f'{image_id}.xml'), f'{image_id}.jpg',
                      (128, 128), [dict(name='3', bbox=(10, 10, 50, 50))])
    return main


def test_validation_reads_the_images_of_the_set_it_split(tmp_path):
    """Only the training dataset points at set A: the val list, drawn from
    A's trainval, is read from A, not from the val dataset's set B, whose
    test images carry the same ids."""
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules()
    ids = [f'{i:06d}' for i in range(20)]
    root_a, root_b = str(tmp_path / 'a') + '/', str(tmp_path / 'b') + '/'
    main_a = write_digits_set(root_a, ids[:12], ids[12:])
    write_digits_set(root_b, ids[12:], ids[:12])
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'fixed.py'))
    cfg.train_dataloader.dataset.data_root = root_a
    cfg.val_dataloader.dataset.data_root = root_b
    cfg.val_dataloader.dataset.data_prefix = dict(sub_data_root='OTHER/')
    split = tuning.write_validation_split(main_a, 4, seed=0)
    val_ids = read_ids(split[1])
    assert len(val_ids) == 4 and set(val_ids) <= set(ids[:12])
    tuned = tuning.validation_config(cfg, split)
    for loader in (tuned.val_dataloader, tuned.test_dataloader):
        assert loader.dataset.data_root == root_a
        assert loader.dataset.data_prefix == dict(sub_data_root='DIGITS/')
        dataset = DATASETS.build(loader.dataset)
        assert [info['img_path'] for info in dataset.load_data_list()] == [
            osp.join(root_a, 'DIGITS', 'JPEGImages', f'{image_id}.jpg')
            for image_id in val_ids
        ]
    # the strategy's own config is unchanged
    assert cfg.val_dataloader.dataset.data_root == root_b


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


def test_selection_passes_over_infinite_maps():
    """An mAP of +inf or -inf (a broken evaluation) is not finite and is
    passed over like nan: 0.5 is the best of (inf, 0.5, -inf)."""
    assert tuning.select_best([dict(mAP=math.inf), dict(mAP=0.5),
                               dict(mAP=-math.inf)]) == 1
    with pytest.raises(ValueError, match='no setting has a finite'):
        tuning.select_best([dict(mAP=math.inf), dict(mAP=-math.inf)])


def test_table_is_markdown_with_one_separator_cell_a_column():
    """4 terms give 7 columns (setting, 4 lambdas, val mAP, minutes): the
    separator row has 7 cells, lambdas shown by :g, mAP at 4 decimals,
    minutes at 1, the best marked."""
    search = fake_search([[5.0, 1 / 3, 1.0, 0.5], [1, 1, 1, 1]],
                         [0.8, 0.75])
    assert tuning.format_table(search) == [
        '| setting | coord | pred | obj | noobj | val mAP | minutes |',
        '|---|---|---|---|---|---|---|',
        '| 0 (best) | 5 | 0.333333 | 1 | 0.5 | 0.8000 | 3.0 |',
        '| 1 | 1 | 1 | 1 | 1 | 0.7500 | 3.0 |',
    ]


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
    assert 'search_iters = 600  # the length of each search run' in text
    header = unwrap_header(text)
    assert 'once (600 iterations, training seed 0) on the 1700 images of ' \
        'train.txt and ranked by the final VOC mAP on the 300 images of ' \
        'val.txt' in header
    cfg = Config.fromfile(path)
    assert cfg.strategy_name == 'Fixed, tuned lambdas (6.1, 0.52, 2.3, 0.31)'
    assert cfg.train_cfg.max_iters == Config.fromfile(
        BASE_CONFIG).train_cfg.max_iters
    assert cfg.train_dataloader.dataset.ann_file.endswith('trainval.txt')
    model = MODELS.build(cfg.model)
    weighting = model.bbox_head.weighting
    assert type(weighting).__name__ == 'FixedWeighting'
    assert weighting.weights.tolist() == pytest.approx([6.1, 0.52, 2.3, 0.31])


def unwrap_header(text):
    """The comment lines of a written config as one line."""
    return ' '.join(line[2:] for line in text.splitlines()
                    if line.startswith('# '))


def test_a_config_cut_off_while_written_leaves_the_old_one(
        tmp_path, monkeypatch):
    """The disk fills halfway through the new text: the old config stays
    whole (a truncated one would be trained as a strategy), and no
    temporary file is left."""
    path = str(tmp_path / 'fixed-tuned.py')
    old = tuned_config.write_tuned_config(
        path, fake_search([[1, 1, 1, 1]], [0.8]), BASE_CONFIG)

    fill_disk_on_write(monkeypatch)
    with pytest.raises(OSError, match='No space left'):
        tuned_config.write_tuned_config(
            path, fake_search([[6.1, 0.52, 2.3, 0.31]], [0.86]),
            BASE_CONFIG)
    with open(path) as f:
        assert f.read() == old
    assert os.listdir(tmp_path) == ['fixed-tuned.py']


def test_written_config_text_for_a_small_search(tmp_path):
    """The exact text of a written config (a file users read and commit,
    as configs/demo/benchmark/fixed-tuned.py): the base beside it as
    './base.py'; the command wrapped at 71 columns, a backslash ending
    every line but the last; options nested as `name = dict(` at the top
    and `name=` 4 spaces further in below; and the lambda 1/3 written as
    the 0.333333 that the table and strategy_name show (:g, 6 digits)."""
    search = fake_search([[5.0, 1 / 3, 1.0, 0.5], [1, 1, 1, 1]],
                         [0.8, 0.7])
    path = str(tmp_path / 'tuned.py')
    text = tuned_config.write_tuned_config(
        path, search, str(tmp_path / 'base.py'),
        'python tools/tune_fixed_lambdas.py --num-settings 2 --seed 0 '
        '--num-val 300 --work-dir work_dirs/tune_fixed --write-config '
        '--config-out configs/demo/benchmark/fixed-tuned.py',
        {'train_dataloader.num_workers': 0,
         'optim_wrapper.optimizer.lr': 0.01})
    assert text == """\
# Fixed lambdas tuned on a validation split: the best of 2 settings drawn
# log-uniformly within x4 of (5, 1, 1, 0.5) (coord, pred, obj, noobj; each
# lambda independently, seed 0), each trained once (600 iterations, training
# seed 0) on the 1700 images of train.txt and ranked by the final VOC mAP on
# the 300 images of val.txt, both held out of trainval.txt; the test images
# were not used.
# Cost: 2 training runs, 6.0 minutes of training.
# Made by:
#   python tools/tune_fixed_lambdas.py --num-settings 2 --seed 0 \\
#       --num-val 300 --work-dir work_dirs/tune_fixed --write-config \\
#       --config-out configs/demo/benchmark/fixed-tuned.py
#
# | setting | coord | pred | obj | noobj | val mAP | minutes |
# |---|---|---|---|---|---|---|
# | 0 (best) | 5 | 0.333333 | 1 | 0.5 | 0.8000 | 3.0 |
# | 1 | 1 | 1 | 1 | 1 | 0.7000 | 3.0 |
_base_ = './base.py'
strategy_name = 'Fixed, tuned lambdas (5, 0.333333, 1, 0.5)'
search_runs = 2  # the cost of choosing them
search_iters = 600  # the length of each search run
# --cfg-options of the search
train_dataloader = dict(
    num_workers=0)
optim_wrapper = dict(
    optimizer=dict(
        lr=0.01))
model = dict(
    bbox_head=dict(
        weighting=dict(
            _delete_=True,
            type='FixedWeighting',
            weights=[5.0, 0.333333, 1.0, 0.5])))
"""
    with open(path) as f:
        assert f.read() == text
    # a base in the folder above is reached by '../', without './'
    os.makedirs(tmp_path / 'sub')
    text = tuned_config.write_tuned_config(
        str(tmp_path / 'sub' / 'tuned.py'), search,
        str(tmp_path / 'base.py'))
    assert "\n_base_ = '../base.py'\n" in text


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
    # not a Python name: `bbox-head=dict(...)` is not a valid config
    ({'model.bbox-head.x': 1}, 'whose keys are names'),
    ({'model..x': 1}, 'whose keys are names'),
    # the key below first, then the key itself: would replace the dict
    ({'a.b.c': 1, 'a.b': 2}, 'sets a.b and a key below it'),
])
def test_options_a_config_cannot_carry_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        tuned_config.nest_options(options)


@pytest.mark.parametrize('extra,message', [
    (['--max-iters', '0'], '--max-iters must be >= 1, got 0'),
    (['--num-settings', '0'], '--num-settings and --num-val must be >= 1'),
    (['--num-val', '0'], '--num-settings and --num-val must be >= 1'),
    (['--spread', '1'], '--spread must be > 1, got 1.0'),
    (['--seed', '-1'], '--seed must be >= 0 (numpy draws the lambdas and '
     'the split from it), got -1'),
    (['--base-config', BASE_CONFIG], 'it needs --write-config'),
    (['--write-config', '--base-config', 'nope.py'],
     '--base-config nope.py does not exist'),
    # a folder is no config the written one could inherit
    (['--write-config', '--base-config', CONFIG_DIR],
     f'--base-config {CONFIG_DIR} does not exist (a file'),
    (['--write-config', '--config-out', REPO_ROOT],
     f'--config-out {REPO_ROOT} is a folder'),
    # a path through a file: refused before the search, not at its end
    (['--write-config', '--config-out',
      osp.join(REPO_ROOT, 'README.md', 'tuned.py')],
     f"{osp.join(REPO_ROOT, 'README.md')} is a file, not a folder"),
    # a search of hours that would then write nothing
    (['--config-out', 'tuned.py'], '--config-out is the config '
     '--write-config writes: it needs --write-config'),
])
def test_tool_refuses_bad_arguments(extra, message, capsys):
    assert message in refusal(tune_fixed_lambdas.parse_args, extra, capsys)


def test_tool_takes_a_base_config_that_exists():
    args = tune_fixed_lambdas.parse_args(
        ['--write-config', '--base-config', BASE_CONFIG])
    assert args.base_config == BASE_CONFIG and args.write_config


def test_tool_refuses_options_it_cannot_write_before_training(
        tmp_path, monkeypatch):
    monkeypatch.setattr(tune_fixed_lambdas, 'train_one', None)  # not called
    with pytest.raises(SystemExit, match='no list indices'):
        tune_fixed_lambdas.main(tool_args(
            tmp_path / 'work', 2, '--write-config', '--cfg-options',
            'param_scheduler.0.end=10'))
    assert not osp.exists(tmp_path / 'work')


@pytest.mark.parametrize('extra, base', [
    # the tuned lambdas searched again, written over themselves
    (['--reference', 'fixed-tuned'], 'fixed-tuned.py'),
    # fixed-tuned.py inherits _base_digits-128.py
    (['--reference', 'fixed-tuned', '--config-out',
      osp.join(CONFIG_DIR, '_base_digits-128.py')], 'fixed-tuned.py'),
])
def test_tool_refuses_to_write_a_config_over_one_it_inherits(
        tmp_path, monkeypatch, extra, base):
    monkeypatch.setattr(tune_fixed_lambdas, 'train_one', None)  # not called
    with pytest.raises(SystemExit, match=r'--config-out \S+ is \S+'
                       f'{base} or a config it inherits: the written config '
                       'would inherit itself'):
        tune_fixed_lambdas.main(tool_args(tmp_path / 'work', 2,
                                          '--write-config', *extra))
    assert not osp.exists(tmp_path / 'work')


def test_inherited_files_follow_the_chain_of_bases():
    """fixed.py -> _base_digits-128.py -> the demo -> Fast YOLO -> the
    YOLOv1 configs -> their four _base_ files, each once."""
    chain = tuned_config.inherited_files(osp.join(CONFIG_DIR, 'fixed.py'))
    configs = osp.join(REPO_ROOT, 'configs')
    assert chain[0] == osp.join(CONFIG_DIR, 'fixed.py')
    assert len(chain) == len(set(chain))
    assert {osp.relpath(path, configs) for path in chain} == {
        'demo/benchmark/fixed.py', 'demo/benchmark/_base_digits-128.py',
        'demo/fast-yolo_digits.py', 'fast-yolo_voc.py',
        'yolov1/yolov1_darknet9_1xb64-135e_voc0712.py',
        'yolov1/yolov1_darknet24_1xb64-135e_voc0712.py',
        '_base_/default_runtime.py', '_base_/schedules/yolov1_135e.py',
        '_base_/datasets/voc0712_yolov1.py', '_base_/models/yolov1.py'}


def save_setting(args, key, seed, prior, max_iters, digest, mAP=0.5):
    """Save and return the result of a setting as the real ``train_one``
    saves it (with its reference and config digest), without training."""
    result = dict(seed=seed, strategy=key,
                  terms=['coord', 'pred', 'obj', 'noobj'], prior=prior,
                  max_iters=max_iters, train_minutes=3.0, mAP=mAP,
                  eval_split=tune_fixed_lambdas.evaluation_split(args),
                  reference=args.reference, config_digest=digest)
    runs.save_result(
        osp.join(runs.run_dir(args.work_dir, key, seed), runs.RESULT_FILE),
        result)
    return result


def test_tool_selects_the_best_validation_map_and_resumes(
        tiny_options, tmp_path, monkeypatch):
    """Training replaced by a score per setting: the tool picks the
    highest, writes it, and a second call trains nothing."""
    scores = [0.62, 0.55, 0.71, 0.60]
    settings = tuning.sample_lambdas(num_settings=4, seed=0)
    trained = []

    def fake_train(cfg, key, seed, args, digest=None):
        index = int(key[len('setting'):])
        assert cfg.model.bbox_head.weighting.weights == settings[index]
        assert cfg.val_dataloader.dataset.ann_file.endswith('val.txt')
        trained.append(key)
        return save_setting(args, key, seed, settings[index], 600, digest,
                            mAP=scores[index])

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
    with open(out) as f:
        header = unwrap_header(f.read())
    assert 'on the 16 images of train.txt' in header
    assert 'on the 8 images of val.txt' in header
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

    def fake_train(cfg, key, seed, args, digest=None):
        trained.append((key, args.num_val))
        return save_setting(args, key, seed,
                            settings[int(key[len('setting'):])], 600, digest)

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
    """Two real runs, after a training in this process left its visualizer
    behind (mmengine keeps one per name): each run logs to its own work
    dir, not the earlier run's."""
    from mmdet.visualization import DetLocalVisualizer
    DetLocalVisualizer.get_instance(
        'visualizer', vis_backends=[dict(type='LocalVisBackend')],
        save_dir=str(tmp_path / 'earlier'))
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
        'DIGITS/ImageSets/Main/val8-seed0/train.txt')
    assert cfg.val_dataloader.dataset.ann_file.endswith(
        'DIGITS/ImageSets/Main/val8-seed0/val.txt')
    assert cfg.test_dataloader.dataset.ann_file.endswith(
        'DIGITS/ImageSets/Main/val8-seed0/val.txt')


def recording_train(trained):
    """A ``train_one`` that saves, as the real one does, the weights and
    budget it was given, with a score, and records ``(key, lr)``."""

    def fake_train(cfg, key, seed, args, digest=None):
        trained.append((key, cfg.optim_wrapper.optimizer.lr))
        return save_setting(
            args, key, seed, list(cfg.model.bbox_head.weighting.weights),
            args.max_iters or cfg.train_cfg.max_iters, digest)

    return fake_train


def tiny_root(tiny_options):
    return next(option.split('=', 1)[1] for option in tiny_options
                if option.startswith('train_dataloader.dataset.data_root='))


def test_tool_searches_around_the_references_lambdas_on_its_split(
        tiny_options, tmp_path, monkeypatch):
    """A reference with lambdas (2, 3, 0.7, 1.5): the settings are drawn
    around them, and val.txt is the split of seed 0 the results name."""
    trained = []
    monkeypatch.setattr(tune_fixed_lambdas, 'train_one',
                        recording_train(trained))
    search = tune_fixed_lambdas.main(tool_args(
        tmp_path / 'work', 3, '--cfg-options', *tiny_options,
        'model.bbox_head.weighting.weights=[2.0,3.0,0.7,1.5]'))
    expected = tuning.sample_lambdas([2.0, 3.0, 0.7, 1.5], 3, 4.0, seed=0)
    assert expected != tuning.sample_lambdas(num_settings=3, seed=0)
    assert search['base'] == [2.0, 3.0, 0.7, 1.5]
    assert [row['lambdas'] for row in search['settings']] == expected
    for index, lambdas in enumerate(expected):
        saved = runs.load_results(str(tmp_path / 'work'))[
            f'setting{index}'][0]
        assert saved['prior'] == lambdas
        assert saved['eval_split'] == 'val (8 of trainval, split seed 0)'
    # val.txt is what write_validation_split draws with seed 0
    main = osp.join(tiny_root(tiny_options), 'DIGITS', 'ImageSets', 'Main')
    copy = tmp_path / 'copy'
    copy.mkdir()
    for name in ('trainval.txt', 'test.txt'):
        shutil.copy(osp.join(main, name), copy / name)
    _, val_path = tuning.write_validation_split(str(copy), 8, seed=0)
    assert read_ids(osp.join(main, 'val8-seed0', 'val.txt')) == \
        read_ids(val_path)
    assert read_ids(val_path) != read_ids(
        tuning.write_validation_split(str(copy), 8, seed=1)[1])


def test_tool_refuses_saved_settings_of_another_budget(
        tiny_options, tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr(tune_fixed_lambdas, 'train_one',
                        recording_train(trained))
    work_dir = tmp_path / 'work'
    tune_fixed_lambdas.main(tool_args(work_dir, 2, '--max-iters', '5',
                                      '--cfg-options', *tiny_options))
    assert len(trained) == 2
    lambdas = re.escape(str(tuning.sample_lambdas(num_settings=1)[0]))
    with pytest.raises(SystemExit, match=rf'{re.escape(str(work_dir))} holds '
                       rf'setting0 trained with lambdas {lambdas} for 5 '
                       rf'iterations, not {lambdas} for 6: another search; '
                       'use another --work-dir'):
        tune_fixed_lambdas.main(tool_args(work_dir, 2, '--max-iters', '6',
                                          '--cfg-options', *tiny_options))
    assert len(trained) == 2


def test_tool_refuses_settings_trained_under_another_config(
        tiny_options, tmp_path, monkeypatch):
    """Each setting is saved with the reference and the digest of its
    config with the --cfg-options merged, before its lambdas are put in;
    another learning rate, another reference, or a setting saved without
    them is refused, and nothing is trained."""
    trained = []
    monkeypatch.setattr(tune_fixed_lambdas, 'train_one',
                        recording_train(trained))
    work_dir = tmp_path / 'work'
    args = tool_args(work_dir, 2, '--cfg-options', *tiny_options)
    tune_fixed_lambdas.main(args)
    assert trained == [('setting0', 4e-3), ('setting1', 4e-3)]
    cfg = Config.fromfile(osp.join(CONFIG_DIR, 'fixed.py'))
    cfg.log_level = 'WARNING'  # as tools/benchmark.py loads a strategy
    cfg.merge_from_dict(tune_fixed_lambdas.parse_args(args).cfg_options)
    digest = runs.config_digest(cfg)
    saved = runs.load_results(str(work_dir))
    for key in ('setting0', 'setting1'):
        assert saved[key][0]['reference'] == 'fixed'
        assert saved[key][0]['config_digest'] == digest
    trained.clear()

    lr_args = args + ['optim_wrapper.optimizer.lr=0.1']
    cfg.merge_from_dict({'optim_wrapper.optimizer.lr': 0.1})
    with pytest.raises(SystemExit) as refused:
        tune_fixed_lambdas.main(lr_args)
    assert str(refused.value) == (
        f'{work_dir} holds setting0 trained from a config with digest '
        f"{digest}, but 'fixed' with these --cfg-options gives "
        f'{runs.config_digest(cfg)} (other options, or its config '
        'changed): another search; use another --work-dir')
    with pytest.raises(SystemExit, match=r"holds setting0 trained from "
                       r"reference 'fixed', not 'fixed-lr4x': another "
                       'search; use another --work-dir'):
        tune_fixed_lambdas.main(args + ['--reference', 'fixed-lr4x'])

    # setting1 saved before the fields existed; setting0 not yet trained
    path = osp.join(runs.run_dir(str(work_dir), 'setting1', 0),
                    runs.RESULT_FILE)
    with open(path) as f:
        old = json.load(f)
    del old['reference'], old['config_digest']
    runs.save_result(path, old)
    shutil.rmtree(runs.run_dir(str(work_dir), 'setting0', 0))
    with pytest.raises(SystemExit, match=rf'{re.escape(str(work_dir))} holds '
                       'setting1 saved without the reference and config '
                       r'digest .* so it cannot be checked against '
                       '--reference fixed and these --cfg-options: use '
                       'another --work-dir'):
        tune_fixed_lambdas.main(args)
    assert trained == []
    assert not osp.exists(runs.run_dir(str(work_dir), 'setting0', 0))


def test_tool_checks_every_saved_setting_before_training_any(
        tiny_options, tmp_path, monkeypatch):
    """setting0 is missing and setting1 was drawn with another spread:
    refused before setting0 is trained, so the work dir stays one search."""
    trained = []
    monkeypatch.setattr(tune_fixed_lambdas, 'train_one',
                        recording_train(trained))
    work_dir = tmp_path / 'work'
    args = tool_args(work_dir, 2, '--cfg-options', *tiny_options)
    tune_fixed_lambdas.main(args + ['--spread', '2'])
    shutil.rmtree(runs.run_dir(str(work_dir), 'setting0', 0))
    trained.clear()
    with pytest.raises(SystemExit, match='holds setting1 trained with '
                       'lambdas .* another search; use another --work-dir'):
        tune_fixed_lambdas.main(args)
    assert trained == []
    assert not osp.exists(runs.run_dir(str(work_dir), 'setting0', 0))


def test_tool_refuses_settings_trained_on_another_demo_set(
        tiny_options, tmp_path, monkeypatch):
    """Settings whose saved fingerprint is not that of the demo set on disk
    (it was made again since) are another search, not reused."""
    settings = tuning.sample_lambdas(num_settings=2, seed=0)
    trained = []

    def fake_train(cfg, key, seed, args, digest=None):
        trained.append(key)
        result = save_setting(args, key, seed,
                              settings[int(key[len('setting'):])], 600,
                              digest)
        result['data'] = 'fingerprint-of-another-set'
        runs.save_result(osp.join(runs.run_dir(args.work_dir, key, seed),
                                  runs.RESULT_FILE), result)
        return result

    monkeypatch.setattr(tune_fixed_lambdas, 'train_one', fake_train)
    work_dir = tmp_path / 'work'
    tune_fixed_lambdas.main(
        tool_args(work_dir, 2, '--cfg-options', *tiny_options))
    assert trained == ['setting0', 'setting1']
    with pytest.raises(SystemExit, match='setting0 seed 0 trained on the demo '
                       'set'):
        tune_fixed_lambdas.main(
            tool_args(work_dir, 2, '--cfg-options', *tiny_options))
    assert len(trained) == 2


def test_written_config_replaces_a_weighting_of_other_arguments(tmp_path):
    """Over an SLF reference the tuned config's FixedWeighting replaces the
    base's weighting whole: merged, it would keep SLF's arguments
    (decision_objective=...), which FixedWeighting does not take."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    search = fake_search([[1, 1, 1, 1], [6.1, 0.52, 2.3, 0.31]],
                         [0.81, 0.86])
    path = str(tmp_path / 'fixed-tuned.py')
    base = osp.join(osp.dirname(BASE_CONFIG), 'slf-joint.py')
    tuned_config.write_tuned_config(path, search, base, 'python tools/...')
    weighting = MODELS.build(Config.fromfile(path).model).bbox_head.weighting
    assert type(weighting).__name__ == 'FixedWeighting'
    assert weighting.weights.tolist() == pytest.approx([6.1, 0.52, 2.3, 0.31])


def test_tool_draws_its_split_and_lambdas_from_its_seed(
        tiny_options, tmp_path, monkeypatch):
    """--seed 1 draws both the validation split and the lambdas under seed
    1, and the saved settings record that split."""
    calls = []
    real_split = tuning.prepare_validation_split

    def split(cfg, num_val, seed):
        calls.append(seed)
        return real_split(cfg, num_val, seed)

    def fake_train(cfg, key, seed, args, digest=None):
        assert cfg.train_dataloader.dataset.ann_file.endswith(
            'val8-seed1/train.txt')
        return save_setting(args, key, seed, settings[int(key[7:])], 600,
                            digest)

    settings = tuning.sample_lambdas(num_settings=2, seed=1)
    monkeypatch.setattr(tuning, 'prepare_validation_split', split)
    monkeypatch.setattr(tune_fixed_lambdas, 'train_one', fake_train)
    args = tool_args(tmp_path / 'work', 2, '--cfg-options', *tiny_options)
    args[args.index('--seed') + 1] = '1'
    search = tune_fixed_lambdas.main(args)
    assert calls == [1]
    assert [row['lambdas'] for row in search['settings']] == settings


def test_tool_takes_the_least_counts_it_allows():
    """Each count must be >= 1: one setting, one validation image and one
    iteration are taken as given."""
    args = tune_fixed_lambdas.parse_args(
        ['--num-settings', '1', '--num-val', '1', '--max-iters', '1'])
    assert (args.num_settings, args.num_val, args.max_iters) == (1, 1, 1)


def test_written_config_inherits_the_base_config_asked_for(
        tiny_options, tmp_path, monkeypatch):
    """With --base-config the written config inherits that file, by its
    path relative to the written one, and not the reference (fixed.py)
    the search trained."""
    monkeypatch.setattr(tune_fixed_lambdas, 'train_one',
                        recording_train([]))
    out = tmp_path / 'fixed-tuned.py'
    tune_fixed_lambdas.main(tool_args(
        tmp_path / 'work', 1, '--write-config', '--config-out', str(out),
        '--base-config', BASE_CONFIG, '--cfg-options', *tiny_options))
    relative = osp.relpath(BASE_CONFIG, str(tmp_path))
    assert relative.startswith('..')
    assert f"\n_base_ = '{relative}'\n" in out.read_text()


def test_more_validation_images_than_trainval_holds_is_named(
        tiny_options, tmp_path, monkeypatch):
    """--num-val of the whole trainval set (24 images) leaves nothing to
    train on: the tool ends naming the option and the bound, 1 to 23,
    before anything is trained."""
    trained = []
    monkeypatch.setattr(tune_fixed_lambdas, 'train_one',
                        recording_train(trained))
    argv = tool_args(tmp_path / 'work', 1, '--cfg-options', *tiny_options)
    argv[argv.index('--num-val') + 1] = '24'
    with pytest.raises(SystemExit, match=r'--num-val: num_val must be in '
                       r'\[1, 23\]'):
        tune_fixed_lambdas.main(argv)
    assert trained == []
