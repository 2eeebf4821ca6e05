"""Optic-disc region of a full fundus image: a fixed-size crop around the brightest point.

The paper crops 800 x 800 around the brightest point before resizing (ORIGA, Messidor). A
single hot pixel (reflection, exudate) must not win, so the luminance is smoothed with a
Gaussian of `sigma` pixels first; the search runs on a downsampled copy for speed. The crop is
shifted to lie inside the image, and is the whole extent along axes shorter than the crop.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

_SEARCH_LONG_SIDE = 256  # the brightest point is searched on a copy this size (long side)


def brightest_point(image: np.ndarray, sigma: float) -> tuple[int, int]:
    """(row, col) of the maximum of the Gaussian-smoothed luminance of a uint8 (H, W, 3) image."""
    height, width = image.shape[:2]
    factor = max(1.0, max(height, width) / _SEARCH_LONG_SIDE)
    small_size = (max(1, round(width / factor)), max(1, round(height / factor)))
    luminance = Image.fromarray(image).convert('L').resize(small_size, Image.Resampling.BOX)
    if sigma > 0:
        luminance = luminance.filter(ImageFilter.GaussianBlur(radius=sigma / factor))
    small = np.asarray(luminance)
    row, col = np.unravel_index(int(np.argmax(small)), small.shape)
    return (min(height - 1, int((row + 0.5) * height / small.shape[0])),
            min(width - 1, int((col + 0.5) * width / small.shape[1])))


def crop_box(center: tuple[int, int], size: int, image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a size x size window centred on `center`, clamped to the image."""
    def span(middle: int, extent: int) -> tuple[int, int]:
        if extent <= size:
            return 0, extent
        start = min(max(0, middle - size // 2), extent - size)
        return start, start + size
    top, bottom = span(center[0], image_hw[0])
    left, right = span(center[1], image_hw[1])
    return top, left, bottom, right


def disc_crop_box(image: np.ndarray, size: int, sigma: float) -> tuple[int, int, int, int]:
    """Crop window (top, left, bottom, right) of `size` pixels around the optic disc of `image`."""
    return crop_box(brightest_point(image, sigma), size, image.shape[:2])
