# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""The configs that inherit mmdet's VOC detectors and add SLF: one training
step against the parent's raw terms, and the parent's predictions."""
import copy
import os.path as osp
import random

import mmdet
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

import mmdet_slf  # noqa: F401
from mmdet_slf.models.detectors import SLFDetector
from conftest import REPO_ROOT, patch_cfg_for_tiny_voc

MMDET_CONFIGS = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
# config -> (parent under mmdet's configs, {term: parent loss keys}); the
# groups are written out here, independently of the configs.
CASES = {
    'faster-rcnn-slf_r50_fpn_1x_voc0712.py':
    ('pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py',
     dict(
         rpn_cls=['loss_rpn_cls'],
         rpn_box=['loss_rpn_bbox'],
         roi_cls=['loss_cls'],
         roi_box=['loss_bbox'])),
    'retinanet-slf_r50_fpn_1x_voc0712.py':
    ('pascal_voc/retinanet_r50_fpn_1x_voc0712.py',
     dict(cls=['loss_cls'], box=['loss_bbox'])),
    'ssd300-slf_voc0712.py': ('pascal_voc/ssd300_voc0712.py',
                              dict(cls=['loss_cls'], box=['loss_bbox'])),
}


def load(path, data_root, work_dir):
    cfg = Config.fromfile(path)
    patch_cfg_for_tiny_voc(cfg, data_root, work_dir, image_size=(64, 64))
    cfg.model.backbone.init_cfg = None  # no pretrained download
    return cfg


@pytest.fixture(scope='module')
def built(tiny_voc_root, tmp_path_factory):
    """Per config: the SLF model, the parent model and a training batch."""
    register_all_modules()
    cache = {}

    def get(name):
        if name not in cache:
            work_dir = str(tmp_path_factory.mktemp('work'))
            cfg = load(
                osp.join(REPO_ROOT, 'configs', 'slf_detectors', name),
                tiny_voc_root, work_dir)
            parent_cfg = load(
                osp.join(MMDET_CONFIGS, CASES[name][0]), tiny_voc_root,
                work_dir)
            if 'bbox_head' in cfg.model:
                # The SLF config's head type (PredictableSSDHead opts in to
                # the fix of mmdet 3.3's SSD prediction); the same layers.
                parent_cfg.model.bbox_head.type = cfg.model.bbox_head.type
            torch.manual_seed(0)
            model = MODELS.build(cfg.model)
            # Built modules may hold uninitialised memory until their
            # init_weights runs (SSD's L2Norm weight is torch.Tensor(n)),
            # which can be NaN; the parent gets these weights.
            model.init_weights()
            parent = MODELS.build(parent_cfg.model)
            # The augmentations (SSD's crop and expand) draw from the global
            # generators: seed them, so the batch does not depend on which
            # tests ran before.
            random.seed(0)
            np.random.seed(0)
            loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
            test_loader = Runner.build_dataloader(
                cfg.test_dataloader, seed=0)
            cache[name] = (model, parent, next(iter(loader)),
                           next(iter(test_loader)))
        return cache[name]

    return get


def share_weights(model, parent):
    """Load the SLF model's weights into the parent: same keys, strict."""
    state = {k: v for k, v in model.state_dict().items()
             if not k.startswith('weighting.')}
    parent.load_state_dict(state, strict=True)


@pytest.mark.parametrize('name', sorted(CASES))
def test_train_step_weights_parent_raw_terms(built, name):
    model, parent, batch, _ = built(name)
    model = copy.deepcopy(model)  # the cached one stays untrained
    assert isinstance(model, SLFDetector) and isinstance(model, type(parent))
    model.train(), parent.train()
    share_weights(model, parent)
    groups = CASES[name][1]
    weighting = model.weighting
    assert weighting.terms == list(groups)

    # The parent's raw loss dict for the same batch and random state
    # (samplers draw from torch's RNG), reduced by mmengine itself.
    torch.manual_seed(123)
    with torch.no_grad():
        data = parent.data_preprocessor(copy.deepcopy(batch), True)
        _, parent_vars = parent.parse_losses(
            parent.loss(data['inputs'], data['data_samples']))
    raw = {term: sum(float(parent_vars[key]) for key in keys)
           for term, keys in groups.items()}

    decision = weighting.decision_net
    before = {k: v.clone() for k, v in decision.state_dict().items()}
    # A shared backbone weight: any sampled weights reach it.
    shared = [p for n, p in model.named_parameters()
              if n.startswith('backbone') and p.requires_grad][-1]
    shared_before = shared.detach().clone()
    optim_wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=1e-3, weight_decay=0.0))
    torch.manual_seed(123)
    log_vars = model.train_step(copy.deepcopy(batch), optim_wrapper)

    weights = {term: float(log_vars[f'slf_w_{term}']) for term in groups}
    probs = {term: float(log_vars[f'slf_p_{term}']) for term in groups}
    num_terms = len(groups)
    # SLFWeighting's defaults: the expected weights, scale = n terms, and a
    # decision network that starts at the uniform prior: every weight is 1,
    # the parent's objective.
    for term in groups:
        assert probs[term] == pytest.approx(1 / num_terms, abs=1e-6)
        assert weights[term] == pytest.approx(1.0, abs=1e-5)
    # J of 'scale_free': after its first update each running mean equals its
    # term, so s_i = 1, and KL(p || prior) = 0: J = sum_i p_i = 1.
    assert float(log_vars['loss_slf_decision']) == pytest.approx(
        1.0, abs=1e-5)
    assert float(log_vars['loss']) == pytest.approx(
        sum(raw.values()) + 1.0, rel=1e-5, abs=1e-5)
    for term in groups:
        assert float(log_vars[f'slf_raw_{term}']) == pytest.approx(
            raw[term], rel=1e-5, abs=1e-6)
    if 'acc' in parent_vars:  # non-loss keys pass through
        assert float(log_vars['acc']) == pytest.approx(
            float(parent_vars['acc']))
    # The detector learned; the decision network did not: with equal
    # signals at the prior, J's gradient on the logits,
    # p_j (g_j - sum_i p_i g_i) with g_i = s_i + beta (log(p_i/prior_i) + 1),
    # is zero.
    after = {k: v.clone() for k, v in decision.state_dict().items()}
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, rtol=0, atol=1e-8)
    assert not torch.equal(shared_before, shared.detach())


@pytest.mark.parametrize('name', sorted(CASES))
def test_scale_free_signal_follows_running_means(built, name):
    """Two steps without an update (lr 0): the whole batch, then its first
    image. Each term is divided by its bias-corrected running mean,
    m_i = (momentum r1_i + r2_i) / (1 + momentum) for the raw values r1, r2
    of the two steps, and at the prior J = sum_i prior_i s_i."""
    model, _, batch, _ = built(name)
    model = copy.deepcopy(model)
    model.train()
    groups = CASES[name][1]
    momentum = model.weighting.signal.mean.momentum
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0))
    one_image = {key: value[:1] for key, value in batch.items()}
    torch.manual_seed(123)
    first = model.train_step(copy.deepcopy(batch), optim_wrapper)
    torch.manual_seed(123)
    second = model.train_step(copy.deepcopy(one_image), optim_wrapper)
    r1 = {term: float(first[f'slf_raw_{term}']) for term in groups}
    r2 = {term: float(second[f'slf_raw_{term}']) for term in groups}
    assert any(r1[t] != pytest.approx(r2[t], rel=1e-3) for t in groups)
    signal = {term: r2[term] * (1 + momentum) / (momentum * r1[term] +
                                                 r2[term])
              for term in groups}
    for term in groups:
        assert float(second[f'slf_signal_{term}']) == pytest.approx(
            signal[term], rel=1e-4)
    assert float(second['loss_slf_decision']) == pytest.approx(
        sum(signal.values()) / len(groups), rel=1e-4)


@pytest.mark.parametrize('name', sorted(CASES))
def test_predictions_equal_parent(built, name):
    model, parent, _, batch = built(name)
    share_weights(model, parent)
    model.eval(), parent.eval()
    for detector in (model, parent):
        # Keep low-scoring boxes so an untrained detector predicts some.
        test_cfg = detector.test_cfg
        test_cfg = test_cfg.rcnn if 'rcnn' in test_cfg else test_cfg
        test_cfg.score_thr = 0.0
    with torch.no_grad():
        ours = model.test_step(copy.deepcopy(batch))
        theirs = parent.test_step(copy.deepcopy(batch))
        data = model.data_preprocessor(copy.deepcopy(batch), False)
        raw_ours = model(**data, mode='tensor')
        raw_theirs = parent(**data, mode='tensor')
    for ours_i, theirs_i in zip(ours, theirs):
        a, b = ours_i.pred_instances, theirs_i.pred_instances
        assert len(a) > 0
        assert torch.equal(a.bboxes, b.bboxes)
        assert torch.equal(a.scores, b.scores)
        assert torch.equal(a.labels, b.labels)
    flat_ours = torch.cat([t.flatten() for t in _tensors(raw_ours)])
    flat_theirs = torch.cat([t.flatten() for t in _tensors(raw_theirs)])
    assert torch.equal(flat_ours, flat_theirs)


def _tensors(node):
    if isinstance(node, torch.Tensor):
        return [node]
    return [t for item in node for t in _tensors(item)]


@pytest.mark.parametrize('name', sorted(CASES))
def test_decision_network_has_no_weight_decay(name):
    """Two parameter groups: the decision network without decay, the
    trainable rest of the detector with the parent's optimizer settings
    (mmengine leaves frozen parameters, here ResNet's stem and first stage,
    out of the optimizer under a paramwise_cfg)."""
    from mmengine.optim import build_optim_wrapper
    register_all_modules()
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'slf_detectors', name))
    parent = Config.fromfile(osp.join(MMDET_CONFIGS, CASES[name][0]))
    assert cfg.optim_wrapper.optimizer == parent.optim_wrapper.optimizer
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer \
        .param_groups
    assert len(groups) == 2
    decay = parent.optim_wrapper.optimizer.weight_decay
    by_decay = {group['weight_decay']: group['params'] for group in groups}
    names = {
        id(p): n
        for n, p in model.named_parameters() if p.requires_grad
    }
    assert sorted(names[id(p)] for p in by_decay[0.0]) == sorted(
        n for n in names.values() if n.startswith('weighting.'))
    assert len(by_decay[decay]) == len(names) - len(by_decay[0.0])
    assert {group['lr'] for group in groups} == {
        parent.optim_wrapper.optimizer.lr}
