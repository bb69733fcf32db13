# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""YOLO's colour augmentation: the factors are drawn as darknet draws them
(log-symmetric in [1/1.5, 1.5], continuous), and the image's S and V are
scaled by them with the hue kept."""
import colorsys
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config

import mmdet_slf  # noqa: F401
from mmdet_slf.datasets import RandomExposureSaturation, RandomJitterCrop
from conftest import REPO_ROOT


def test_factors_are_log_symmetric_and_continuous():
    """log s is uniform on [-log 1.5, log 1.5] in distribution: a factor
    above 1 half of the time (binomial bound), mean of log s near 0, and
    no grid (mmdet's magnitudes take 9 values)."""
    np.random.seed(0)
    draws = np.array([RandomExposureSaturation.random_factor(1.5)
                      for _ in range(20000)])
    assert draws.min() >= 1 / 1.5 and draws.max() <= 1.5
    above = (draws > 1).mean()
    assert abs(above - 0.5) < 5 * np.sqrt(0.25 / len(draws))
    # |log s| = log U(1, 1.5), whose mean is (1.5 log 1.5 - 0.5) / 0.5
    logs = np.log(draws)
    expected = 1.5 * np.log(1.5) / 0.5 - 1.0
    spread = np.abs(logs).std() / np.sqrt(len(draws))
    assert abs(np.abs(logs).mean() - expected) < 5 * spread
    assert abs(logs.mean()) < 5 * logs.std() / np.sqrt(len(draws))
    assert len(np.unique(np.round(draws, 6))) > 19000


@pytest.mark.parametrize('saturation, exposure', [
    (1.0, 1.25), (0.5, 1.0), (1.4, 0.8)])
def test_hsv_scaling_against_colorsys(saturation, exposure):
    """Each pixel's hue is kept and its S and V are multiplied (clipped at
    1), as colorsys computes it, up to the rounding of 8-bit HSV."""
    rng = np.random.RandomState(1)
    img = rng.randint(20, 230, size=(6, 7, 3)).astype(np.uint8)
    out = RandomExposureSaturation().scale_hsv(img, saturation, exposure)
    for bgr, got in zip(img.reshape(-1, 3), out.reshape(-1, 3)):
        h, s, v = colorsys.rgb_to_hsv(*(bgr[::-1] / 255.0))
        rgb = colorsys.hsv_to_rgb(h, min(s * saturation, 1.0),
                                  min(v * exposure, 1.0))
        expected = np.array(rgb[::-1]) * 255
        assert np.abs(got.astype(float) - expected).max() <= 4, (bgr, got)
    if saturation == 1.0:
        # exposure alone scales every channel, where V stays below 255
        kept = img.max(-1) * exposure <= 255
        assert 0 < kept.sum() < kept.size
        np.testing.assert_allclose(out[kept], img[kept] * exposure, atol=4)


def test_transform_draws_both_factors_per_image(monkeypatch):
    factors = iter([0.8, 1.2])
    monkeypatch.setattr(RandomExposureSaturation, 'random_factor',
                        staticmethod(lambda limit: next(factors)))
    img = np.full((2, 2, 3), (40, 80, 160), dtype=np.uint8)
    transform = RandomExposureSaturation(saturation=1.5, exposure=1.3)
    out = transform(dict(img=img.copy()))['img']
    np.testing.assert_array_equal(
        out, transform.scale_hsv(img, saturation=0.8, exposure=1.2))


@pytest.mark.parametrize('kwargs, key', [
    (dict(saturation=0.9), 'saturation'), (dict(exposure=float('nan')),
                                           'exposure'),
    (dict(exposure=True), 'exposure'), (dict(saturation='1.5'),
                                        'saturation')])
def test_bad_limits_are_refused(kwargs, key):
    with pytest.raises(ValueError, match=f'{key} must be a finite factor '
                       '>= 1'):
        RandomExposureSaturation(**kwargs)


def test_a_float_or_grey_image_is_refused():
    transform = RandomExposureSaturation()
    for img in (np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8)):
        with pytest.raises(ValueError, match='uint8 BGR image'):
            transform.scale_hsv(img, 1.0, 1.0)


def test_a_four_channel_image_is_refused():
    """OpenCV would read a BGRA image as BGR and hand back 3 channels,
    the alpha channel silently dropped: refused, naming the shape."""
    with pytest.raises(ValueError, match=r'uint8 BGR image of shape '
                       r'\(H, W, 3\), got uint8 \(4, 4, 4\)'):
        RandomExposureSaturation().scale_hsv(np.zeros((4, 4, 4), np.uint8),
                                             1.2, 1.2)


def test_hsv_values_are_rounded_not_truncated():
    """A grey pixel has S = 0 and V = its level, so exposure 1.25 gives
    grey rint(1.25 v): 101 -> 126.25 -> 126, 103 -> 128.75 -> 129 (128 if
    truncated), 200 -> 250, 210 -> 262.5 -> clipped to 255."""
    img = np.array([[[101] * 3, [103] * 3, [200] * 3, [210] * 3]], np.uint8)
    out = RandomExposureSaturation().scale_hsv(img, 1.0, 1.25)
    np.testing.assert_array_equal(out[0, :, 0], [126, 129, 250, 255])
    np.testing.assert_array_equal(out, out[..., :1].repeat(3, axis=-1))


def test_each_limit_draws_only_its_own_factor():
    """exposure=1 draws V's factor from U(1, 1) = 1: V = max(B, G, R) of
    every pixel is kept while S changes with saturation=1.5. The reverse:
    saturation=1 with exposure=1.5 leaves a grey image grey (S = 0) but
    moves its level 128 within [rint(128 / 1.5), 128 * 1.5] = [85, 192]."""
    img = np.random.RandomState(0).randint(0, 256, (8, 8, 3)).astype(
        np.uint8)
    grey = np.full((2, 2, 3), 128, np.uint8)
    np.random.seed(0)
    saturation_only = RandomExposureSaturation(saturation=1.5, exposure=1.0)
    exposure_only = RandomExposureSaturation(saturation=1.0, exposure=1.5)
    levels = []
    for _ in range(10):
        out = saturation_only(dict(img=img.copy()))['img']
        np.testing.assert_array_equal(out.max(-1), img.max(-1))
        assert not np.array_equal(out, img)
        out = exposure_only(dict(img=grey.copy()))['img']
        assert (out == out[0, 0, 0]).all()
        levels.append(int(out[0, 0, 0]))
    assert 85 <= min(levels) and max(levels) <= 192
    assert len(set(levels)) > 5


def test_the_yolov1_voc_pipeline_uses_it_in_place_of_mmdets_magnitudes():
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'yolov1', 'yolov1_darknet24_1xb64-135e_'
        'voc0712.py'))
    types = [step['type'] for step in cfg.train_pipeline]
    assert 'Brightness' not in types and 'Color' not in types
    [step] = [s for s in cfg.train_pipeline
              if s['type'] == 'RandomExposureSaturation']
    assert (step['saturation'], step['exposure']) == (1.5, 1.5)
    assert types.index('RandomExposureSaturation') < types.index('Resize')


def jitter_results(img, boxes, labels):
    from mmdet.structures.bbox import HorizontalBoxes
    return dict(img=img, img_shape=img.shape[:2],
                gt_bboxes=HorizontalBoxes(np.array(boxes, np.float32)),
                gt_bboxes_labels=np.array(labels, np.int64),
                gt_ignore_flags=np.zeros(len(labels), bool))


def test_jitter_crop_by_hand(monkeypatch):
    """A 10 x 8 image (width 10, height 8); the crop moves the left side
    in by 2, the top out by 1, the right side out by 1 and the bottom in
    by 3: columns 2..10 (10 repeats column 9), rows -1..4 (-1 repeats
    row 0), so the crop is 9 wide and 6 high. Boxes shift by (-2, +1) and
    are clipped to it; one that ends up 0.02 px high is dropped."""
    img = np.arange(8 * 10 * 3, dtype=np.uint8).reshape(8, 10, 3)
    crop = RandomJitterCrop(jitter=0.3)
    monkeypatch.setattr(crop, 'random_offsets', lambda w, h: (2, -1, -1, 3))
    results = jitter_results(
        img, [[1, 1, 5, 3], [6, 4.98, 9, 7], [0, 0, 1.5, 1]], [3, 4, 5])
    results['gt_ignore_flags'] = np.array([True, False, False])
    results = crop.transform(results)
    rows = [0, 0, 1, 2, 3, 4]
    cols = [2, 3, 4, 5, 6, 7, 8, 9, 9]
    expected = img[rows][:, cols]
    assert results['img'].shape == (6, 9, 3) == expected.shape
    np.testing.assert_array_equal(results['img'], expected)
    assert results['img_shape'] == (6, 9)
    # box 0 -> (-1, 2, 3, 4) -> clipped (0, 2, 3, 4); box 1 -> (4, 5.98,
    # 7, 8) -> (4, 5.98, 7, 6): 0.02 high < 0.005 * 6, dropped; box 2 ->
    # (-2, 1, -0.5, 2) -> (0, 1, 0, 2): no width, dropped
    np.testing.assert_allclose(results['gt_bboxes'].numpy(),
                               [[0, 2, 3, 4]])
    assert results['gt_bboxes_labels'].tolist() == [3]
    assert results['gt_ignore_flags'].tolist() == [True]
    # The shift recorded as mmdet's RandomCrop records it: the original
    # corner (1, 1) of box 0 is at (-1, 2) in the crop.
    np.testing.assert_allclose(
        results['homography_matrix'] @ np.array([1, 1, 1]), [-1, 2, 1])


def test_jitter_crop_keeps_boxes_exactly_at_the_threshold():
    """A 200 x 1000 crop (height 200, width 1000, no jitter): boxes
    narrower than 0.005 * 1000 = 5 px or lower than 0.005 * 200 = 1 px
    are dropped, those exactly 5 px wide or 1 px high kept (all sizes
    exact in float32). The 2 px high box is kept: 2 < 5 would drop it if
    the height were held to the width's threshold."""
    boxes = [[10, 10, 15, 100],       # 5 wide: kept
             [10, 10, 14.9375, 100],  # 4.9375 wide: dropped
             [10, 10, 100, 11],       # 1 high: kept
             [10, 10, 100, 10.9375],  # 0.9375 high: dropped
             [10, 10, 100, 12]]       # 2 high: kept
    results = RandomJitterCrop(jitter=0.0).transform(jitter_results(
        np.zeros((200, 1000, 3), np.uint8), boxes, [0, 1, 2, 3, 4]))
    assert results['img'].shape == (200, 1000, 3)
    assert results['gt_bboxes_labels'].tolist() == [0, 2, 4]
    np.testing.assert_array_equal(results['gt_bboxes'].numpy(),
                                  np.array(boxes, np.float32)[[0, 2, 4]])
    assert results['gt_ignore_flags'].tolist() == [False] * 3


def test_jitter_crop_composes_an_earlier_homography(monkeypatch):
    """After a transform that scaled by 2, a point p of the original image
    is at 2 p, and at 2 p - (left, top) after the crop."""
    crop = RandomJitterCrop()
    monkeypatch.setattr(crop, 'random_offsets', lambda w, h: (3, 1, 0, 0))
    results = jitter_results(np.zeros((8, 10, 3), np.uint8), [[1, 1, 5, 3]],
                             [0])
    results['homography_matrix'] = np.diag([2.0, 2.0, 1.0]).astype(
        np.float32)
    results = crop.transform(results)
    np.testing.assert_allclose(
        results['homography_matrix'] @ np.array([4, 2, 1]), [5, 3, 1])


def test_jitter_crop_names_boxes_that_are_not_box_objects():
    """``LoadAnnotations(box_type=None)`` gives a numpy array, which has no
    ``translate_``: named instead of an AttributeError."""
    results = jitter_results(np.zeros((8, 10, 3), np.uint8), [[1, 1, 5, 3]],
                             [0])
    results['gt_bboxes'] = results['gt_bboxes'].numpy()
    with pytest.raises(TypeError, match="box_type='hbox'"):
        RandomJitterCrop().transform(results)


def test_jitter_offsets_are_darknets_draws():
    """Each side independently from (int)U(-d, d), d = int(0.2 * size):
    within [-d, d] (only the truncation reaches 0 from both sides), all
    four sides uncorrelated, mean 0."""
    crop = RandomJitterCrop(jitter=0.2)
    np.random.seed(0)
    draws = np.array([crop.random_offsets(448, 375) for _ in range(20000)])
    dw, dh = int(448 * 0.2), int(375 * 0.2)  # 89, 75
    for side, d in zip(range(4), (dw, dh, dw, dh)):
        assert draws[:, side].min() >= -d and draws[:, side].max() <= d
        assert draws[:, side].min() <= -d + 1 and draws[:, side].max() >= d - 1
        # mean 0 within 5 standard errors (sd of U(-d, d) is d / sqrt 3)
        assert abs(draws[:, side].mean()) < 5 * d / np.sqrt(3 * 20000)
        # truncation towards zero: 0 takes twice a value's share
        share = np.mean(draws[:, side] == 0)
        assert abs(share - 1 / d) < 5 * np.sqrt(1 / d / 20000)
    corr = np.corrcoef(draws.T)
    assert np.all(np.abs(corr - np.eye(4)) < 0.05)


def test_jitter_crop_refuses_masks_it_would_not_move():
    img = np.zeros((8, 10, 3), np.uint8)
    for key in ('gt_masks', 'gt_seg_map'):
        results = jitter_results(img, [[1, 1, 5, 3]], [0])
        results[key] = np.zeros((8, 10), np.uint8)
        with pytest.raises(ValueError, match=f'results hold {key}'):
            RandomJitterCrop().transform(results)


@pytest.mark.parametrize('jitter', [-0.1, 0.5, float('nan'), True, '0.2'])
def test_a_jitter_outside_its_range_is_refused(jitter):
    with pytest.raises(ValueError, match='jitter must be in'):
        RandomJitterCrop(jitter=jitter)


def test_the_yolov1_voc_pipeline_crops_as_darknet_does():
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'yolov1', 'yolov1_darknet24_1xb64-135e_'
        'voc0712.py'))
    types = [step['type'] for step in cfg.train_pipeline]
    assert 'RandomAffine' not in types
    assert types.index('RandomJitterCrop') < types.index('Resize') == 4
    [step] = [s for s in cfg.train_pipeline
              if s['type'] == 'RandomJitterCrop']
    assert step['jitter'] == 0.2
