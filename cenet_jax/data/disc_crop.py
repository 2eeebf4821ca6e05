"""Optic-disc region of a full fundus image: a fixed-size crop around the disc.

Two ways to find the disc centre (`data.disc_locator`):
- 'brightest' (the paper): the maximum of the Gaussian-smoothed luminance. A single hot pixel
  must not win, so the luminance is smoothed with a Gaussian of `sigma` pixels first. On
  Drishti-GS1 a camera flare at the rim of the field of view wins on 5 of 101 images, and the
  800 x 800 crop then misses the disc (README.md, "Datasets").
- 'blob': the disc as a bright blob of the red channel inside the field of view, the
  difference of two Gaussians (centre 100 px against surround 400 px, in full-image pixels,
  scaled by the image's long side over 2048) in units of the FOV's red-channel std, minus a
  weak prior for the FOV centre (optic-disc-centred photographs: ORIGA, Drishti-GS1). Chosen on
  Drishti-GS1's 50 training images (every disc inside its 800 px crop, centre off by <= 32 px).
The search runs on a copy 256 px on its long side. The crop is shifted to lie inside the image,
and is the whole extent along axes shorter than the crop.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage

from cenet_jax.data.fov import derive_fov

DISC_LOCATORS = ('brightest', 'blob')
_SEARCH_LONG_SIDE = 256  # the centre is searched on a copy this size (long side)
_BLOB_REFERENCE_SIDE = 2048.0   # the blob radii below are in pixels of an image this long
_BLOB_CENTRE, _BLOB_SURROUND = 100.0, 400.0
_BLOB_CENTRE_PRIOR = 0.5        # penalty, in blob-response units, at the FOV's equivalent radius


def _search_copy(image: np.ndarray) -> tuple[Image.Image, float]:
    """A box-downsampled copy of `image` with its long side at most _SEARCH_LONG_SIDE, and the factor."""
    height, width = image.shape[:2]
    factor = max(1.0, max(height, width) / _SEARCH_LONG_SIDE)
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return Image.fromarray(image).resize(size, Image.Resampling.BOX), factor


def _to_full(point: tuple[int, int], small_hw: tuple[int, int], image_hw: tuple[int, int]) -> tuple[int, int]:
    """A (row, col) of the search copy as the pixel at the centre of its cell in the full image."""
    return (min(image_hw[0] - 1, int((point[0] + 0.5) * image_hw[0] / small_hw[0])),
            min(image_hw[1] - 1, int((point[1] + 0.5) * image_hw[1] / small_hw[1])))


def brightest_point(image: np.ndarray, sigma: float) -> tuple[int, int]:
    """(row, col) of the maximum of the Gaussian-smoothed luminance of a uint8 (H, W, 3) image."""
    small_image, factor = _search_copy(image)
    luminance = small_image.convert('L')
    if sigma > 0:
        luminance = luminance.filter(ImageFilter.GaussianBlur(radius=sigma / factor))
    small = np.asarray(luminance)
    row, col = np.unravel_index(int(np.argmax(small)), small.shape)
    return _to_full((int(row), int(col)), small.shape, image.shape[:2])


def blob_centre(image: np.ndarray) -> tuple[int, int]:
    """(row, col) of the optic disc as the strongest bright red blob inside the field of view."""
    small_image, factor = _search_copy(image)
    small = np.asarray(small_image)
    fov = derive_fov(small)
    red = small[..., 0].astype(np.float32)
    inside = red[fov]
    filled = np.where(fov, red, inside.mean())   # the dark border must not make the rim a blob
    scale = max(image.shape[:2]) / _BLOB_REFERENCE_SIDE / factor
    response = (ndimage.gaussian_filter(filled, _BLOB_CENTRE * scale)
                - ndimage.gaussian_filter(filled, _BLOB_SURROUND * scale)) / (inside.std() + 1e-6)
    rows, cols = np.nonzero(fov)
    radius_sq = fov.sum() / np.pi
    grid_r, grid_c = np.mgrid[:fov.shape[0], :fov.shape[1]]
    prior = ((grid_r - rows.mean()) ** 2 + (grid_c - cols.mean()) ** 2) / radius_sq
    score = np.where(fov, response - _BLOB_CENTRE_PRIOR * prior, -np.inf)
    row, col = np.unravel_index(int(np.argmax(score)), score.shape)
    return _to_full((int(row), int(col)), small.shape[:2], image.shape[:2])


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


def disc_crop_box(image: np.ndarray, size: int, sigma: float,
                  locator: str = 'brightest') -> tuple[int, int, int, int]:
    """Crop window (top, left, bottom, right) of `size` pixels around the optic disc of `image`."""
    if locator not in DISC_LOCATORS:
        raise ValueError(f'data.disc_locator must be one of {DISC_LOCATORS}, got {locator!r}')
    centre = brightest_point(image, sigma) if locator == 'brightest' else blob_centre(image)
    return crop_box(centre, size, image.shape[:2])


def describe_disc_crop(size: int, locator: str) -> str:
    """The disc crop in words, for logs and reports (size 0: the images are taken as they are)."""
    if size <= 0:
        return ('none (data.disc_crop_size=0): the images are taken as already cropped around the optic disc, '
                'and scored as they are')
    how = 'the brightest point, as in the paper' if locator == 'brightest' else 'a bright red blob inside the FOV'
    return (f'{size} x {size} px around the optic disc, found as {how} (data.disc_locator={locator!r}); '
            f'predictions are pasted back and scored on the whole image')
