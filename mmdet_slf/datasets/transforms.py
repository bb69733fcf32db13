# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""YOLO's augmentation: darknet's crop jitter and colour changes.

Redmon et al. (2016): "we introduce random scaling and translations of up
to 20% of the original image size". Darknet does this by moving each side
of the crop independently by up to ``jitter = 0.2`` of the image's width or
height (``load_data_region``), then squashing the crop to the input size:
:class:`RandomJitterCrop` is that crop (a ``Resize`` follows it). mmdet's
``RandomAffine`` scales about the top-left corner instead.

Colour (the same paper): "we also randomly adjust the exposure and saturation
of the image by up to a factor of 1.5 in the HSV color space". Darknet draws
each factor as ``s ~ U(1, 1.5)``, then uses ``s`` or ``1 / s`` with equal
odds (``rand_scale``), and multiplies the HSV image's S and V channels by
them. mmdet's ``Brightness`` and ``Color`` with ``min_mag=1/1.5,
max_mag=1.5`` differ: they draw uniformly on a grid of 0.1 (0.7, 0.8, ...,
1.5, with 1.0 in 12% of images), brighten 54% of the images and darken 34%,
and ``Color`` blends with the grey image instead of scaling S.
"""
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import BaseBoxes

from mmdet_slf.slf.checks import is_finite_number


@TRANSFORMS.register_module()
class RandomExposureSaturation(BaseTransform):
    """Scale the saturation and the value (exposure) of an image in HSV by
    random factors in ``[1 / limit, limit]``, log-symmetric as darknet draws
    them; the hue is kept.

    Required keys: ``img`` (uint8, BGR). Modified keys: ``img``.

    Args:
        saturation (float): Largest factor on S, >= 1. Defaults to 1.5.
        exposure (float): Largest factor on V, >= 1. Defaults to 1.5.
    """

    def __init__(self, saturation: float = 1.5,
                 exposure: float = 1.5) -> None:
        for key, value in (('saturation', saturation),
                           ('exposure', exposure)):
            if not is_finite_number(value) or value < 1:
                raise ValueError(f'{key} must be a finite factor >= 1, got '
                                 f'{value!r}')
        self.saturation = float(saturation)
        self.exposure = float(exposure)

    @staticmethod
    def random_factor(limit: float) -> float:
        """``s ~ U(1, limit)``, then ``s`` or ``1 / s`` with equal odds."""
        scale = np.random.uniform(1.0, limit)
        return scale if np.random.rand() < 0.5 else 1.0 / scale

    def scale_hsv(self, img: np.ndarray, saturation: float,
                  exposure: float) -> np.ndarray:
        """``img`` with S and V multiplied by the factors (clipped)."""
        import cv2  # here: importing mmdet_slf loads no OpenCV
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError('RandomExposureSaturation takes a uint8 BGR '
                             f'image of shape (H, W, 3), got {img.dtype} '
                             f'{img.shape}')
        hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.float32)
        hsv[..., 1] *= saturation
        hsv[..., 2] *= exposure
        hsv = np.clip(np.rint(hsv), 0, 255).astype(np.uint8)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)

    def transform(self, results: dict) -> dict:
        saturation = self.random_factor(self.saturation)
        exposure = self.random_factor(self.exposure)
        results['img'] = self.scale_hsv(results['img'], saturation, exposure)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(saturation={self.saturation}, '
                f'exposure={self.exposure})')


@TRANSFORMS.register_module()
class RandomJitterCrop(BaseTransform):
    """Darknet's crop jitter: each side of the image moves by an integer
    offset drawn from ``U(-jitter * size, jitter * size)`` (inwards for a
    positive offset), independently of the others; the crop reaches past
    the image by repeating its edge pixels, as darknet's ``crop_image``
    does. Boxes move with the crop, are clipped to it, and those left
    narrower or lower than 0.005 of it are dropped (darknet's
    ``correct_boxes`` and ``fill_truth_region``; later darknets drop them
    below 0.001). The crop keeps its own size; a ``Resize`` after it
    squashes it to the input size, as darknet does.

    Required keys: ``img``, ``gt_bboxes``, ``gt_bboxes_labels``,
    ``gt_ignore_flags`` (the last three optional; boxes as mmdet box
    objects). Modified keys: ``img``, ``img_shape`` and those three. Added
    or updated: ``homography_matrix``, the crop's shift composed with any
    earlier one, as mmdet's ``RandomCrop`` records it.

    Args:
        jitter (float): Largest offset of a side, as a share of the image's
            width (left, right) or height (top, bottom); in [0, 0.5).
            Defaults to 0.2.
    """

    def __init__(self, jitter: float = 0.2) -> None:
        if not is_finite_number(jitter) or not 0 <= jitter < 0.5:
            raise ValueError(f'jitter must be in [0, 0.5) (two sides moved '
                             f'by half the image leave nothing), got '
                             f'{jitter!r}')
        self.jitter = float(jitter)

    def random_offsets(self, width: int, height: int) -> tuple:
        """``(left, top, right, bottom)``, truncated to integers as
        darknet's ``(int)rand_uniform(-d, d)`` truncates them."""
        dw, dh = int(width * self.jitter), int(height * self.jitter)
        return tuple(int(np.random.uniform(-d, d)) for d in (dw, dh, dw, dh))

    @staticmethod
    def crop(img: np.ndarray, left: int, top: int, right: int,
             bottom: int) -> np.ndarray:
        """The crop ``[left, width - right) x [top, height - bottom)``,
        with the edge pixels repeated where it leaves the image."""
        height, width = img.shape[:2]
        rows = np.clip(np.arange(top, height - bottom), 0, height - 1)
        cols = np.clip(np.arange(left, width - right), 0, width - 1)
        return img[rows[:, None], cols[None, :]]

    def transform(self, results: dict) -> dict:
        for key in ('gt_masks', 'gt_seg_map'):
            if results.get(key) is not None:
                raise ValueError(f'RandomJitterCrop moves boxes only; the '
                                 f'results hold {key}, which it would leave '
                                 'out of step with the image')
        boxes = results.get('gt_bboxes')
        if boxes is not None and not isinstance(boxes, BaseBoxes):
            raise TypeError(
                'RandomJitterCrop needs gt_bboxes as mmdet box objects, got '
                f'{type(boxes).__name__}; load them with LoadAnnotations '
                "and its default box_type='hbox'")
        img = results['img']
        height, width = img.shape[:2]
        left, top, right, bottom = self.random_offsets(width, height)
        img = self.crop(img, left, top, right, bottom)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        # The crop moves every point by (-left, -top), as mmdet's RandomCrop
        # records it (for transforms and evaluators that map boxes back).
        shift = np.array([[1, 0, -left], [0, 1, -top], [0, 0, 1]],
                         dtype=np.float32)
        if results.get('homography_matrix') is None:
            results['homography_matrix'] = shift
        else:
            results['homography_matrix'] = shift @ results[
                'homography_matrix']
        if boxes is not None:
            boxes.translate_([-left, -top])
            boxes.clip_(img.shape[:2])
            keep = ((boxes.widths >= 0.005 * img.shape[1])
                    & (boxes.heights >= 0.005 * img.shape[0])).numpy()
            results['gt_bboxes'] = boxes[keep]
            for key in ('gt_bboxes_labels', 'gt_ignore_flags'):
                if key in results:
                    results[key] = results[key][keep]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(jitter={self.jitter})'
