# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Every config in configs/ builds and trains one step on tiny VOC data."""
import glob
import math
import os.path as osp
import re

import pytest
from conftest import (REPO_ROOT, VOC_CLASSES, make_tiny_voc,
                      patch_cfg_for_tiny_voc)
from mmengine.config import Config
from mmengine.runner import Runner

import mmdet_slf  # noqa: F401
from mmdet_slf.engine.checks import leaf_datasets
from mmdet_slf.slf import SLFWeighting

CONFIG_ROOT = osp.join(REPO_ROOT, 'configs')
ALL_CONFIGS = sorted(
    path for path in glob.glob(
        osp.join(CONFIG_ROOT, '**', '*.py'), recursive=True)
    if '_base_' not in osp.relpath(path, CONFIG_ROOT).split(osp.sep))
# The names the README uses, kept as files whose only content is _base_.
ALIASES = {
    'yolo_voc.py': 'yolov1/yolov1_darknet24_1xb64-135e_voc0712.py',
    'yolo_slf_voc.py': 'yolov1/yolov1-slf_darknet24_1xb64-135e_voc0712.py',
    'fast-yolo_voc.py': 'yolov1/yolov1_darknet9_1xb64-135e_voc0712.py',
    'fast-yolo_slf_voc.py':
    'yolov1/yolov1-slf_darknet9_1xb64-135e_voc0712.py',
    'yolo-vgg16_voc.py': 'yolov1/yolov1_vgg16_1xb64-135e_voc0712.py',
    'yolo-vgg16_slf_voc.py': 'yolov1/yolov1-slf_vgg16_1xb64-135e_voc0712.py',
}
# An alias builds its target's config, which is trained below.
CONFIGS = [
    path for path in ALL_CONFIGS
    if osp.relpath(path, CONFIG_ROOT) not in ALIASES
]
# mmdet's {algorithm}_{backbone}_{schedule}_{dataset}.py (e.g.
# yolov1-slf_darknet24_1xb64-135e_voc0712.py), or shorter where mmdet's own
# parent is (ssd300-slf_voc0712.py); configs/demo/ has its own names.
MMDET_NAME = re.compile(r'^[a-z0-9-]+(_[a-z0-9-]+)*_(voc0712|coco)\.py$')


def test_configs_are_found():
    names = {osp.relpath(path, CONFIG_ROOT) for path in ALL_CONFIGS}
    for name in ('yolo_voc.py', 'yolo_slf_voc.py', 'fast-yolo_voc.py',
                 'fast-yolo_slf_voc.py', 'yolo-vgg16_voc.py',
                 'yolo-vgg16_slf_voc.py',
                 'yolov3/yolov3_d53_8xb8-273e_voc0712.py',
                 'yolov3/yolov3-slf_d53_8xb8-273e_voc0712.py'):
        assert name in names
    conv_head = 'darknet24_conv-head_1xb64-135e_voc0712.py'
    assert f'yolov1/yolov1_{conv_head}' in names
    assert f'yolov1/yolov1-slf_{conv_head}' in names


def test_config_names_follow_mmdet():
    for path in CONFIGS:
        name = osp.relpath(path, CONFIG_ROOT)
        if name.startswith('demo' + osp.sep):
            continue
        assert MMDET_NAME.match(osp.basename(name)), name


@pytest.mark.parametrize('alias', sorted(ALIASES))
def test_readme_names_are_aliases(alias):
    with open(osp.join(CONFIG_ROOT, alias)) as f:
        code = [line for line in f if line.strip()
                and not line.startswith('#')]
    assert code == [f"_base_ = './{ALIASES[alias]}'\n"]
    ours = Config.fromfile(osp.join(CONFIG_ROOT, alias)).to_dict()
    target = Config.fromfile(osp.join(CONFIG_ROOT, ALIASES[alias])).to_dict()
    assert ours == target


def test_both_runtimes_bring_the_same_plugin_entries():
    """_base_/default_runtime.py (YOLOv1 configs) and _base_/plugin_runtime.py
    (configs on an mmdet parent) switch on the same plugin, runner and
    hooks, and every config ends up with them."""
    base = osp.join(CONFIG_ROOT, '_base_')
    ours = Config.fromfile(osp.join(base, 'default_runtime.py'))
    plugin = Config.fromfile(osp.join(base, 'plugin_runtime.py'))
    assert ours.custom_imports == plugin.custom_imports
    assert ours.runner_type == plugin.runner_type == 'CheckedRunner'
    assert ours.custom_hooks == plugin.plugin_hooks
    for path in CONFIGS:
        cfg = Config.fromfile(path)
        assert cfg.custom_imports == plugin.custom_imports, path
        assert cfg.runner_type == 'CheckedRunner', path
        hooks = [hook['type'] for hook in cfg.custom_hooks]
        assert hooks[-len(plugin.plugin_hooks):] == [
            hook['type'] for hook in plugin.plugin_hooks], path
        assert cfg.default_hooks.checkpoint.type == \
            'CrashSafeCheckpointHook', path


def test_slf_configs_differ_from_their_baseline_only_in_weighting():
    """Each SLF head config: the baseline's config, the baseline's lambdas
    as prior, and the shared SLF settings of _base_/slf_weighting.py."""
    shared = Config.fromfile(
        osp.join(CONFIG_ROOT, '_base_', 'slf_weighting.py'))
    pairs = [(path, path.replace('-slf_', '_')) for path in CONFIGS
             if '-slf_' in osp.basename(path) and 'yolov' in
             osp.basename(path)]
    assert len(pairs) == 5, pairs
    for slf_path, fixed_path in pairs:
        slf = Config.fromfile(slf_path).to_dict()
        fixed = Config.fromfile(fixed_path).to_dict()
        weighting = slf['model']['bbox_head'].pop('weighting')
        baseline = fixed['model']['bbox_head'].pop('weighting')
        assert weighting == dict(shared.slf_weighting,
                                 prior=baseline['weights']), slf_path
        # The baseline's own paramwise settings (the YOLOv1 schedule's
        # darknet decay) stay; the decision network's group is added.
        baseline_paramwise = fixed['optim_wrapper'].pop('paramwise_cfg', {})
        assert set(baseline_paramwise).isdisjoint(shared.slf_paramwise_cfg)
        assert slf['optim_wrapper'].pop('paramwise_cfg') == dict(
            baseline_paramwise, **shared.slf_paramwise_cfg), slf_path
        assert slf['optim_wrapper'].pop('constructor') == \
            fixed['optim_wrapper'].pop(
                'constructor', 'MergedGroupsOptimWrapperConstructor') == \
            shared.slf_optim_wrapper['constructor'] == \
            'MergedGroupsOptimWrapperConstructor'
        for key in ('slf_weighting', 'slf_paramwise_cfg',
                    'slf_optim_wrapper'):
            slf.pop(key)
        assert slf == fixed, slf_path


# The paper's lambda_coord, lambda_pred, lambda_obj, lambda_noobj.
PAPER_LAMBDAS = [5.0, 1.0, 1.0, 0.5]


def test_yolov1_baselines_carry_the_papers_lambdas():
    from mmdet_slf.models.dense_heads import YOLOV1Head
    assert YOLOV1Head.TERMS == ('coord', 'pred', 'obj', 'noobj')
    baselines = [path for path in CONFIGS if osp.basename(path).startswith(
        'yolov1_')]
    assert len(baselines) == 4, baselines
    for path in baselines:
        weighting = Config.fromfile(path).model.bbox_head.weighting
        assert weighting == dict(type='FixedWeighting',
                                 weights=PAPER_LAMBDAS), path


def test_yolov3_baseline_is_mmdets_loss(tmp_path):
    """mmdet's YOLOv3 weights xy and wh by 2 in its loss modules and conf
    (here obj + noobj) and cls by 1; the baseline moves those weights into
    its FixedWeighting over coord, pred, obj, noobj."""
    (tmp_path / 'mmdet_yolov3.py').write_text(
        "_base_ = 'mmdet::yolo/yolov3_d53_8xb8-ms-608-273e_coco.py'\n")
    mmdet_head = Config.fromfile(str(tmp_path / 'mmdet_yolov3.py')).model \
        .bbox_head
    head = Config.fromfile(osp.join(
        CONFIG_ROOT, 'yolov3', 'yolov3_d53_8xb8-273e_voc0712.py')).model \
        .bbox_head
    coord = mmdet_head.loss_xy.loss_weight
    assert coord == mmdet_head.loss_wh.loss_weight == 2.0
    assert head.loss_xy.loss_weight == head.loss_wh.loss_weight == 1.0
    conf = mmdet_head.loss_conf.loss_weight
    assert head.weighting.weights == [
        coord, mmdet_head.loss_cls.loss_weight, conf, conf]


@pytest.mark.parametrize(
    'path', [p for p in ALL_CONFIGS if '/demo/' not in p],
    ids=lambda path: osp.relpath(path, CONFIG_ROOT))
def test_voc_configs_train_on_07_plus_12_and_score_voc07_test(path):
    """The paper's protocol: trained on VOC 2007+2012 trainval, scored on
    VOC 2007 test with VOC2007's 11-point mAP."""
    cfg = Config.fromfile(path)
    train = sorted(leaf.ann_file for leaf in leaf_datasets(
        cfg.train_dataloader.dataset))
    assert train == ['VOC2007/ImageSets/Main/trainval.txt',
                     'VOC2012/ImageSets/Main/trainval.txt']
    for split in ('val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.ann_file == \
            'VOC2007/ImageSets/Main/test.txt'
        assert cfg[f'{split}_evaluator'].type == 'VOCMetric'
        assert cfg[f'{split}_evaluator'].eval_mode == '11points'


def test_demo_schedule_is_the_one_docs_describe():
    """The demo's optimiser and schedule, and the row of docs/yolo.md that
    describes them."""
    cfg = Config.fromfile(osp.join(CONFIG_ROOT, 'demo', 'fast-yolo_digits.py'))
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.lr == 6e-3
    assert cfg.train_dataloader.batch_size == 32
    assert cfg.train_cfg.max_iters == 600
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.begin, warmup.end) == ('LinearLR', 0, 50)
    assert (cosine.type, cosine.begin, cosine.end) == \
        ('CosineAnnealingLR', 50, 600)
    with open(osp.join(REPO_ROOT, 'docs', 'yolo.md')) as f:
        row = next(line for line in f
                   if line.startswith('| Optimiser and schedule |'))
    setting = row.split('|')[2]
    found = re.search(
        r'AdamW lr ([0-9.e-]+), (\d+) warm-up iterations, then cosine decay '
        r'to iteration (\d+), batch (\d+)', setting)
    assert found, setting
    assert float(found.group(1)) == cfg.optim_wrapper.optimizer.lr
    assert [int(v) for v in found.group(2, 3, 4)] == [
        warmup.end, cfg.train_cfg.max_iters, cfg.train_dataloader.batch_size
    ]


def test_docs_show_the_whole_faster_rcnn_slf_config(tmp_path):
    """docs/other_detectors.md calls its Faster R-CNN block the whole config:
    written next to a copy of _base_/plugin_runtime.py, it builds the config
    of configs/slf_detectors/, optimizer settings included."""
    with open(osp.join(REPO_ROOT, 'docs', 'other_detectors.md')) as f:
        text = f.read()
    block = text.split('The whole Faster R-CNN config:')[1]
    block = block.split('```python\n')[1].split('```')[0]
    (tmp_path / '_base_').mkdir()
    (tmp_path / 'slf_detectors').mkdir()
    with open(osp.join(CONFIG_ROOT, '_base_', 'plugin_runtime.py')) as f:
        (tmp_path / '_base_' / 'plugin_runtime.py').write_text(f.read())
    (tmp_path / 'slf_detectors' / 'docs.py').write_text(block)
    docs = Config.fromfile(str(tmp_path / 'slf_detectors' / 'docs.py'))
    ours = Config.fromfile(
        osp.join(CONFIG_ROOT, 'slf_detectors',
                 'faster-rcnn-slf_r50_fpn_1x_voc0712.py'))
    assert docs.optim_wrapper.constructor == \
        'MergedGroupsOptimWrapperConstructor'
    assert docs.optim_wrapper.paramwise_cfg.custom_keys.weighting.decay_mult \
        == 0.0
    assert docs.to_dict() == ours.to_dict()


@pytest.mark.parametrize('doc,marker', [
    ('README.md', "_base_ = 'mmdet::pascal_voc/retinanet"),
    (osp.join('docs', 'other_detectors.md'), "_base_ = 'mmdet::fcos/"),
])
def test_short_recipes_import_what_the_runtime_imports(doc, marker,
                                                       tmp_path):
    """A recipe that inherits only an mmdet config must import the safe
    checkpoint loader itself: without it, torch >= 2.6 refuses every
    checkpoint mmengine writes (its HistoryBuffer), so --resume and
    tools/test.py fail on the run's own checkpoints."""
    with open(osp.join(REPO_ROOT, doc)) as f:
        blocks = f.read().split('```python\n')[1:]
    block = next(b.split('```')[0] for b in blocks if marker in b)
    (tmp_path / 'recipe.py').write_text(block)
    recipe = Config.fromfile(str(tmp_path / 'recipe.py'))
    runtime = Config.fromfile(
        osp.join(CONFIG_ROOT, '_base_', 'plugin_runtime.py'))
    assert recipe.custom_imports == runtime.custom_imports
    assert 'mmdet_slf.engine.checkpoint.install_safe_loading' in \
        recipe.custom_imports.imports


def test_readme_recipe_is_the_shipped_retinanet_less_the_runtime(tmp_path):
    """The README's recipe keeps weight decay off the decision network as
    the shipped config does; it differs from that config only in the
    runtime that configs/_base_/plugin_runtime.py adds, as it says."""
    with open(osp.join(REPO_ROOT, 'README.md')) as f:
        blocks = f.read().split('```python\n')[1:]
    block = next(b.split('```')[0] for b in blocks
                 if "_base_ = 'mmdet::pascal_voc/retinanet" in b)
    (tmp_path / 'recipe.py').write_text(block)
    recipe = Config.fromfile(str(tmp_path / 'recipe.py')).to_dict()
    ours = Config.fromfile(osp.join(
        CONFIG_ROOT, 'slf_detectors',
        'retinanet-slf_r50_fpn_1x_voc0712.py')).to_dict()
    assert recipe['optim_wrapper'] == ours['optim_wrapper']
    assert recipe['model'] == ours['model']
    differ = sorted(key for key in set(recipe) | set(ours)
                    if recipe.get(key) != ours.get(key))
    assert differ == ['custom_hooks', 'default_hooks', 'plugin_hooks',
                      'runner_type']


def tiny_data_root(cfg, default_root, tmp_path):
    """The shared tiny VOC2007 + VOC2012 tree, or, for configs that read
    other VOC-format sub-directories or classes (the digits demo), a tiny
    tree with those names."""
    subdirs, classes = set(), None
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for dataset in leaf_datasets(loader['dataset']):
            subdirs.add(dataset['ann_file'].split('/')[0])
            classes = (dataset.get('metainfo') or {}).get('classes', classes)
    if subdirs <= {'VOC2007', 'VOC2012'} and classes is None:
        return default_root
    root = str(tmp_path / 'data')
    make_tiny_voc(
        root, years=sorted(subdirs), classes=(classes or VOC_CLASSES)[:3])
    return root


@pytest.mark.parametrize(
    'config', CONFIGS, ids=[osp.relpath(p, CONFIG_ROOT) for p in CONFIGS])
def test_config_trains_one_step(config, tiny_voc_root, tmp_path):
    cfg = Config.fromfile(config)
    patch_cfg_for_tiny_voc(
        cfg,
        tiny_data_root(cfg, tiny_voc_root, tmp_path),
        str(tmp_path),
        image_size=(128, 128),
        batch_size=2,
        max_iters=1)
    runner = Runner.from_cfg(cfg)
    runner.train()

    hub = runner.message_hub
    loss = hub.get_scalar('train/loss').current()
    assert math.isfinite(loss)
    # The detector's own terms are positive; the total may not be: it also
    # holds the decision objective J of a non-joint SLF, which can be < 0.
    detector = [
        hub.get_scalar(key).current() for key in hub.log_scalars
        if key.startswith('train/loss_') and 'slf' not in key
    ]
    assert detector and sum(detector) > 0, sorted(hub.log_scalars)

    if 'slf' not in osp.basename(config):
        return
    weightings = [
        m for m in runner.model.modules() if isinstance(m, SLFWeighting)
    ]
    assert weightings, f'{config} is an SLF config without SLFWeighting'
    logged = {
        key: hub.get_scalar(key).current()
        for key in hub.log_scalars if 'slf_w_' in key
    }
    # A weighting whose loss was not computed in the step (mmdet skips a
    # box loss when the sampled batch has no positive) logs nothing.
    called = [m for m in weightings if m.diagnostics]
    assert called, 'no SLF weighting ran in the step'
    num_terms = sum(m.num_terms for m in called)
    assert len(logged) >= num_terms, logged
    for module in called:
        for term in module.terms:
            values = [v for k, v in logged.items()
                      if k.endswith(f'slf_w_{term}')]
            assert values, f'slf_w_{term} not logged: {sorted(logged)}'
            assert all(math.isfinite(v) and v >= 0 for v in values)
