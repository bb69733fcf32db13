# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""SLFDetector on a narrow RetinaNet: misconfiguration, pass-through keys,
decision features, FixedWeighting parity and pickling."""
import copy
import logging
import os.path as osp
import pickle

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

import mmdet_slf  # noqa: F401
from mmdet_slf.models.detectors import SLFDetector, pool_features
from mmdet_slf.models.detectors import slf_detector as slf_detector_module
from conftest import REPO_ROOT, patch_cfg_for_tiny_voc

CONFIG = osp.join(REPO_ROOT, 'configs', 'slf_detectors',
                  'retinanet-slf_r50_fpn_1x_voc0712.py')
# A ResNet-18 of width 8 under a 16-channel FPN: same code path, tiny cost.
NARROW = dict(
    backbone=dict(depth=18, base_channels=8, init_cfg=None),
    neck=dict(in_channels=[8, 16, 32, 64], out_channels=16),
    bbox_head=dict(in_channels=16, feat_channels=16, stacked_convs=1))
NUM_FEATURES = 16 * 5  # pooled FPN outputs, five levels


@pytest.fixture(scope='module')
def setup(tiny_voc_root, tmp_path_factory):
    """The narrow SLF RetinaNet config and one preprocessed training batch."""
    register_all_modules()
    cfg = Config.fromfile(CONFIG)
    patch_cfg_for_tiny_voc(cfg, tiny_voc_root,
                           str(tmp_path_factory.mktemp('work')), (64, 64))
    cfg.merge_from_dict(dict(model=NARROW))
    model = MODELS.build(cfg.model)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    batch = model.data_preprocessor(next(iter(loader)), True)
    return cfg, batch


def build(cfg, **changes):
    model_cfg = copy.deepcopy(cfg.model)
    for key, value in changes.items():
        model_cfg[key] = value  # replaced, not merged
    torch.manual_seed(0)
    return MODELS.build(model_cfg)


def parent_of(cfg, model):
    """The plain RetinaNet with ``model``'s weights."""
    parent_cfg = {
        key: value
        for key, value in copy.deepcopy(cfg.model).items()
        if key not in ('terms', 'weighting', 'decision_features',
                       'detector_type')
    }
    parent_cfg['type'] = cfg.model.detector_type
    parent = MODELS.build(parent_cfg)
    state = {k: v for k, v in model.state_dict().items()
             if not k.startswith('weighting.')}
    parent.load_state_dict(state, strict=True)
    return parent


def losses_of(model, batch, seed=0):
    torch.manual_seed(seed)
    return model.loss(batch['inputs'], copy.deepcopy(batch['data_samples']))


@MODELS.register_module(force=True)
class ToyLossDetector(BaseDetector):
    """A detector whose loss dict is known by hand, linear in one parameter
    ``scale`` (1 at build): ``loss_a = 2``, ``loss_b`` a per-level list
    ``[0.5, [1, 3]]`` (mmengine adds 0.5 + mean(1, 3) = 2.5), ``loss_c =
    4``, ``d1.loss_aux = 0.25`` (a decoder-layer key: it contains ``loss``
    without starting with it) and ``acc = 90`` (no ``loss``: a metric)."""

    def __init__(self, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.scale = torch.nn.Parameter(torch.ones(()))

    def extract_feat(self, batch_inputs):
        return batch_inputs

    def _forward(self, batch_inputs, batch_data_samples=None):
        return batch_inputs

    def predict(self, batch_inputs, batch_data_samples):
        return batch_data_samples

    def loss(self, batch_inputs, batch_data_samples):
        scale = self.scale
        return {
            'loss_a': 2.0 * scale,
            'loss_b': [0.5 * scale, scale * torch.tensor([1.0, 3.0])],
            'loss_c': 4.0 * scale,
            'd1.loss_aux': 0.25 * scale,
            'acc': torch.tensor(90.0),
        }


# ab = loss_a + loss_b = 2 + 2.5 = 4.5, c = loss_c = 4; d1.loss_aux and
# acc are in no group.
TOY_TERMS = dict(ab=['loss_a', 'loss_b'], c=['loss_c'])


def toy(**kwargs):
    """``SLFDetector`` over :class:`ToyLossDetector`, built directly."""
    return SLFDetector(detector_type='ToyLossDetector', terms=TOY_TERMS,
                       **kwargs)


def toy_losses(model):
    return model.loss(torch.zeros(2, 3, 8, 8), [])


def test_builds_parent_subclass_with_parent_keys(setup):
    cfg, _ = setup
    model = build(cfg)
    parent = parent_of(cfg, model)
    assert isinstance(model, SLFDetector)
    assert isinstance(model, type(parent))
    assert type(model).__name__ == 'SLFRetinaNet'
    extra = set(model.state_dict()) - set(parent.state_dict())
    assert extra and all(key.startswith('weighting.') for key in extra)
    assert set(parent.state_dict()) <= set(model.state_dict())


def test_fixed_ones_reproduce_parent_total(setup):
    cfg, batch = setup
    model = build(cfg, weighting=dict(type='FixedWeighting'))
    parent = parent_of(cfg, model)
    total, log_vars = model.parse_losses(losses_of(model, batch))
    parent_total, parent_vars = parent.parse_losses(losses_of(parent, batch))
    torch.testing.assert_close(total, parent_total, rtol=1e-6, atol=1e-6)
    assert log_vars['loss_cls'].item() == pytest.approx(
        parent_vars['loss_cls'].item(), rel=1e-6)
    assert log_vars['slf_w_cls'].item() == 1.0


def test_ungrouped_loss_passes_through_and_is_reported_once(
        setup, monkeypatch):
    cfg, batch = setup
    messages = []
    monkeypatch.setattr(slf_detector_module, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    model = build(cfg, terms=dict(cls=['loss_cls']))
    parent = parent_of(cfg, model)
    outputs = losses_of(model, batch)
    losses_of(model, batch, seed=1)
    parent_losses = losses_of(parent, batch)
    # The box loss keeps its parent value and per-level list form.
    assert len(outputs['loss_bbox']) == 5
    for ours, theirs in zip(outputs['loss_bbox'], parent_losses['loss_bbox']):
        torch.testing.assert_close(ours, theirs)
    total, log_vars = model.parse_losses(outputs)
    raw_cls = sum(level for level in parent_losses['loss_cls'])
    raw_box = sum(level for level in parent_losses['loss_bbox'])
    # The decision objective J of the default 'scale_free': in the first
    # step each running mean equals its term (s = 1) and p is the prior.
    assert log_vars['loss_slf_decision'].item() == pytest.approx(1.0)
    expected = log_vars['slf_w_cls'] * raw_cls + raw_box + \
        log_vars['loss_slf_decision']
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-5)
    warnings = [m for m in messages if 'in no group' in m]
    assert len(warnings) == 1 and "['loss_bbox']" in warnings[0]
    assert sum('terms: cls = loss_cls' in m for m in messages) == 1


def test_grouped_terms_and_ungrouped_keys_by_hand(monkeypatch):
    """ToyLossDetector with FixedWeighting ab=2, c=0.5: loss_ab = 2 * 4.5
    = 9, loss_c = 0.5 * 4 = 2; the ungrouped d1.loss_aux (0.25) and acc
    (90) pass through unchanged, so mmengine's objective is 9 + 2 + 0.25 =
    11.25, which is also its derivative in the loss scale (every key is
    linear in it). The raw terms are detached diagnostics; only
    d1.loss_aux, which contains ``loss``, is reported, once, as a
    warning."""
    messages = []
    monkeypatch.setattr(
        slf_detector_module, 'print_log',
        lambda msg, **kwargs: messages.append((msg, kwargs['level'])))
    model = toy(weighting=dict(type='FixedWeighting',
                               weights=dict(ab=2.0, c=0.5)))
    outputs = toy_losses(model)
    assert outputs['loss_ab'].item() == pytest.approx(9.0)
    assert outputs['loss_c'].item() == pytest.approx(2.0)
    assert outputs['slf_w_ab'].item() == 2.0
    assert outputs['slf_w_c'].item() == 0.5
    assert outputs['slf_raw_ab'].item() == pytest.approx(4.5)
    assert outputs['slf_raw_c'].item() == pytest.approx(4.0)
    assert not outputs['slf_raw_ab'].requires_grad
    assert not outputs['slf_raw_c'].requires_grad
    assert outputs['d1.loss_aux'].item() == pytest.approx(0.25)
    assert outputs['acc'].item() == 90.0
    # What mmengine adds to the objective: the keys that contain 'loss'.
    assert sorted(key for key in outputs if 'loss' in key) == [
        'd1.loss_aux', 'loss_ab', 'loss_c']
    total, _ = model.parse_losses(outputs)
    assert total.item() == pytest.approx(11.25)
    total.backward()
    assert model.scale.grad.item() == pytest.approx(11.25)
    assert messages == [
        ('SLFToyLossDetector terms: ab = loss_a + loss_b; c = loss_c',
         logging.INFO),
        ("SLFToyLossDetector: loss keys ['d1.loss_aux'] are in no group of "
         'terms; they stay in the objective unweighted by FixedWeighting, '
         'as in ToyLossDetector', logging.WARNING)]
    toy_losses(model)
    assert len(messages) == 2


def test_hook_logged_diagnostics_leave_only_the_objective_and_metrics():
    """Once SLFLoggerHook claims the weighting's diagnostics, the loss dict
    holds the weighted terms and the ungrouped keys, nothing else: the raw
    terms (4.5, 4) are read from the weighting instead."""
    from mmdet_slf.engine.hooks import claim_diagnostics
    model = toy(weighting=dict(type='FixedWeighting',
                               weights=dict(ab=2.0, c=0.5)))
    assert claim_diagnostics(model) == 1
    outputs = toy_losses(model)
    assert sorted(outputs) == ['acc', 'd1.loss_aux', 'loss_ab', 'loss_c']
    assert outputs['loss_ab'].item() == pytest.approx(9.0)
    diagnostics = model.weighting.last_diagnostics
    assert diagnostics['slf_raw_ab'] == pytest.approx(4.5)
    assert diagnostics['slf_w_c'] == 0.5


def test_default_weighting_is_slf_at_the_parents_weights():
    """Without ``weighting`` the terms get SLFWeighting with scale 2 (two
    terms) and a uniform prior: p = 0.5, w = 1 each, and the first step's
    decision objective is sum_i p_i s_i = 1 (s_i = 1), so the objective is
    4.5 + 4 + 1 + 0.25 = 9.75. The default config is not filled in with
    the terms of the first model built from it, nor is a given one."""
    from mmdet_slf.slf import SLFWeighting
    model = toy()
    assert type(model.weighting) is SLFWeighting
    assert model.weighting.scale == 2.0
    _, log_vars = model.parse_losses(toy_losses(model))
    for term in ('ab', 'c'):
        assert log_vars[f'slf_p_{term}'].item() == pytest.approx(0.5)
        assert log_vars[f'slf_w_{term}'].item() == pytest.approx(1.0)
    assert log_vars['loss_slf_decision'].item() == pytest.approx(1.0)
    assert log_vars['loss'].item() == pytest.approx(9.75)
    other = SLFDetector(detector_type='ToyLossDetector',
                        terms=dict(a=['loss_a']))
    assert other.weighting.terms == ['a']
    given = dict(type='FixedWeighting')
    toy(weighting=given)
    assert given == dict(type='FixedWeighting')


def test_detector_type_as_a_class_and_module_attributes():
    """A class is as good as its registered name, and the module resolves
    ``SLF<registered type>`` (what unpickling looks up) and nothing else:
    other names raise AttributeError, so ``hasattr`` is False."""
    model = SLFDetector(detector_type=ToyLossDetector, terms=TOY_TERMS)
    made = slf_detector_module.slf_detector_class('ToyLossDetector')
    assert type(model) is made
    assert slf_detector_module.SLFToyLossDetector is made
    assert isinstance(model, ToyLossDetector)
    for name in ('SLFNoSuchDetector', 'XYZToyLossDetector', 'no_such_name'):
        assert not hasattr(slf_detector_module, name), name
    # Registered, but not a detector to wrap: a backbone, and an SLF
    # detector itself. Both are missing attributes that say why.
    for name, reason in (('SLFResNet', 'subclass of mmdet BaseDetector'),
                         ('SLFSLFDetector', 'already weights its losses')):
        assert not hasattr(slf_detector_module, name), name
        with pytest.raises(AttributeError, match=reason):
            getattr(slf_detector_module, name)


def test_decision_features_of_a_module_called_per_level_read_its_first_call(
        setup):
    """RetinaNet's first classification conv runs once per FPN level; the
    decision network reads its first call, the finest level: its output
    pooled per image, then averaged over the batch (16 channels)."""
    cfg, batch = setup
    model = build(cfg, decision_features='bbox_head.cls_convs.0',
                  weighting=dict(type='SLFWeighting', in_channels=16))
    seen = []
    model.weighting.decision_net.register_forward_hook(
        lambda module, args, output: seen.append(args[0]))
    losses_of(model, batch)
    with torch.no_grad():
        levels = model.extract_feat(batch['inputs'])
        first = model.bbox_head.cls_convs[0](levels[0]).mean(dim=(2, 3))
        last = model.bbox_head.cls_convs[0](levels[-1]).mean(dim=(2, 3))
    assert len(seen) == 1 and seen[0].shape == (1, 16)
    torch.testing.assert_close(seen[0], first.mean(0, keepdim=True))
    assert not torch.allclose(first, last)


def test_neck_features_reach_the_decision_network(setup):
    cfg, batch = setup
    model = build(
        cfg,
        decision_features='neck',
        # The joint objective, whose gradient reaches the decision network
        # in the first step ('scale_free' has s = 1 for every term there).
        weighting=dict(type='SLFWeighting', in_channels=NUM_FEATURES,
                       decision_objective='joint', estimator='gumbel'))
    seen = []
    model.weighting.decision_net.register_forward_hook(
        lambda module, args, output: seen.append(args[0]))
    total, _ = model.parse_losses(losses_of(model, batch))
    total.backward()
    with torch.no_grad():
        levels = model.extract_feat(batch['inputs'])
    # Pooled independently: per-level spatial mean, then concatenated.
    pooled = torch.cat([level.mean(dim=(2, 3)) for level in levels], dim=1)
    assert pooled.shape == (len(batch['inputs']), NUM_FEATURES)
    # Batch-level terms: one decision per batch, from the mean image.
    torch.testing.assert_close(seen[0], pooled.mean(0, keepdim=True))
    grads = [p.grad for p in model.weighting.decision_net.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    # Prediction neither captures nor needs features.
    model.eval()
    with torch.no_grad():
        model.predict(batch['inputs'], copy.deepcopy(batch['data_samples']))
    assert model._captured is None and len(seen) == 1


def test_joint_slf_trains_the_neck_through_the_decision_features(setup):
    """With ``detach_features=False`` (the paper's joint back-propagation)
    Eq. (11) reaches the neck through the pooled features as well as
    through the head. The neck's extra gradient is exactly that of
    ``sum_i w_i l_i`` through ``w = scale * softmax(h(pooled neck
    outputs))`` with the terms held constant; the head's is unchanged."""
    cfg, batch = setup
    grads, models, raws = {}, {}, {}
    for detach in (True, False):
        model = build(
            cfg, decision_features='neck',
            weighting=dict(type='SLFWeighting', in_channels=NUM_FEATURES,
                           decision_objective='joint', estimator='expected',
                           kl_weight=0.0, prior_init=False,
                           detach_features=detach))
        losses = losses_of(model, batch)
        raws[detach] = torch.stack([losses['slf_raw_cls'],
                                    losses['slf_raw_box']])
        total, _ = model.parse_losses(losses)
        total.backward()
        grads[detach] = {name: p.grad.clone()
                         for name, p in model.named_parameters()
                         if p.grad is not None}
        models[detach] = model
    for name, grad in grads[True].items():
        if name.startswith('bbox_head.'):
            torch.testing.assert_close(grads[False][name], grad)
    model = models[False]
    levels = model.neck(model.backbone(batch['inputs']))
    pooled = torch.cat([level.mean(dim=(2, 3)) for level in levels], dim=1)
    p = torch.softmax(model.weighting.decision_net(
        pooled.mean(0, keepdim=True)), dim=-1)[0]
    neck = dict(model.neck.named_parameters())
    through_features = torch.autograd.grad(
        (model.weighting.scale * p * raws[False]).sum(), list(neck.values()))
    for (name, _), want in zip(neck.items(), through_features):
        key = f'neck.{name}'
        # a difference of two float32 gradients: rounding of their size
        size = grads[True][key].abs().max().item()
        torch.testing.assert_close(grads[False][key] - grads[True][key],
                                   want, rtol=1e-4, atol=1e-5 * size)
    assert sum(g.abs().sum() for g in through_features) > 0


def test_a_key_the_weighting_does_not_take_names_model_weighting(setup):
    cfg, _ = setup
    with pytest.raises(TypeError, match=r"^model\.weighting: .*unexpected "
                       r"keyword argument 'kl_weight'.*_delete_=True"):
        build(cfg, weighting=dict(type='FixedWeighting', kl_weight=5.0))


@pytest.mark.parametrize('num_boxes', [0, 1])
def test_empty_and_one_box_ground_truth(setup, num_boxes):
    from mmdet.models.detectors import RetinaNet
    from mmdet.testing import demo_mm_inputs
    cfg, _ = setup
    model = build(cfg)
    packed = demo_mm_inputs(
        1, [[3, 64, 64]], num_items=[num_boxes], num_classes=20)
    data = model.data_preprocessor(packed, True)
    total, log_vars = model.parse_losses(model(**data, mode='loss'))
    _, parent_vars = model.parse_losses(
        RetinaNet.loss(model, data['inputs'], data['data_samples']))
    if num_boxes == 0:  # no positives: the box term is exactly zero
        assert parent_vars['loss_bbox'].item() == 0.0
    else:
        assert parent_vars['loss_bbox'].item() > 0.0
    expected = log_vars['loss_slf_decision'] + \
        log_vars['slf_w_cls'] * parent_vars['loss_cls'] + \
        log_vars['slf_w_box'] * parent_vars['loss_bbox']
    assert torch.isfinite(total)
    torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-5)


def test_pool_features_shapes():
    maps = [torch.arange(8.).view(1, 2, 2, 2), torch.ones(1, 3, 1, 1)]
    pooled = pool_features(maps)
    assert pooled.tolist() == [[1.5, 5.5, 1.0, 1.0, 1.0]]
    with pytest.raises(TypeError, match='got dict'):
        pool_features(dict(level=maps[0]))
    # One tensor is one level: [2, 2, 2] -> per-image channel means.
    single = torch.arange(8.).view(2, 2, 2)
    assert pool_features(single).tolist() == [[0.5, 2.5], [4.5, 6.5]]
    # An already pooled [N, C] level is taken as it is.
    pooled = pool_features([torch.tensor([[7., 8.]]), torch.ones(1, 1, 2, 2)])
    assert pooled.tolist() == [[7.0, 8.0, 1.0]]


@pytest.mark.parametrize('value, scales', [
    (1, False), (1.0, False), (2, True), (0.5, True), (0.0, True),
    (True, False), (False, False), (None, False), ('2', False),
    ([1, 1.0], False), ([1, 0.5, 0.25], True), ((1, 0.25), True),
])
def test_which_loss_multipliers_scale(value, scales):
    """A multiplier scales when it is a number (int or float, not a bool)
    other than 1, or a list or tuple holding one."""
    assert slf_detector_module._scales(value) is scales


@pytest.mark.parametrize('changes, error, message', [
    (dict(terms=dict(cls=['loss_cls'], box=['loss_cls'])), ValueError,
     r"'loss_cls' is in terms.cls and terms.box"),
    (dict(terms=dict(cls=[], box=['loss_bbox'])), ValueError,
     r'terms.cls is empty'),
    (dict(terms=dict(loss_box=['loss_bbox'])), ValueError,
     r"term name 'loss_box' in terms must not contain"),
    (dict(detector_type='RetinaNett'), KeyError,
     r"detector_type 'RetinaNett' is not registered"),
    (dict(detector_type='SLFDetector'), TypeError, r'already weights'),
    (dict(detector_type='ResNet'), TypeError, r'subclass of mmdet'),
    (dict(detector_type=None), TypeError, r'SLFDetector needs detector_type'),
    (dict(detector_type=5), TypeError,
     r'must name a subclass of mmdet BaseDetector, got 5'),
    (dict(weighting=dict(kl_weight=1.0)), ValueError,
     r'weighting must be a config dict with a type'),
    (dict(weighting=dict(type='FixedWeighting', terms=['box', 'cls'])),
     ValueError, r"weighting.terms \['box', 'cls'\] differ"),
    (dict(weighting=dict(type='SLFWeighting', in_channels=80)), ValueError,
     r'decision_features is None'),
    (dict(decision_features='neck'), ValueError,
     r"decision_features='neck' needs a weighting that reads features"),
    (dict(decision_features='nek',
          weighting=dict(type='SLFWeighting', in_channels=80)), ValueError,
     r"'nek' is not a submodule of RetinaNet; its top-level modules are "
     r"\['backbone', 'neck', 'bbox_head'\]"),
])
def test_misconfiguration_fails_at_build(setup, changes, error, message):
    cfg, _ = setup
    with pytest.raises(error, match=message):
        build(cfg, **changes)


def test_unknown_key_fails_at_first_step_listing_keys(setup):
    cfg, batch = setup
    model = build(cfg, terms=dict(cls=['loss_cls'], box=['loss_box']))
    with pytest.raises(KeyError,
                       match=r"terms.box names 'loss_box', but the detector's"
                       r" loss\(\) returned no such key; it returned "
                       r"\['loss_bbox', 'loss_cls'\]"):
        losses_of(model, batch)


def test_feature_length_and_name_clash_fail_at_first_step(setup):
    cfg, batch = setup
    model = build(
        cfg,
        decision_features='neck',
        weighting=dict(type='SLFWeighting', in_channels=100))
    with pytest.raises(ValueError,
                       match=r'shape \(2, 80\), but weighting.in_channels='
                       r'100; set weighting.in_channels=80'):
        losses_of(model, batch)
    # The data preprocessor runs before loss(), never inside it.
    model = build(
        cfg,
        decision_features='data_preprocessor',
        weighting=dict(type='SLFWeighting', in_channels=NUM_FEATURES))
    with pytest.raises(RuntimeError,
                       match=r"decision_features='data_preprocessor' was not "
                       r'called during RetinaNet.loss\(\)'):
        losses_of(model, batch)
    # ``bbox`` would return ``loss_bbox``, the name of the ungrouped key.
    model = build(cfg, terms=dict(bbox=['loss_cls']))
    with pytest.raises(ValueError, match=r"terms \['loss_bbox'\] have the "
                       r'name of ungrouped'):
        losses_of(model, batch)


def test_copies_and_pickles(setup):
    cfg, batch = setup
    model = build(cfg)
    clone = pickle.loads(pickle.dumps(model))
    twin = copy.deepcopy(model)
    assert type(clone) is type(model) is type(twin)
    for other in (clone, twin):
        for (key, ours), (_, theirs) in zip(model.state_dict().items(),
                                            other.state_dict().items()):
            assert torch.equal(ours, theirs), key
    # The copy's feature hook is bound to the copy, not to the original.
    featured = build(
        cfg,
        decision_features='neck',
        weighting=dict(type='SLFWeighting', in_channels=NUM_FEATURES))
    copied = copy.deepcopy(featured)
    outputs = losses_of(copied, batch)
    assert 'loss_cls' in outputs and featured._captured is None


def docs_config(marker):
    """The python block of docs/other_detectors.md that contains marker."""
    with open(osp.join(REPO_ROOT, 'docs', 'other_detectors.md')) as f:
        blocks = f.read().split('```python\n')[1:]
    return next(b.split('```')[0] for b in blocks if marker in b)


def test_docs_recipe_on_an_unseen_detector(tmp_path):
    """FCOS from the docs: three terms, the parent's type read from the
    base, and a FixedWeighting child that must reproduce the parent."""
    from mmdet.models.detectors import FCOS
    from mmdet.testing import demo_mm_inputs
    register_all_modules()
    (tmp_path / 'fcos_slf.py').write_text(
        docs_config("_base_ = 'mmdet::fcos/"))
    (tmp_path / 'fcos_fixed.py').write_text(
        "_base_ = './fcos_slf.py'\n"
        "model = dict(weighting=dict(_delete_=True, type='FixedWeighting'))\n")
    (tmp_path / 'fcos_paper.py').write_text(
        "_base_ = './fcos_slf.py'\n"
        "model = dict(weighting=dict(decision_objective='joint',\n"
        "                            estimator='gumbel'))\n")
    (tmp_path / 'fcos_merged.py').write_text(
        "_base_ = './fcos_paper.py'\n"
        "model = dict(weighting=dict(type='FixedWeighting'))\n")
    narrow = dict(
        backbone=dict(depth=18, base_channels=8, init_cfg=None),
        neck=dict(in_channels=[8, 16, 32, 64], out_channels=32),
        bbox_head=dict(in_channels=32, feat_channels=32, stacked_convs=1))
    packed = demo_mm_inputs(2, [[3, 64, 64], [3, 64, 64]], num_classes=80)
    totals = {}
    for name in ('fcos_slf', 'fcos_fixed'):
        cfg = Config.fromfile(str(tmp_path / f'{name}.py'))
        assert cfg.model.detector_type == 'FCOS'
        cfg.merge_from_dict(dict(model=narrow))
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        assert isinstance(model, FCOS)
        data = model.data_preprocessor(copy.deepcopy(packed), True)
        total, log_vars = model.parse_losses(model(**data, mode='loss'))
        # The parent's own loss on the same model and batch.
        _, parent_vars = model.parse_losses(
            FCOS.loss(model, data['inputs'], data['data_samples']))
        expected = log_vars.get('loss_slf_decision', 0) + sum(
            log_vars[f'slf_w_{term}'] * parent_vars[f'loss_{key}']
            for term, key in (('cls', 'cls'), ('box', 'bbox'),
                              ('centerness', 'centerness')))
        torch.testing.assert_close(total, expected, rtol=1e-5, atol=1e-5)
        totals[name] = (total, parent_vars['loss'])  # parent's objective
    fixed_total, parent_total = totals['fcos_fixed']
    torch.testing.assert_close(fixed_total, parent_total)
    # Without _delete_ the SLF keys merge into FixedWeighting's config.
    cfg = Config.fromfile(str(tmp_path / 'fcos_merged.py'))
    cfg.merge_from_dict(dict(model=narrow))
    with pytest.raises(TypeError, match='decision_objective'):
        MODELS.build(cfg.model)


def test_loss_weights_inside_the_parent_fail_at_build(setup):
    """The weighting is the one place where weights apply: a parent's loss
    module that scales its own term is named at build."""
    cfg, _ = setup
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.bbox_head.loss_bbox.loss_weight = 2.0
    with pytest.raises(ValueError,
                       match=r'RetinaNet scales loss terms inside its modules '
                       r'\(model.bbox_head.loss_bbox.loss_weight=2.0\), but '
                       r'SLFDetector applies every weight in one place'):
        MODELS.build(model_cfg)


def test_cascade_stage_weights_fail_at_build_and_move_to_the_weighting(
        tmp_path):
    """Cascade R-CNN multiplies each stage's loss keys by its
    ``stage_loss_weights`` inside the parent: named at build. With the stage
    weights at 1 and one term per stage, FixedWeighting at the parent's
    stage weights gives the parent's own objective."""
    from mmdet.models.detectors import CascadeRCNN
    from mmdet.testing import demo_mm_inputs
    register_all_modules()
    (tmp_path / 'cascade.py').write_text(
        "_base_ = 'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'\n")
    cfg = Config.fromfile(str(tmp_path / 'cascade.py'))
    cfg.merge_from_dict(dict(model=dict(
        backbone=dict(depth=18, base_channels=8, init_cfg=None),
        neck=dict(in_channels=[8, 16, 32, 64], out_channels=16),
        rpn_head=dict(in_channels=16, feat_channels=16),
        roi_head=dict(bbox_roi_extractor=dict(out_channels=16)))))
    for head in cfg.model.roi_head.bbox_head:
        head.update(in_channels=16, fc_out_channels=32)
    assert cfg.model.roi_head.stage_loss_weights == [1, 0.5, 0.25]
    parent_cfg = copy.deepcopy(cfg.model)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.update(
        type='SLFDetector',
        detector_type='CascadeRCNN',
        terms=dict(
            rpn=['loss_rpn_*'],
            cls0=['s0.loss_cls'], cls1=['s1.loss_cls'], cls2=['s2.loss_cls'],
            box0=['s0.loss_bbox'], box1=['s1.loss_bbox'],
            box2=['s2.loss_bbox']),
        weighting=dict(type='FixedWeighting'))
    with pytest.raises(ValueError,
                       match=r'CascadeRCNN scales loss terms inside its '
                       r'modules \(model.roi_head.stage_loss_weights='
                       r'\[1, 0.5, 0.25\]\)'):
        MODELS.build(model_cfg)

    model_cfg.roi_head.stage_loss_weights = [1, 1, 1]
    model_cfg.weighting.weights = dict(
        rpn=1, cls0=1, cls1=0.5, cls2=0.25, box0=1, box1=0.5, box2=0.25)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    assert isinstance(model, CascadeRCNN)
    parent = MODELS.build(parent_cfg)
    state = {k: v for k, v in model.state_dict().items()
             if not k.startswith('weighting.')}
    parent.load_state_dict(state, strict=True)
    packed = demo_mm_inputs(
        2, [[3, 64, 64], [3, 64, 64]], num_items=[3, 2], num_classes=80)
    data = parent.data_preprocessor(packed, True)
    torch.manual_seed(1)
    total, log_vars = model.parse_losses(
        model.loss(data['inputs'], copy.deepcopy(data['data_samples'])))
    torch.manual_seed(1)
    parent_total, parent_vars = parent.parse_losses(
        parent.loss(data['inputs'], copy.deepcopy(data['data_samples'])))
    # The parent's stage weights, applied by the weighting to raw terms.
    for stage, weight in enumerate((1, 0.5, 0.25)):
        for term, key in (('cls', 'loss_cls'), ('box', 'loss_bbox')):
            assert log_vars[f'slf_raw_{term}{stage}'].item() == \
                pytest.approx(parent_vars[f's{stage}.{key}'].item() / weight,
                              rel=1e-5)
    assert log_vars['slf_raw_rpn'].item() == pytest.approx(
        (parent_vars['loss_rpn_cls'] + parent_vars['loss_rpn_bbox']).item(),
        rel=1e-6)
    torch.testing.assert_close(total, parent_total, rtol=1e-5, atol=1e-5)


def test_a_head_that_weights_its_own_keys_fails_at_build_unless_ones():
    """This package's YOLO head weights its keys with its own weighting:
    wrapped as it is, SLFDetector would apply 5 x 5 to the box term. With
    the head's weights at 1 the keys are raw, and the two weightings log
    under different keys."""
    from mmdet.testing import demo_mm_inputs
    from mmdet_slf.engine.hooks import (claim_diagnostics,
                                        collect_diagnostics)
    register_all_modules()
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'yolo_voc.py'))
    cfg.merge_from_dict(dict(model=dict(
        backbone=dict(widen_factor=0.125),
        bbox_head=dict(in_channels=128, fc_channels=16, input_size=128,
                       dropout=0.0))))
    terms = {name: [f'loss_{name}']
             for name in ('coord', 'pred', 'obj', 'noobj')}
    model_cfg = dict(cfg.model, type='SLFDetector',
                     detector_type='SingleStageDetector', terms=terms,
                     weighting=dict(type='FixedWeighting',
                                    weights=[5.0, 1.0, 1.0, 0.5]))
    with pytest.raises(ValueError, match=r'SingleStageDetector weights its '
                       r'loss keys itself \(model.bbox_head.weighting '
                       r'\(FixedWeighting\)\), and SLFDetector would'):
        MODELS.build(copy.deepcopy(model_cfg))
    model_cfg['bbox_head']['weighting'] = dict(
        type='FixedWeighting', weights=[1.0, 1.0, 1.0, 1.0])
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    batch = model.data_preprocessor(
        demo_mm_inputs(2, [[3, 128, 128]] * 2, num_classes=20), True)
    # Without SLFLoggerHook: the loss dict holds SLFDetector's diagnostics
    # only (the head's, under the same keys, used to stop the step as a
    # clash of names).
    losses = model.loss(batch['inputs'], batch['data_samples'])
    assert losses['slf_w_coord'].item() == 5.0
    assert losses['loss_coord'].item() == pytest.approx(
        5.0 * losses['slf_raw_coord'].item())
    claim_diagnostics(model)  # as SLFLoggerHook does before training
    losses = model.loss(batch['inputs'], batch['data_samples'])
    assert not any(key.startswith('slf_') for key in losses)
    diagnostics = collect_diagnostics(model)
    raw = diagnostics['slf_raw_coord']
    assert diagnostics['bbox_head.slf_raw_coord'] == pytest.approx(raw)
    assert losses['loss_coord'].item() == pytest.approx(5.0 * raw)
    assert diagnostics['slf_w_coord'] == 5.0
    assert diagnostics['bbox_head.slf_w_coord'] == 1.0


def test_a_heads_own_loss_multiplier_of_another_name_fails_at_build(
        tmp_path):
    """YOLACT's protonet multiplies its mask loss by ``loss_mask_weight``
    (6.125) inside the head: named at build, like a ``loss_weight``."""
    register_all_modules()
    (tmp_path / 'yolact.py').write_text(
        "_base_ = 'mmdet::yolact/yolact_r50_1xb8-55e_coco.py'\n")
    cfg = Config.fromfile(str(tmp_path / 'yolact.py'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    model_cfg.bbox_head.loss_bbox.loss_weight = 1.0
    model_cfg.update(
        type='SLFDetector', detector_type='YOLACT',
        terms=dict(cls=['loss_cls'], box=['loss_bbox'], mask=['loss_mask'],
                   segm=['loss_segm']),
        weighting=dict(type='FixedWeighting'))
    with pytest.raises(ValueError,
                       match=r'YOLACT scales loss terms inside its modules '
                       r'\(model.mask_head.loss_mask_weight=6.125\)'):
        MODELS.build(model_cfg)


def test_an_slf_loss_inside_the_parent_is_not_a_second_weighting():
    """An SLFLoss combines candidate losses into one key, which SLFDetector
    then weights once: the Faster R-CNN with SLFLoss classification and box
    losses builds inside SLFDetector, its SLFLoss weightings untouched."""
    from mmdet_slf.models.losses import SLFLoss
    register_all_modules()
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'losses',
        'faster-rcnn_r50_fpn_slf-bitempered-iou-balanced_1x_voc0712.py'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    model_cfg.update(
        type='SLFDetector', detector_type='FasterRCNN',
        terms=dict(rpn_cls=['loss_rpn_cls'], rpn_box=['loss_rpn_bbox'],
                   cls=['loss_cls'], box=['loss_bbox']),
        weighting=dict(type='FixedWeighting'))
    model = MODELS.build(model_cfg)
    inner = [m for m in model.modules() if isinstance(m, SLFLoss)]
    assert len(inner) == 2
    assert list(model.weighting.terms) == ['rpn_cls', 'rpn_box', 'cls', 'box']
