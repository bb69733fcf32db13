# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""Render one demo image: real handwritten digits on a cluttered background.

The digits are the 8x8 scans of ``sklearn.datasets.load_digits`` (values
0..16), upscaled with cubic interpolation and turned into an ink opacity map
whose threshold sets the stroke thickness. Boxes are the extent of the pixels
whose opacity reaches :data:`INK_THRESHOLD`, so every box is tight on ink.
Everything here is deterministic given a ``numpy.random.RandomState``.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

# Opacity at which a pixel counts as ink: boxes span exactly these pixels.
INK_THRESHOLD = 0.5
# Width of the opacity ramp across the threshold (in scan units, 1 = 16).
INK_RAMP = 0.18
# Fewest ink pixels across a box, either way: VOC readers such as mmdet's
# subtract 1 from xmin and xmax alike, so a box one pixel across has zero
# width for them.
MIN_BOX_SIDE = 2


def digit_sprite(scan: np.ndarray, height: float, aspect: float,
                 threshold: float, angle: float) -> np.ndarray:
    """Upscale one 8x8 scan into an ink opacity map.

    Args:
        scan (np.ndarray): Scan ``[8, 8]`` with values in ``[0, 16]``.
        height (float): Height in pixels that the 8 scan rows cover.
        aspect (float): Width / height stretch of the scan.
        threshold (float): Scan level (in ``[0, 1]``) at the middle of the
            opacity ramp; lower gives thicker strokes.
        angle (float): Rotation in degrees, counter-clockwise.

    Returns:
        np.ndarray: Opacity ``[h, w]`` (float32 in ``[0, 1]``), cropped to
        its non-zero pixels.
    """
    # Two empty cells around the scan keep the rotated strokes inside.
    padded = np.pad(scan.astype(np.float32) / 16.0, 2)  # [12, 12]
    cell = height / 8.0
    out_h = max(int(round(12 * cell)), 12)
    out_w = max(int(round(12 * cell * aspect)), 12)
    level = cv2.resize(padded, (out_w, out_h), interpolation=cv2.INTER_CUBIC)
    # Cubic upscaling of 8x8 blocks leaves corners; a blur of about a third
    # of a cell rounds them into strokes.
    level = cv2.GaussianBlur(level, (0, 0), sigmaX=max(cell * 0.35, 0.5))
    if angle:
        matrix = cv2.getRotationMatrix2D((out_w / 2, out_h / 2), angle, 1.0)
        level = cv2.warpAffine(level, matrix, (out_w, out_h),
                               flags=cv2.INTER_LINEAR, borderValue=0)
    alpha = np.clip((level - threshold) / INK_RAMP + 0.5, 0, 1)
    rows = np.flatnonzero(alpha.max(axis=1) > 0)
    cols = np.flatnonzero(alpha.max(axis=0) > 0)
    return alpha[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def ink_box(alpha: np.ndarray) -> Tuple[int, int, int, int]:
    """``(x1, y1, x2, y2)`` inclusive extent of the ink pixels of ``alpha``.

    Raises ``ValueError`` if ``alpha`` holds no ink.
    """
    ink = alpha >= INK_THRESHOLD
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        raise ValueError('sprite holds no ink pixel')
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def render_background(height: int, width: int,
                      rng: np.random.RandomState) -> np.ndarray:
    """Textured, cluttered paper: tint, smooth texture, gradient, long
    lines, soft blobs, specks and sensor noise.

    The clutter is built to look unlike digits: lines are long (at least
    half the image) and straight, blobs are filled and blurred.

    Args:
        height (int): Image height.
        width (int): Image width.
        rng (np.random.RandomState): Random state.

    Returns:
        np.ndarray: Background ``[height, width, 3]`` float32 in BGR.
    """
    side = min(height, width)
    base = rng.uniform(150, 230) + rng.uniform(-18, 18, size=3)
    image = np.empty((height, width, 3), np.float32)
    image[:] = base
    # Smooth texture: mostly brightness, a little colour.
    grid = rng.normal(0, 1, size=(rng.randint(3, 9), rng.randint(3, 9), 3))
    grid = grid[..., :1] * rng.uniform(6, 22) + grid * rng.uniform(0, 8)
    image += cv2.resize(grid.astype(np.float32), (width, height),
                        interpolation=cv2.INTER_CUBIC)
    direction = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(direction) * xs / width + np.sin(direction) * ys / height)
    image += (ramp * rng.uniform(-30, 30))[..., None]

    blobs = np.zeros_like(image)
    coverage = np.zeros((height, width), np.float32)
    for _ in range(rng.randint(1, 6)):
        centre = (int(rng.randint(width)), int(rng.randint(height)))
        axes = (int(rng.randint(3, side // 7)), int(rng.randint(3, side // 7)))
        colour = tuple(float(c) for c in base + rng.uniform(-70, 40, 3))
        cv2.ellipse(blobs, centre, axes, rng.uniform(0, 180), 0, 360, colour,
                    -1)
        cv2.ellipse(coverage, centre, axes, 0, 0, 360,
                    float(rng.uniform(0.25, 0.7)), -1)
    sigma = rng.uniform(1.0, 3.0)
    blobs = cv2.GaussianBlur(blobs, (0, 0), sigma)
    coverage = cv2.GaussianBlur(coverage, (0, 0), sigma)[..., None]
    image = image * (1 - coverage) + blobs * coverage

    for _ in range(rng.randint(1, 6)):
        length = rng.uniform(0.5, 1.2) * side
        theta = rng.uniform(0, np.pi)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        dx, dy = np.cos(theta) * length / 2, np.sin(theta) * length / 2
        colour = tuple(float(c) for c in base + rng.uniform(-100, 30, 3))
        cv2.line(image, (int(cx - dx), int(cy - dy)),
                 (int(cx + dx), int(cy + dy)), colour,
                 int(rng.randint(1, 3)), cv2.LINE_AA)

    num_specks = rng.randint(0, side // 4)
    speck_y = rng.randint(0, height, size=num_specks)
    speck_x = rng.randint(0, width, size=num_specks)
    image[speck_y, speck_x] -= rng.uniform(20, 80, size=(num_specks, 1))
    image += rng.normal(0, rng.uniform(2, 7), size=image.shape)
    return np.clip(image, 0, 255).astype(np.float32)


def box_overlap(a: Sequence[int], b: Sequence[int]) -> float:
    """Intersection over the smaller area of two inclusive pixel boxes
    ``(x1, y1, x2, y2)``; 1.0 when one box lies inside the other.

    Unlike IoU this also bounds a small digit hidden inside a large one.
    """
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return iw * ih / min(area_a, area_b)


def _place(box_w: int, box_h: int, image_size: Tuple[int, int],
           placed: List[Tuple[int, int, int, int]], max_overlap: float,
           overlap_prob: float,
           rng: np.random.RandomState) -> Optional[Tuple[int, int]]:
    """Top-left corner for a ``box_w`` x ``box_h`` box inside the image, or
    None when no free spot was found. With ``overlap_prob`` the box is first
    tried next to an already placed one, so a share of the digits overlap on
    purpose (still within ``max_overlap``)."""
    max_x, max_y = image_size[0] - box_w, image_size[1] - box_h
    if max_x < 0 or max_y < 0:
        return None
    near = bool(placed) and rng.uniform() < overlap_prob
    for attempt in range(60):
        if near and attempt < 30:
            anchor = placed[rng.randint(len(placed))]
            x = anchor[0] + int(rng.uniform(-0.9, 0.9) * box_w)
            y = anchor[1] + int(rng.uniform(-0.9, 0.9) * box_h)
            if not (0 <= x <= max_x and 0 <= y <= max_y):
                continue
        else:
            x, y = int(rng.randint(0, max_x + 1)), int(
                rng.randint(0, max_y + 1))
        box = (x, y, x + box_w - 1, y + box_h - 1)
        if all(box_overlap(box, other) <= max_overlap for other in placed):
            return x, y
    return None


def compose_image(scans: Sequence[np.ndarray], image_size: Tuple[int, int],
                  digit_size: Tuple[float, float], max_overlap: float,
                  overlap_prob: float,
                  rng: np.random.RandomState) -> Dict[str, object]:
    """Composite ``scans`` onto a fresh background.

    Args:
        scans (Sequence[np.ndarray]): 8x8 scans, one per digit, in order.
        image_size (tuple[int, int]): ``(width, height)``.
        digit_size (tuple[float, float]): Range of the scan height as a
            fraction of the shorter image side, sampled log-uniformly.
        max_overlap (float): Largest intersection over the smaller box area
            between any two digits.
        overlap_prob (float): Chance that a digit is first tried next to an
            already placed one.
        rng (np.random.RandomState): Random state.

    Returns:
        dict: ``image`` (uint8 ``[H, W, 3]`` BGR), ``background`` (float32
        ``[H, W, 3]``, the image before any digit), ``boxes`` (list of
        inclusive ``(x1, y1, x2, y2)``) and ``ink_masks`` (list of bool
        ``[H, W]``, the pixels each box was computed from).
    """
    width, height = image_size
    side = min(width, height)
    background = render_background(height, width, rng)
    image = background.copy()
    boxes, masks = [], []
    for scan in scans:
        scale = np.exp(rng.uniform(*np.log(digit_size))) * side
        aspect = rng.uniform(0.8, 1.2)
        threshold = rng.uniform(0.33, 0.6)
        angle = rng.uniform(-12, 12)
        opacity = rng.uniform(0.75, 1.0)
        darkness = rng.uniform(90, 170)
        tint = rng.uniform(-25, 25, size=3)
        for _ in range(20):
            alpha = digit_sprite(scan, scale, aspect, threshold, angle)
            x1, y1, x2, y2 = ink_box(alpha)
            box_w, box_h = x2 - x1 + 1, y2 - y1 + 1
            if min(box_w, box_h) < MIN_BOX_SIDE:
                # Too little ink for a box: a larger copy. Below 8 pixels
                # (one per scan row) the sprite does not shrink further.
                scale = max(scale, 8.0) / 0.85
                continue
            corner = _place(box_w, box_h, image_size, boxes, max_overlap,
                            overlap_prob, rng)
            if corner is not None:
                break
            # Crowded image: a smaller copy of the same scan fits somewhere.
            scale *= 0.85
        else:
            # Settings that each pass their checks but do not fit together
            # (many large digits on a small image): named like a bad one.
            raise ValueError(
                f'could not place digit {len(boxes) + 1} of {len(scans)} on '
                f'a {image_size[0]}x{image_size[1]} image (digit_size '
                f'{digit_size}, max_overlap {max_overlap}); lower '
                'digit_size or digits_per_image, or raise image_size')
        # Sprite origin in the image; only sub-threshold halo may fall
        # outside, since the ink box itself was placed inside.
        ox, oy = corner[0] - x1, corner[1] - y1
        sy0, sx0 = max(0, -oy), max(0, -ox)
        sy1 = min(alpha.shape[0], height - oy)
        sx1 = min(alpha.shape[1], width - ox)
        crop = alpha[sy0:sy1, sx0:sx1, None] * opacity
        region = image[oy + sy0:oy + sy1, ox + sx0:ox + sx1]
        # Ink darker than the paper it lands on, so every digit stays
        # visible even over a dark blob.
        paper = background[oy + sy0:oy + sy1, ox + sx0:ox + sx1].mean((0, 1))
        ink = np.clip(paper - darkness + tint, 0, 255).astype(np.float32)
        region[:] = region * (1 - crop) + ink * crop
        mask = np.zeros((height, width), bool)
        mask[oy + sy0:oy + sy1, ox + sx0:ox + sx1] = \
            alpha[sy0:sy1, sx0:sx1] >= INK_THRESHOLD
        boxes.append((corner[0], corner[1], corner[0] + box_w - 1,
                      corner[1] + box_h - 1))
        masks.append(mask)
    return dict(
        image=np.clip(np.rint(image), 0, 255).astype(np.uint8),
        background=background,
        boxes=boxes,
        ink_masks=masks)
