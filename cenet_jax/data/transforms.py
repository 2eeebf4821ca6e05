"""Resizing, training augmentation (Section III-A of the paper) and input normalisation.

Geometric operations act identically on image, label and FOV: bilinear (antialiased) for the
image, nearest for label and FOV. Augmentation, each part switchable: the 8 dihedral flips
(horizontal, vertical, and the diagonal transpose when the model input is square), one affine
warp for scale 0.9-1.1 (optionally aspect) plus random shift, and HSV colour jitter. All
randomness comes from the `np.random.Generator` that grain's `random_map` derives from the
dataset seed and the element index, so a resumed run sees exactly the same samples.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np
from PIL import Image

NORMALIZATIONS = ('reference', 'imagenet')
CHANNEL_ORDERS = ('rgb', 'bgr')
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
_PIL_HUE_UNITS_PER_DEGREE = 256.0 / 360.0


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
    """Training augmentation settings (defaults: the paper's list with the reference code's ranges).

    Probabilities are per sample; `shift` is a fraction of the image size; `hue_shift` is in
    degrees, `saturation_shift` / `value_shift` in 8-bit units (the reference: ±30 OpenCV hue
    units = ±60 degrees, ±5 saturation, ±15 value, each applied with probability 0.5).
    """
    enabled: bool = True
    hflip: bool = True
    vflip: bool = True
    transpose: bool = True
    affine_prob: float = 0.5
    scale: tuple[float, float] = (0.9, 1.1)
    aspect: tuple[float, float] = (1.0, 1.0)
    shift: float = 0.1
    hsv_prob: float = 0.5
    hue_shift: float = 60.0
    saturation_shift: float = 5.0
    value_shift: float = 15.0


def resize_image(image: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, 3) image resized to `image_hw` with antialiased bilinear filtering."""
    if image.shape[:2] == tuple(image_hw):
        return image
    resized = Image.fromarray(image).resize((image_hw[1], image_hw[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def resize_mask(mask: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """Label / FOV map resized to `image_hw` with nearest-neighbour sampling (dtype kept)."""
    if mask.shape[:2] == tuple(image_hw):
        return mask
    resized = Image.fromarray(mask.astype(np.uint8)).resize((image_hw[1], image_hw[0]), Image.Resampling.NEAREST)
    return np.asarray(resized).astype(mask.dtype)


def dihedral(arrays: tuple[np.ndarray, ...], rng: np.random.Generator, spec: AugmentSpec) -> tuple[np.ndarray, ...]:
    """Apply one random element of the flip group to all arrays alike (transpose only if square)."""
    height, width = arrays[0].shape[:2]
    flip_h = spec.hflip and rng.random() < 0.5
    flip_v = spec.vflip and rng.random() < 0.5
    swap = spec.transpose and height == width and rng.random() < 0.5
    out = []
    for array in arrays:
        if flip_h:
            array = array[:, ::-1]
        if flip_v:
            array = array[::-1]
        if swap:
            array = array.swapaxes(0, 1)
        out.append(np.ascontiguousarray(array))
    return tuple(out)


def random_affine(rng: np.random.Generator, spec: AugmentSpec, image_hw: tuple[int, int]) -> tuple[float, ...] | None:
    """PIL AFFINE coefficients (output -> input) of a random zoom/aspect/shift about the centre,
    or None when this sample is not warped."""
    if rng.random() >= spec.affine_prob:
        return None
    height, width = image_hw
    scale = rng.uniform(*spec.scale)
    aspect = rng.uniform(*spec.aspect)
    scale_x, scale_y = scale * math.sqrt(aspect), scale / math.sqrt(aspect)
    shift_x = round(rng.uniform(-spec.shift, spec.shift) * width)
    shift_y = round(rng.uniform(-spec.shift, spec.shift) * height)
    cx, cy = width / 2.0, height / 2.0
    # forward: out = scale * (in - c) + c + shift  =>  in = (out - c - shift) / scale + c
    return (1.0 / scale_x, 0.0, cx - (cx + shift_x) / scale_x,
            0.0, 1.0 / scale_y, cy - (cy + shift_y) / scale_y)


def warp(image: np.ndarray, label: np.ndarray, fov: np.ndarray,
         coefficients: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply one affine warp to image (bilinear), label and FOV (nearest); outside is 0 / False."""
    size = (image.shape[1], image.shape[0])

    def apply(array: np.ndarray, resample: Image.Resampling) -> np.ndarray:
        return np.asarray(Image.fromarray(array).transform(size, Image.Transform.AFFINE, coefficients, resample,
                                                           fillcolor=0))
    warped_label = apply(label.astype(np.uint8), Image.Resampling.NEAREST).astype(label.dtype)
    warped_fov = apply(fov.astype(np.uint8), Image.Resampling.NEAREST).astype(fov.dtype)
    return apply(image, Image.Resampling.BILINEAR), warped_label, warped_fov


def _is_grey(image: np.ndarray) -> bool:
    """True when all three channels are equal (grayscale replicated to RGB)."""
    return bool(np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 1], image[:, :, 2]))


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, spec: AugmentSpec) -> np.ndarray:
    """Random additive hue / saturation / value shift of a uint8 RGB image (value only for grey
    images, so grayscale data stays grayscale). Per-band lookup tables, applied by PIL in C."""
    if rng.random() >= spec.hsv_prob:
        return image
    hue = int(round(rng.uniform(-spec.hue_shift, spec.hue_shift) * _PIL_HUE_UNITS_PER_DEGREE))
    saturation = rng.uniform(-spec.saturation_shift, spec.saturation_shift)
    value = rng.uniform(-spec.value_shift, spec.value_shift)
    levels = np.arange(256, dtype=np.float32)

    def shifted(shift: float) -> list[int]:
        return np.clip(np.rint(levels + shift), 0, 255).astype(np.uint8).tolist()
    if _is_grey(image):
        return np.asarray(Image.fromarray(image).point(shifted(value) * 3))
    hue_table = ((np.arange(256) + hue) % 256).tolist()
    hsv = Image.fromarray(image).convert('HSV').point(hue_table + shifted(saturation) + shifted(value))
    return np.asarray(hsv.convert('RGB'))


def normalize(image: np.ndarray, normalization: str = 'reference', channel_order: str = 'rgb') -> np.ndarray:
    """uint8 (..., 3) image -> float32 model input.

    'reference' = x / 255 * 3.2 - 1.6 (the authors' code); 'imagenet' = (x / 255 - mean) / std.
    channel_order 'bgr' reverses the channels first (the reference code read images with
    OpenCV, so its released weights expect BGR); ImageNet statistics follow their channel.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f'normalization must be one of {NORMALIZATIONS}, got {normalization!r}')
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f'channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}')
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if channel_order == 'bgr':
        image, mean, std = image[..., ::-1], mean[::-1], std[::-1]
    pixels = image.astype(np.float32)
    if normalization == 'reference':
        return pixels * np.float32(3.2 / 255.0) - np.float32(1.6)
    return (pixels * np.float32(1.0 / 255.0) - mean) / std


def model_image(image: np.ndarray, image_hw: tuple[int, int], normalization: str = 'reference',
                channel_order: str = 'rgb') -> np.ndarray:
    """Model input for prediction: the uint8 image resized to `image_hw` and normalised."""
    return normalize(resize_image(image, image_hw), normalization, channel_order)


def random_crop(arrays: tuple[np.ndarray, ...], crop_hw: tuple[int, int],
                rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """The same uniformly placed (H, W) window of every array (patch training); arrays smaller
    than the window are an error, not silently padded."""
    height, width = arrays[0].shape[:2]
    crop_h, crop_w = crop_hw
    if crop_h > height or crop_w > width:
        raise ValueError(f'crop {crop_h}x{crop_w} is larger than the {height}x{width} image; '
                         'data.crop_size must fit inside data.image_size')
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    return tuple(np.ascontiguousarray(a[top:top + crop_h, left:left + crop_w]) for a in arrays)


def augment(image: np.ndarray, label: np.ndarray, fov: np.ndarray, rng: np.random.Generator,
            spec: AugmentSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flips, affine scale/shift and colour jitter on model-size uint8 arrays (image, label, fov)."""
    image, label, fov = dihedral((image, label, fov), rng, spec)
    coefficients = random_affine(rng, spec, image.shape[:2])
    if coefficients is not None:
        image, label, fov = warp(image, label, fov, coefficients)
    return hsv_jitter(image, rng, spec), label, fov


@dataclasses.dataclass(frozen=True)
class TrainTransform:
    """grain random_map callable: record -> training example {'image' float32 (H, W, 3) normalised,
    'label' int32 (H, W), 'fov' float32 (H, W)} at the model size, or, with `crop_hw`, a random
    (H, W) patch of the model-size image (patch training; prediction stays on whole images)."""
    image_hw: tuple[int, int]
    normalization: str = 'reference'
    channel_order: str = 'rgb'
    augment: AugmentSpec = AugmentSpec()
    crop_hw: tuple[int, int] | None = None

    def __call__(self, record: Mapping[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
        image = resize_image(record['image'], self.image_hw)
        label = resize_mask(record['label'].astype(np.uint8), self.image_hw)
        fov = resize_mask(record['fov'].astype(np.uint8), self.image_hw)
        if self.crop_hw is not None:
            image, label, fov = random_crop((image, label, fov), self.crop_hw, rng)
        if self.augment.enabled:
            image, label, fov = augment(image, label, fov, rng, self.augment)
        return {'image': normalize(image, self.normalization, self.channel_order),
                'label': label.astype(np.int32), 'fov': fov.astype(np.float32)}
