"""Prediction: probabilities of model-size batches (TTA in one jitted call), of full-size images
(resized back or by sliding windows), and of whole records batched over the device mesh.

All TTA views of a batch (`cenet_jax.evaluation.tta`) go through the model inside ONE jitted
call, one view after the other (``lax.map``, so the activations of one batch are alive at a
time, not those of 8 batches), are mapped back, and their probabilities are averaged; the class
map is then ``p > 0.5`` / argmax of that mean (`cenet_jax.losses.predict_classes`).
Which views run is a `TTAPlan` (`tta.tta_plan`: the run's training augmentation decides); a
mode name instead ('d8' | 'flips' | 'none') runs every view of it that the shape allows, for a
model whose training is unknown. `predict_probs` logs the views run once per traced shape.

Full-size images: `predict_full_image` either resizes to the model size and the
probabilities back (bilinear, half-pixel centres like OpenCV / PyTorch
``align_corners=False``, no antialiasing, as the reference's ``cv2.resize``) or runs
overlapping windows of the model size, blended with a Gaussian or flat weight.

Whole records: `BatchPredictor` shards model-size inputs over the mesh's data axis and
`predict_records` resizes the probabilities back to each record's original size; shared by
training-time validation and eval.py. eval.py also keeps the TTA uncertainty: the per-pixel
standard deviation of the views' probabilities (`uncertainty_map`), resized back the same way.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from jax.sharding import Mesh

from cenet_jax.evaluation.tta import (VIEWS, NonSquare, TTAMode, TTAPlan, resolve_tta, tta_views,
                                      undo_tta_views)
from cenet_jax.losses import probabilities
from cenet_jax.parallel import batch_sharding, on_mesh, replicated

logger = logging.getLogger(__name__)

FULL_IMAGE_MODES = ('resize', 'sliding')
BLENDS = ('gaussian', 'mean')


def _reflect_pad_to_square(images: jax.Array) -> tuple[jax.Array, tuple[slice, slice]]:
    height, width = images.shape[1:3]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    pads = ((0, 0), (top, side - height - top), (left, side - width - left), (0, 0))
    return jnp.pad(images, pads, mode='reflect'), (slice(top, top + height), slice(left, left + width))


def uncertainty_map(std: jax.Array) -> jax.Array:
    """(..., H, W) per-pixel uncertainty from the per-class std (..., H, W, K) of the views:
    the foreground channel for K = 1 (sigmoid), else the largest std over the classes (for a
    two-class softmax both are equal)."""
    return std[..., 0] if std.shape[-1] == 1 else jnp.max(std, axis=-1)


def predict_probs(apply_fn: Callable[..., jax.Array], images: jax.Array, *model_args: Any,
                  tta: TTAMode | TTAPlan = 'd8', non_square: NonSquare = 'flips',
                  with_std: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Mean probabilities (N, H, W, K) over the TTA views, ``apply_fn`` mapped over the views;
    with ``with_std`` also the TTA uncertainty (N, H, W): the per-pixel standard deviation of
    the views' probabilities (`uncertainty_map`; 0 when one view runs).

    ``tta`` is a `TTAPlan` (the views to run), or a mode resolved here for the input shape
    with ``non_square`` (every view of the mode: training unknown).
    ``apply_fn(images_nhwc, *model_args) -> logits``; pass large arrays (variables) as
    ``model_args`` rather than closing over them, so jit does not bake them in as constants.
    """
    images = jnp.asarray(images)
    if images.ndim != 4:
        raise ValueError(f'images must be an NHWC batch, got shape {images.shape}')
    height, width = images.shape[1:3]
    plan = tta if isinstance(tta, TTAPlan) else resolve_tta(tta, height, width, non_square)
    logger.info('test-time augmentation %s for %dx%d inputs', plan.label, height, width)
    crop = (slice(None), slice(None))
    if height != width and any(VIEWS[name][0] for name in plan.views):
        if not plan.pad:
            raise ValueError(f'TTA views {plan.views} include rot90, which needs square inputs; '
                             f'got {height}x{width} (resolve the plan for this shape)')
        images, crop = _reflect_pad_to_square(images)
    views = tta_views(images, plan.views)
    probs = undo_tta_views(jax.lax.map(lambda view: probabilities(apply_fn(view, *model_args)),
                                       views), plan.views)
    mean = jnp.mean(probs, axis=0)[:, crop[0], crop[1], :]
    if not with_std:
        return mean
    return mean, uncertainty_map(jnp.std(probs, axis=0))[:, crop[0], crop[1]]


def make_predict_fn(apply_fn: Callable[..., jax.Array], *, tta: TTAMode | TTAPlan = 'd8',
                    non_square: NonSquare = 'flips') -> Callable[..., jax.Array]:
    """A jitted ``predict(images, *model_args) -> probs``; compiles once per input shape."""
    if not isinstance(tta, TTAPlan):
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


def _predict(variables: Any, images: jax.Array, *, model: nn.Module, tta: str | TTAPlan,
             non_square: str, with_std: bool = False) -> jax.Array | tuple[jax.Array, jax.Array]:
    def apply_fn(x: jax.Array, variables: Any) -> jax.Array:
        return model.apply(variables, x, train=False)
    return predict_probs(apply_fn, images, variables, tta=tta, non_square=non_square,
                         with_std=with_std)


class BatchPredictor:
    """Predicts probabilities (N, H, W, K) for batches of model-size images, the batch sharded
    over the mesh's data axis (padded to a multiple of the device count); compiled once per
    input shape. `tta`: a `TTAPlan` (`tta.tta_plan` of the run's config) or a mode name (see
    `predict_probs`). With `uncertainty`, `predict` also returns the TTA uncertainty (N, H, W)."""

    def __init__(self, model: nn.Module, mesh: Mesh, *, tta: str | TTAPlan = 'none',
                 non_square: str = 'flips', batch_size: int = 8, uncertainty: bool = False):
        self.mesh = mesh
        self.uncertainty = uncertainty
        n_dev = mesh.devices.size
        self.batch_size = max(n_dev, -(-batch_size // n_dev) * n_dev)
        fn = functools.partial(_predict, model=model, tta=tta, non_square=non_square,
                               with_std=uncertainty)
        self._fn = on_mesh(jax.jit(fn, in_shardings=(replicated(mesh), batch_sharding(mesh)),
                                   out_shardings=replicated(mesh)), mesh)

    def __call__(self, variables: Any, images: np.ndarray) -> np.ndarray:
        """Probabilities for a host batch `images` (n, H, W, C) of any n (same on every host)."""
        return self.predict(variables, images)[0]

    def predict(self, variables: Any, images: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities, TTA uncertainty (n, H, W) or None without `uncertainty`)."""
        probs, stds = [], []
        for start in range(0, len(images), self.batch_size):
            chunk = np.asarray(images[start:start + self.batch_size], np.float32)
            n = len(chunk)
            if n < self.batch_size:  # pad with copies so every call has the same shape
                pad = np.repeat(chunk[-1:], self.batch_size - n, axis=0)
                chunk = np.concatenate([chunk, pad])
            out = self._fn(variables, self._shard(chunk))
            if self.uncertainty:
                out, std = out
                stds.append(np.asarray(std)[:n])
            probs.append(np.asarray(out)[:n])
        if not probs:
            return np.zeros((0,), np.float32), None
        return np.concatenate(probs), (np.concatenate(stds) if self.uncertainty else None)

    def _shard(self, chunk: np.ndarray) -> jax.Array:
        # Every host holds the whole chunk; each contributes the rows of its own devices.
        per_host = len(chunk) // jax.process_count()
        rows = chunk[jax.process_index() * per_host:(jax.process_index() + 1) * per_host]
        return jax.make_array_from_process_local_data(batch_sharding(self.mesh), rows)


def predict_records(predictor: BatchPredictor, variables: Any,
                    records: Iterable[dict[str, Any]]) -> Iterable[tuple[dict[str, Any], np.ndarray]]:
    """(record, probabilities at the record's original size) in record order; records carry
    their normalised model-size input as 'model_image' (see `data.pipeline.build_eval_records`).
    A predictor with `uncertainty` adds the TTA uncertainty at the record's size to (a copy of)
    the record as 'uncertainty' (float32 (H, W))."""
    for group in iterate_in_groups(records, predictor.batch_size):
        images = np.stack([r['model_image'] for r in group])
        if getattr(predictor, 'uncertainty', False):
            probs, stds = predictor.predict(variables, images)
        else:
            probs, stds = predictor(variables, images), None
        for index, (record, p) in enumerate(zip(group, probs)):
            h, w = record['label'].shape[:2] if 'label' in record else record['image'].shape[:2]
            if stds is not None:
                std = resize_probs(stds[index][..., None], (h, w))[..., 0]
                record = {**record, 'uncertainty': np.maximum(np.asarray(std), 0.0)}
            yield record, np.asarray(resize_probs(p, (h, w)))


def iterate_in_groups(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    """Lists of up to `size` consecutive items (keeps memory flat for large prediction sets)."""
    group: list[Any] = []
    for item in items:
        group.append(item)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def as_record_stream(pairs: Iterable[tuple[dict[str, Any], np.ndarray]]
                     ) -> tuple[Iterable[dict[str, Any]], Any]:
    """Split (record, probabilities) pairs into a record stream and the `predict_probs_fn` that
    `evaluation.evaluate_records` asks for each record in turn: every record is decoded and
    predicted once, and only the records in flight are held in memory."""
    pending: dict[str, np.ndarray] = {}

    def records() -> Iterable[dict[str, Any]]:
        for record, probs in pairs:
            pending[record['id']] = probs
            yield record

    return records(), lambda record: pending.pop(record['id'])
