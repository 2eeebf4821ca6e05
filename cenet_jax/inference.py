"""Prediction at test time: dihedral test-time augmentation, resize-back, sliding windows.

TTA follows the paper and the authors' ``test_cenet.py``: the views are
{identity, rot90} x {none, vertical flip, horizontal flip, both} (rot90 = ``np.rot90``,
counter-clockwise in the H, W plane, applied before the flip). All views of a batch go
through the model inside ONE jitted call, one view after the other (``lax.map``, so the
activations of one batch are alive at a time, not those of 8 batches), are mapped back, and
their probabilities are averaged; the class map is then ``p > 0.5`` / argmax of that mean
(`cenet_jax.losses.predict_classes`). rot90 needs square inputs: for H != W, 'd8'
falls back per ``non_square``: 'flips' (the 4 flips only), 'pad' (reflect-pad to a
square, 8 views, crop back) or 'error'. `resolve_tta` returns the mode actually used,
and `predict_probs` logs it once per traced shape.

Full-size images: `predict_full_image` either resizes to the model size and the
probabilities back (bilinear, half-pixel centres like OpenCV / PyTorch
``align_corners=False``, no antialiasing, as the reference's ``cv2.resize``) or runs
overlapping windows of the model size, blended with a Gaussian or flat weight.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np

from cenet_jax.losses import probabilities

logger = logging.getLogger(__name__)

TTAMode = Literal['d8', 'flips', 'none']
NonSquare = Literal['flips', 'pad', 'error']
TTA_MODES = ('d8', 'flips', 'none')
NON_SQUARE_MODES = ('flips', 'pad', 'error')
FULL_IMAGE_MODES = ('resize', 'sliding')
BLENDS = ('gaussian', 'mean')

_FLIPS = ((), (1,), (2,), (1, 2))  # none, vertical (rows), horizontal (columns), both
_VIEWS = {
    'd8': tuple((rotate, flip) for rotate in (False, True) for flip in _FLIPS),
    'flips': tuple((False, flip) for flip in _FLIPS),
    'none': ((False, ()),),
}


def _to_view(x: jax.Array, rotate: bool, flip: tuple[int, ...]) -> jax.Array:
    x = jnp.rot90(x, 1, axes=(1, 2)) if rotate else x
    return jnp.flip(x, flip) if flip else x


def _from_view(y: jax.Array, rotate: bool, flip: tuple[int, ...]) -> jax.Array:
    y = jnp.flip(y, flip) if flip else y
    return jnp.rot90(y, -1, axes=(1, 2)) if rotate else y


def tta_views(x: jax.Array, mode: TTAMode) -> jax.Array:
    """(V, N, H, W, C): the V views of an NHWC batch for 'd8' (8), 'flips' (4) or 'none' (1)."""
    return jnp.stack([_to_view(x, rotate, flip) for rotate, flip in _VIEWS[mode]])


def undo_tta_views(y: jax.Array, mode: TTAMode) -> jax.Array:
    """Inverse of `tta_views` on per-view outputs (V, N, H, W, K): every view back in place."""
    return jnp.stack([_from_view(y[i], rotate, flip) for i, (rotate, flip) in enumerate(_VIEWS[mode])])


def dihedral_views(x: jax.Array) -> jax.Array:
    """(8, N, H, W, C): the paper's 8 dihedral views of a square NHWC batch."""
    return tta_views(x, 'd8')


def undo_dihedral(y: jax.Array) -> jax.Array:
    """(8, N, H, W, K): each of the 8 view outputs mapped back to the original orientation."""
    return undo_tta_views(y, 'd8')


def resolve_tta(tta: str, height: int, width: int, non_square: str = 'flips') -> str:
    """The TTA actually run for H x W inputs: 'd8', 'd8_pad', 'flips' or 'none'."""
    if tta not in TTA_MODES:
        raise ValueError(f'tta must be one of {TTA_MODES}, got {tta!r}')
    if non_square not in NON_SQUARE_MODES:
        raise ValueError(f'non_square must be one of {NON_SQUARE_MODES}, got {non_square!r}')
    if tta != 'd8' or height == width:
        return tta
    if non_square == 'error':
        raise ValueError(f"tta='d8' rotates by 90 degrees and needs square inputs, got {height}x{width}; "
                         "set non_square='flips' or 'pad', or resize to a square first")
    return 'flips' if non_square == 'flips' else 'd8_pad'


def _reflect_pad_to_square(images: jax.Array) -> tuple[jax.Array, tuple[slice, slice]]:
    height, width = images.shape[1:3]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    pads = ((0, 0), (top, side - height - top), (left, side - width - left), (0, 0))
    return jnp.pad(images, pads, mode='reflect'), (slice(top, top + height), slice(left, left + width))


def predict_probs(apply_fn: Callable[..., jax.Array], images: jax.Array, *model_args: Any,
                  tta: TTAMode = 'd8', non_square: NonSquare = 'flips') -> jax.Array:
    """Mean probabilities (N, H, W, K) over the TTA views, ``apply_fn`` mapped over the views.

    ``apply_fn(images_nhwc, *model_args) -> logits``; pass large arrays (variables) as
    ``model_args`` rather than closing over them, so jit does not bake them in as constants.
    """
    images = jnp.asarray(images)
    if images.ndim != 4:
        raise ValueError(f'images must be an NHWC batch, got shape {images.shape}')
    height, width = images.shape[1:3]
    mode = resolve_tta(tta, height, width, non_square)
    logger.info('test-time augmentation %s for %dx%d inputs', mode, height, width)
    crop = (slice(None), slice(None))
    if mode == 'd8_pad':
        images, crop = _reflect_pad_to_square(images)
        mode = 'd8'
    views = tta_views(images, mode)
    probs = jax.lax.map(lambda view: probabilities(apply_fn(view, *model_args)), views)
    mean = jnp.mean(undo_tta_views(probs, mode), axis=0)
    return mean[:, crop[0], crop[1], :]


def make_predict_fn(apply_fn: Callable[..., jax.Array], *, tta: TTAMode = 'd8',
                    non_square: NonSquare = 'flips') -> Callable[..., jax.Array]:
    """A jitted ``predict(images, *model_args) -> probs``; compiles once per input shape."""
    resolve_tta(tta, 1, 1, non_square)  # validates the mode names now, not at the first call
    return jax.jit(functools.partial(predict_probs, apply_fn, tta=tta, non_square=non_square))


def resize_probs(maps: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Bilinear resize of (H, W, C) or (N, H, W, C) maps (probabilities or images) to ``size``."""
    maps = jnp.asarray(maps, jnp.float32)
    if maps.ndim not in (3, 4):
        raise ValueError(f'maps must be (H, W, C) or (N, H, W, C), got shape {maps.shape}')
    shape = maps.shape[:-3] + tuple(size) + maps.shape[-1:]
    return jax.image.resize(maps, shape, method='bilinear', antialias=False)


def _window_starts(length: int, window: int, overlap: float) -> list[int]:
    if length <= window:
        return [0]
    stride = max(1, int(window * (1.0 - overlap)))
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def _blend_weights(window: tuple[int, int], blend: str) -> np.ndarray:
    if blend == 'mean':
        return np.ones(window, np.float32)
    axes = []
    for size in window:
        centre, sigma = (size - 1) / 2.0, size / 8.0
        axes.append(np.exp(-0.5 * ((np.arange(size) - centre) / sigma) ** 2))
    return np.outer(axes[0], axes[1]).astype(np.float32)


def sliding_window_predict(predict_fn: Callable[[jax.Array], jax.Array], image: np.ndarray,
                           window: tuple[int, int], overlap: float = 0.25,
                           blend: str = 'gaussian', batch_size: int | None = None) -> np.ndarray:
    """float32 (H, W, K) probabilities of one (H, W, C) image from overlapping windows.

    ``predict_fn(batch (B, h, w, C)) -> probs (B, h, w, K)``; windows of ``window`` = (h, w)
    step by ``(1 - overlap)`` of their size, the last one flush with the border; an image
    smaller than the window is reflect-padded. Overlaps are averaged with a Gaussian
    (sigma = size / 8, as nnU-Net) or flat ('mean') weight. ``batch_size`` windows per call
    (the last call padded to it, so one compile); None = all windows in one call.
    """
    if blend not in BLENDS:
        raise ValueError(f'blend must be one of {BLENDS}, got {blend!r}')
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f'overlap must be in [0, 1), got {overlap}')
    image = np.asarray(image, np.float32)
    if image.ndim != 3:
        raise ValueError(f'image must be (H, W, C), got shape {image.shape}')
    height, width = image.shape[:2]
    win_h, win_w = window
    pad = ((0, max(0, win_h - height)), (0, max(0, win_w - width)), (0, 0))
    padded = np.pad(image, pad, mode='reflect') if any(p[1] for p in pad) else image
    corners = [(top, left) for top in _window_starts(padded.shape[0], win_h, overlap)
               for left in _window_starts(padded.shape[1], win_w, overlap)]
    tiles = np.stack([padded[t:t + win_h, l:l + win_w] for t, l in corners])
    chunk = batch_size or len(tiles)
    outputs = []
    for begin in range(0, len(tiles), chunk):
        part = tiles[begin:begin + chunk]
        filled = np.concatenate([part, np.zeros((chunk - len(part),) + part.shape[1:], part.dtype)])
        outputs.append(np.asarray(predict_fn(jnp.asarray(filled)))[:len(part)])
    probs = np.concatenate(outputs)
    weight = _blend_weights((win_h, win_w), blend)[..., None]
    total = np.zeros(padded.shape[:2] + probs.shape[-1:], np.float64)
    norm = np.zeros(padded.shape[:2] + (1,), np.float64)
    for (top, left), tile_probs in zip(corners, probs):
        total[top:top + win_h, left:left + win_w] += weight * tile_probs
        norm[top:top + win_h, left:left + win_w] += weight
    return (total / norm)[:height, :width].astype(np.float32)


def predict_full_image(predict_fn: Callable[[jax.Array], jax.Array], image: np.ndarray, *,
                       model_size: tuple[int, int], mode: str = 'resize', overlap: float = 0.25,
                       blend: str = 'gaussian', batch_size: int | None = None) -> np.ndarray:
    """float32 (H, W, K) probabilities of one preprocessed (H, W, C) image at its own size.

    mode 'resize': resize to ``model_size``, predict, resize the probabilities back;
    'sliding': `sliding_window_predict` with windows of ``model_size``.
    """
    if mode not in FULL_IMAGE_MODES:
        raise ValueError(f'mode must be one of {FULL_IMAGE_MODES}, got {mode!r}')
    image = np.asarray(image, np.float32)
    if mode == 'sliding':
        return sliding_window_predict(predict_fn, image, tuple(model_size), overlap=overlap,
                                      blend=blend, batch_size=batch_size)
    resized = resize_probs(image, tuple(model_size))[None]
    probs = predict_fn(resized)[0]
    return np.asarray(resize_probs(probs, image.shape[:2]))

