# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Rendering of the digits demo set, piece by piece, against hand-worked
numbers: sprite sizes, ink boxes, the overlap measure and placement."""
import numpy as np
import pytest

from mmdet_slf.demo_data.digits_render import (_place, box_overlap,
                                               compose_image, digit_sprite,
                                               ink_box)
from mmdet_slf.demo_data.digits_voc import load_digit_scans

# A scan of full ink and one of a vertical bar two columns wide.
SOLID = np.full((8, 8), 16.0)
BAR = np.zeros((8, 8))
BAR[:, 3:5] = 16


def box_size(alpha):
    x1, y1, x2, y2 = ink_box(alpha)
    return x2 - x1 + 1, y2 - y1 + 1


def test_ink_box_is_the_extent_of_pixels_at_the_threshold():
    """Opacity 0.5 counts as ink, 0.49 does not; the box is inclusive
    ``(x1, y1, x2, y2)``; a map without ink is refused."""
    alpha = np.zeros((6, 7), np.float32)
    alpha[0, 0] = 0.49
    alpha[1, 2] = 0.5
    alpha[3, 4] = 0.9
    alpha[5, 6] = 0.3
    assert ink_box(alpha) == (2, 1, 4, 3)
    with pytest.raises(ValueError, match='no ink'):
        ink_box(np.full((4, 4), 0.49, np.float32))


def test_sprite_size_follows_height_and_aspect():
    """Eight scan rows span ``height`` pixels: a full scan at height 32 and
    threshold 0.5 is a 32 x 32 ink box (4 px per scan cell), 64 wide when
    stretched by aspect 2."""
    assert box_size(digit_sprite(SOLID, 32, 1.0, 0.5, 0)) == (32, 32)
    assert box_size(digit_sprite(SOLID, 32, 2.0, 0.5, 0)) == (64, 32)


def test_sprite_rotation_turns_a_vertical_bar_horizontal():
    """A bar two scan columns wide is 2 x 4 = 8 px wide and 32 tall; turned
    by 90 degrees it is 32 wide and 8 tall."""
    assert box_size(digit_sprite(BAR, 32, 1.0, 0.5, 0)) == (8, 32)
    assert box_size(digit_sprite(BAR, 32, 1.0, 0.5, 90)) == (32, 8)


@pytest.mark.parametrize('a, b, expected', [
    # 5 x 5 common pixels over the smaller area 10 x 10.
    ((0, 0, 9, 9), (5, 5, 14, 24), 0.25),
    # One box inside the other.
    ((2, 2, 3, 3), (0, 0, 9, 9), 1.0),
    # Side by side, no common pixel (inclusive boxes).
    ((0, 0, 4, 4), (5, 0, 9, 4), 0.0),
    # One shared column: 1 x 5 pixels of 25.
    ((0, 0, 4, 4), (4, 0, 8, 4), 0.2),
    # Apart along x though level along y, and the other way round.
    ((0, 0, 4, 4), (10, 2, 14, 6), 0.0),
    ((0, 0, 4, 4), (2, 10, 6, 14), 0.0),
    # Apart along both axes.
    ((0, 0, 4, 4), (10, 10, 14, 14), 0.0),
])
def test_box_overlap_over_the_smaller_area(a, b, expected):
    assert box_overlap(a, b) == pytest.approx(expected)
    assert box_overlap(b, a) == pytest.approx(expected)


def test_place_finds_the_only_free_spot_and_refuses_oversized_boxes():
    """In a 20 x 10 image with pixels 15..19 taken, a 15 x 10 box fits only
    at x = 0, touching but not overlapping (overlap 0 is allowed at
    ``max_overlap=0``). A box wider or taller than the image has no spot."""
    taken = [(15, 0, 19, 9)]
    rng = np.random.RandomState(0)
    assert _place(15, 10, (20, 10), taken, 0.0, 0.0, rng) == (0, 0)
    assert _place(200, 10, (100, 100), [], 0.25, 0.0, rng) is None
    assert _place(10, 200, (100, 100), [], 0.25, 0.0, rng) is None


def test_digit_height_is_a_share_of_the_shorter_side():
    """digit_size 0.5 on a 256 x 64 image: the 8 scan rows span 0.5 * 64
    = 32 px, so no ink box is taller than 32. The ink is darker than the
    paper under it (darkness >= 90 at opacity >= 0.75)."""
    scans, _ = load_digit_scans()
    for seed in range(4):
        out = compose_image([scans[0]], (256, 64), (0.5, 0.5), 0.25, 0.3,
                            np.random.RandomState(seed))
        x1, y1, x2, y2 = out['boxes'][0]
        assert 20 <= y2 - y1 + 1 <= 32
        mask = out['ink_masks'][0]
        darker = out['background'][mask] - out['image'][mask]
        assert darker.mean() > 20
