# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""YOLOV3SLFHead against mmdet's YOLOV3Head on the same input."""
import pytest
import torch
from mmdet.models.dense_heads import YOLOV3Head
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import mmdet_slf  # noqa: F401
from mmdet_slf.models.dense_heads import YOLOV3SLFHead

TERMS = ['coord', 'pred', 'obj', 'noobj']
NUM_CLASSES = 3


def head_kwargs(xy_wh_weight=1.0):
    return dict(
        num_classes=NUM_CLASSES,
        in_channels=[16, 8, 4],
        out_channels=[16, 8, 4],
        loss_cls=dict(
            type='CrossEntropyLoss', use_sigmoid=True, reduction='sum'),
        loss_conf=dict(
            type='CrossEntropyLoss', use_sigmoid=True, reduction='sum'),
        loss_xy=dict(
            type='CrossEntropyLoss',
            use_sigmoid=True,
            loss_weight=xy_wh_weight,
            reduction='sum'),
        loss_wh=dict(
            type='MSELoss', loss_weight=xy_wh_weight, reduction='sum'),
        train_cfg=ConfigDict(
            assigner=dict(
                type='GridAssigner',
                pos_iou_thr=0.5,
                neg_iou_thr=0.5,
                min_pos_iou=0)))


def inputs(batch_gt):
    torch.manual_seed(1)
    feats = [
        torch.rand(len(batch_gt), c, s, s)
        for c, s in ((16, 2), (8, 4), (4, 8))
    ]  # strides 32, 16, 8 of a 64 x 64 input
    metas = [dict(img_shape=(64, 64), batch_input_shape=(64, 64))
             for _ in batch_gt]
    gts = [
        InstanceData(
            bboxes=torch.tensor(b, dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor(l, dtype=torch.long)) for b, l in batch_gt
    ]
    return feats, gts, metas


def build_pair(**weighting):
    torch.manual_seed(0)
    ref = YOLOV3Head(**head_kwargs(xy_wh_weight=2.0))
    ref.init_weights()
    ours = YOLOV3SLFHead(**head_kwargs(), **weighting)
    missing, unexpected = ours.load_state_dict(ref.state_dict(), strict=False)
    assert not unexpected and all(k.startswith('weighting') for k in missing)
    return ref, ours


BATCH = [
    ([[4, 6, 40, 50], [30, 30, 60, 44]], [0, 2]),  # image 0: two objects
    ([[10, 10, 26, 22]], [1]),  # image 1: one object
]


def test_terms_match_mmdet_loss():
    ref, ours = build_pair()
    feats, gts, metas = inputs(BATCH)
    pred_maps = ref(feats)[0]
    expected = {k: sum(v) for k, v in ref.loss_by_feat(pred_maps, gts,
                                                       metas).items()}
    raw, features = ours.loss_terms(ours(feats)[0], gts, metas)
    assert features.shape == (2, 5 + NUM_CLASSES)
    for value in raw.values():
        assert value.shape == (2, )  # per image
    # mmdet's loss_xy/loss_wh carry weight 2; ours are unweighted
    torch.testing.assert_close(
        raw['loss_coord'].sum(),
        (expected['loss_xy'] + expected['loss_wh']) / 2)
    torch.testing.assert_close(raw['loss_pred'].sum(), expected['loss_cls'])
    torch.testing.assert_close(raw['loss_obj'].sum() + raw['loss_noobj'].sum(),
                               expected['loss_conf'])
    assert raw['loss_obj'].sum() > 0 and raw['loss_noobj'].sum() > 0


def test_decision_features_are_the_mean_activated_prediction():
    """The decision features are, per image, the mean over all anchors of
    all levels of [sigmoid(x, y), raw w, h, sigmoid(conf), sigmoid(classes)]
    (the class docstring). mmdet's channel layout is anchor-major, channel
    = a * (5 + C) + attribute, so each level is unpacked here by reshape to
    [N, A, 5 + C, H, W]. The levels have 3 * (4, 16, 64) anchors, so the
    mean weights the 8 x 8 level most, and reading one level, or averaging
    the per-level means, gives a different vector."""
    _, ours = build_pair()
    # mmdet's init predicts nearly the same everywhere (std 0.01): spread
    # the predictions so that anchors, levels and images differ.
    generator = torch.Generator().manual_seed(0)
    for conv in ours.convs_pred:
        torch.nn.init.normal_(conv.weight, std=1.0, generator=generator)
    feats, gts, metas = inputs(BATCH)
    pred_maps = ours(feats)[0]
    _, features = ours.loss_terms(pred_maps, gts, metas)
    num_attrib = 5 + NUM_CLASSES
    levels = []
    for pred_map in pred_maps:
        num_imgs, _, height, width = pred_map.shape
        attributes = pred_map.detach().reshape(
            num_imgs, 3, num_attrib, height, width).permute(0, 1, 3, 4, 2)
        attributes = attributes.reshape(num_imgs, -1, num_attrib)
        levels.append(
            torch.cat([
                torch.sigmoid(attributes[..., 0:2]), attributes[..., 2:4],
                torch.sigmoid(attributes[..., 4:])
            ], dim=-1))
    assert [level.shape[1] for level in levels] == [12, 48, 192]
    expected = torch.cat(levels, dim=1).mean(dim=1)  # over 252 anchors
    assert features.shape == (2, num_attrib)
    torch.testing.assert_close(features, expected)
    # The test tells the alternatives apart on these inputs.
    assert not torch.allclose(levels[0].mean(1), expected, atol=0.05)
    per_level = torch.stack([level.mean(1) for level in levels]).mean(0)
    assert not torch.allclose(per_level, expected, atol=0.05)
    # The two images differ, so a batch mean shows too.
    assert not torch.allclose(expected[0], expected[1], atol=0.05)


def test_each_image_gets_its_own_share_of_each_term():
    """SLF weights each image's terms, so each entry of a ``[N]`` term must
    be that image's loss, not only sum to the batch's: mmdet's loss of the
    image alone (its slice of the same prediction maps) is the reference.
    The images differ in every term (image 0 has two objects, image 1 one
    smaller object), so a swap or a batch mean in any term shows."""
    ref, ours = build_pair()
    feats, gts, metas = inputs(BATCH)
    pred_maps = ours(feats)[0]
    raw, _ = ours.loss_terms(pred_maps, gts, metas)
    for i in range(len(BATCH)):
        alone = {
            k: sum(v)
            for k, v in ref.loss_by_feat([p[i:i + 1] for p in pred_maps],
                                         gts[i:i + 1],
                                         metas[i:i + 1]).items()
        }
        torch.testing.assert_close(raw['loss_coord'][i],
                                   (alone['loss_xy'] + alone['loss_wh']) / 2)
        torch.testing.assert_close(raw['loss_pred'][i], alone['loss_cls'])
        torch.testing.assert_close(
            raw['loss_obj'][i] + raw['loss_noobj'][i], alone['loss_conf'])
    for key in ('loss_coord', 'loss_pred', 'loss_obj', 'loss_noobj'):
        assert not torch.allclose(raw[key][0], raw[key][1]), key


def test_an_anchor_both_positive_and_negative_counts_as_positive_only():
    """mmdet's ``loss_by_feat`` clamps ``pos + neg`` at 1, so an anchor
    flagged both positive and negative is trained towards confidence 1
    once, and ``_level_terms`` keeps it out of ``noobj``. mmdet's
    ``GridAssigner`` with its pseudo sampler never flags an anchor both
    ways (a negative has ``gt_inds == 0``), so the maps are built by hand:
    one image, two anchors on a 1 x 1 map, anchor 0 positive and both
    negative. With sigmoid cross entropy on logits ``x``, the confidence
    loss is ``softplus(-x)`` towards 1 and ``softplus(x)`` towards 0."""
    _, ours = build_pair()
    num_attrib = 5 + NUM_CLASSES
    pred = torch.zeros(1, 2, num_attrib)
    pred[0, :, 4] = torch.tensor([0.5, -1.5])  # confidence logits
    pred_map = pred.reshape(1, 2 * num_attrib, 1, 1)  # anchor-major
    target = torch.zeros(1, 2, num_attrib)
    target[0, 0, :4] = torch.tensor([0.5, 0.5, 0.0, 0.0])
    target[0, 0, 4] = 1.0
    target[0, 0, 5] = 1.0  # class 0
    neg = torch.ones(1, 2, dtype=torch.uint8)
    terms, _ = ours._level_terms(pred_map, target, neg)
    softplus = torch.nn.functional.softplus
    torch.testing.assert_close(terms['loss_obj'],
                               softplus(torch.tensor([-0.5])))
    # 0.2014 from anchor 1 alone; counting anchor 0 would add 0.9741.
    torch.testing.assert_close(terms['loss_noobj'],
                               softplus(torch.tensor([-1.5])))


def test_fixed_weighting_reproduces_mmdet_total():
    ref, ours = build_pair(
        weighting=dict(
            type='FixedWeighting', terms=TERMS, weights=[2.0, 1.0, 1.0,
                                                         1.0]))
    feats, gts, metas = inputs(BATCH)
    ref_losses = ref.loss_by_feat(ref(feats)[0], gts, metas)
    ref_total = sum(sum(v) for v in ref_losses.values())
    losses = ours.loss_by_feat(ours(feats)[0], gts, metas)
    assert {f'loss_{t}' for t in TERMS} <= set(losses)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    torch.testing.assert_close(total, ref_total)


def test_empty_gt():
    ref, ours = build_pair()
    feats, gts, metas = inputs([([], []), ([], [])])
    losses = ours.loss_by_feat(ours(feats)[0], gts, metas)
    for key in ('loss_coord', 'loss_pred', 'loss_obj'):
        assert losses[key].item() == 0.0
    assert losses['loss_noobj'].item() > 0
    expected = ref.loss_by_feat(ref(feats)[0], gts, metas)
    torch.testing.assert_close(losses['loss_noobj'],
                               sum(expected['loss_conf']))
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for name, param in ours.named_parameters():
        assert param.grad is not None, name


def test_slf_weighting_logs_four_terms():
    _, ours = build_pair(
        weighting=dict(
            type='SLFWeighting', terms=TERMS, prior=[2.0, 1.0, 1.0, 1.0]))
    assert ours.weighting.decision_net.in_channels == 5 + NUM_CLASSES
    feats, gts, metas = inputs(BATCH)
    losses = ours.loss_by_feat(ours(feats)[0], gts, metas)
    for term in TERMS:
        assert torch.isfinite(losses[f'loss_{term}'])
        assert f'slf_w_{term}' in losses
    assert ours.weighting.scale == pytest.approx(5.0)
    with pytest.raises(ValueError, match='weighting.terms'):
        YOLOV3SLFHead(
            **head_kwargs(),
            weighting=dict(type='FixedWeighting', terms=['cls', 'conf']))


def test_only_the_loss_path_is_overridden():
    """The parent's per-level loss keeps its contract: mmdet's four
    batch-level losses, identical to the parent's on the same weights."""
    assert YOLOV3SLFHead.loss_by_feat_single is \
        YOLOV3Head.loss_by_feat_single
    torch.manual_seed(0)
    ref = YOLOV3Head(**head_kwargs())
    ours = YOLOV3SLFHead(**head_kwargs())
    ours.load_state_dict(ref.state_dict(), strict=False)
    feats, gts, metas = inputs(BATCH)
    expected = ref.loss_by_feat(ref(feats)[0], gts, metas)
    got = YOLOV3Head.loss_by_feat(ours, ours(feats)[0], gts, metas)
    assert set(got) == {'loss_cls', 'loss_conf', 'loss_xy', 'loss_wh'}
    for key, values in expected.items():
        for value, other in zip(values, got[key]):
            torch.testing.assert_close(other, value)


@pytest.mark.parametrize('loss', ['loss_xy', 'loss_wh', 'loss_cls'])
def test_loss_weights_other_than_one_fail_at_build(loss):
    kwargs = head_kwargs()
    kwargs[loss] = dict(kwargs[loss], loss_weight=2.0)
    with pytest.raises(ValueError,
                       match=rf'{loss}.loss_weight=2.0: set loss_weight=1.0 '
                       r'there and put the weight in weighting'):
        YOLOV3SLFHead(**kwargs)


def test_terms_default_to_the_head_terms():
    head = YOLOV3SLFHead(
        **head_kwargs(),
        weighting=dict(type='FixedWeighting', weights=[2.0, 1.0, 1.0, 1.0]))
    assert head.weighting.terms == list(YOLOV3SLFHead.TERMS) == TERMS


@pytest.mark.parametrize('loss', ['loss_cls', 'loss_conf', 'loss_xy',
                                  'loss_wh'])
def test_loss_reductions_other_than_sum_fail_at_build(loss):
    """The terms are per-image sums: with reduction='mean' mmdet's term is
    their sum divided by the element count, which the head cannot give."""
    kwargs = head_kwargs()
    kwargs[loss] = dict(kwargs[loss], reduction='mean')
    with pytest.raises(ValueError,
                       match=rf"{loss}.reduction='mean': set "
                       r"reduction='sum' there"):
        YOLOV3SLFHead(**kwargs)
    # mmdet's YOLOV3Head defaults average all four; the parent's total then
    # differs from the per-image sums by orders of magnitude.
    defaults = {k: v for k, v in head_kwargs().items()
                if k not in ('loss_cls', 'loss_conf', 'loss_xy', 'loss_wh')}
    with pytest.raises(ValueError, match=r"loss_cls.reduction='mean', "
                       r"loss_conf.reduction='mean', loss_xy.reduction="
                       r"'mean', loss_wh.reduction='mean'"):
        YOLOV3SLFHead(**defaults)


def test_a_loss_without_reduction_fails_at_build():
    """An SLFLoss as loss_cls would weight inside the head's weighted term,
    and its scalar objective terms would count once per element of the
    per-image sums (4.4x the class term on a small batch)."""
    kwargs = head_kwargs()
    kwargs['loss_cls'] = dict(
        type='SLFLoss', use_sigmoid=True,
        candidates=[dict(kwargs['loss_cls']), dict(kwargs['loss_cls'])])
    with pytest.raises(ValueError, match=r'loss_cls \(SLFLoss\) has no '
                       'reduction'):
        YOLOV3SLFHead(**kwargs)
