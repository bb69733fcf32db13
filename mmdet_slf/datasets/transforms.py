# Copyright (c) mmdet-slf contributors. Licensed under the Apache License 2.0.
"""YOLO's colour augmentation.

Redmon et al. (2016): "we also randomly adjust the exposure and saturation
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
