"""Segmentation losses from logits: soft Dice (Eq. 2 of the paper), (B)CE, Dice + (B)CE.

All functions take logits (N, H, W, K) and integer label maps (N, H, W); K == 1 means a
binary sigmoid model (labels in {0, 1}), K > 1 a softmax model (labels in [0, K)). They are
pure jax.numpy, jit-friendly, and computed in float32 from logits (log-sigmoid /
log-softmax), so gradients stay finite for any logits and any labels.

Soft Dice (Eq. 2): ``L = 1 - sum_k w_k * dice_k`` with
``dice_k = (2 sum_i m_i p_ki g_ki + s) / (D_k + s)`` where ``D_k = sum_i m_i (p_ki^2 + g_ki^2)``
('squared', the paper) or ``sum_i m_i (p_ki + g_ki)`` ('sum', the authors' code), ``m`` an
optional pixel weight (e.g. the FOV mask), ``s`` the smoothing (default 0, as paper and
code). A class whose denominator is at most 1e-6 (absent from the labels and predicted
with a total probability below 1e-6) counts as a perfect match, dice 1, with no gradient.
The binary form (K == 1) is the single foreground term, as in the authors' code; softmax
models use all K classes with weights 1/K (paper) unless given. Binary labels are read
as ``label == 1``: map 255-valued masks to 1 before (values are not checked under jit).
``reduction='batch'`` sums over the whole batch before the ratio (the code's default),
``'image'`` forms one Dice per image and averages the losses.

Cross entropy: pixel mean of ``-log p(label)``, weighted per pixel by ``class_weights[label]``
times the mask and normalised by the sum of those weights (PyTorch's weighted-CE mean).

A pixel with mask 0 counts in neither the Dice intersection nor its sums nor the CE mean: the
loss and its gradients are those of the other pixels alone, whatever its label and logits. The
training step passes the batch's FOV with ``loss.mask='fov'`` (the default for OCT, whose FOV
is the columns with every boundary annotated; training/loop.py).

Weight decay (Eq. 3, ``L = L_dice + L_reg``) is the optimizer's job, not the loss's:
``L_reg = lambda / 2 * ||w||^2`` has gradient ``lambda * w``, which is exactly what
``optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(schedule, momentum=0.9))``
adds to the gradient before momentum (PyTorch SGD ``weight_decay=1e-4`` semantics).

Note on the reference code: its ``dice_bce_loss.__call__`` computes BCE and Dice but
returns only the BCE term (every version of ``loss.py`` in Guzaiwang/CE-Net), so training
with that code optimises BCE alone; ``kind='ce'`` reproduces that, ``'dice_ce'`` is the
sum the class name promises.
"""
from __future__ import annotations

import math
from typing import Literal, Sequence

import jax
import jax.numpy as jnp

LossKind = Literal['dice', 'ce', 'dice_ce']
Denominator = Literal['squared', 'sum']
Reduction = Literal['batch', 'image']

LOSS_KINDS = ('dice', 'ce', 'dice_ce')
EMPTY_EPS = 1e-6  # a Dice denominator / CE weight sum at or below this counts as empty


def probabilities(logits: jax.Array) -> jax.Array:
    """Per-pixel class probabilities: sigmoid when K == 1, softmax over K otherwise."""
    logits = jnp.asarray(logits, jnp.float32)
    if logits.shape[-1] == 1:
        return jax.nn.sigmoid(logits)
    return jax.nn.softmax(logits, axis=-1)


def predict_classes(probs, *, threshold: float = 0.5, from_logits: bool = False):
    """Class map (..., H, W) from probabilities (..., H, W, K): ``p > threshold`` if K == 1 else argmax.

    Works on numpy and jax arrays alike (the result has the input's array type). With
    ``from_logits=True`` the input is logits: K == 1 thresholds at ``logit(threshold)``.
    """
    if probs.shape[-1] == 1:
        cut = threshold
        if from_logits:
            if not 0.0 < threshold < 1.0:
                raise ValueError(f'threshold must be in (0, 1) for logits, got {threshold}')
            cut = math.log(threshold) - math.log1p(-threshold)
        return (probs[..., 0] > cut).astype('int32')
    return probs.argmax(-1).astype('int32')


def _check_shapes(logits: jax.Array, labels: jax.Array, mask: jax.Array | None) -> None:
    if logits.ndim != 4:
        raise ValueError(f'logits must be (N, H, W, K), got shape {logits.shape}')
    if labels.shape != logits.shape[:3]:
        raise ValueError(f'labels must be (N, H, W) = {logits.shape[:3]} to match logits '
                         f'{logits.shape}, got {labels.shape}')
    if mask is not None and mask.shape != logits.shape[:3]:
        raise ValueError(f'mask must be (N, H, W) = {logits.shape[:3]}, got {mask.shape}')


def _label_weights(num_label_classes: int, class_weights: Sequence[float] | None) -> jax.Array:
    if class_weights is None:
        return jnp.ones((num_label_classes,), jnp.float32)
    weights = jnp.asarray(class_weights, jnp.float32)
    if weights.shape != (num_label_classes,):
        raise ValueError(f'class_weights needs one weight per label class ({num_label_classes}), '
                         f'got {len(class_weights)}: {list(class_weights)}')
    return weights


def _pixel_weights(labels: jax.Array, mask: jax.Array | None) -> jax.Array:
    if mask is None:
        return jnp.ones(labels.shape, jnp.float32)
    return jnp.asarray(mask, jnp.float32)


def _safe_ratio(numerator: jax.Array, denominator: jax.Array, empty_value: float) -> jax.Array:
    """numerator / denominator, ``empty_value`` where denominator <= EMPTY_EPS; finite gradients.

    The cut keeps ``denominator ** 2`` (in the quotient's gradient) far from float32 underflow.
    """
    empty = denominator <= EMPTY_EPS
    safe = jnp.where(empty, 1.0, denominator)
    return jnp.where(empty, empty_value, numerator / safe)


def _probs_and_targets(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Probabilities and matching float targets, both (N, H, W, C); C = 1 for binary."""
    probs = probabilities(logits)
    num_channels = logits.shape[-1]
    if num_channels == 1:
        return probs, (labels == 1).astype(jnp.float32)[..., None]
    return probs, jax.nn.one_hot(labels, num_channels, dtype=jnp.float32)


def soft_dice_loss(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None, *,
                   class_weights: Sequence[float] | None = None,
                   denominator: Denominator = 'squared', smooth: float = 0.0,
                   reduction: Reduction = 'batch') -> jax.Array:
    """Soft Dice loss of Eq. 2 (see module docstring), a float32 scalar in [0, 1] for s >= 0.

    ``class_weights`` (softmax models only) are normalised to sum to 1; default 1/K.
    """
    _check_shapes(logits, labels, mask)
    if denominator not in ('squared', 'sum'):
        raise ValueError(f"denominator must be 'squared' or 'sum', got {denominator!r}")
    if reduction not in ('batch', 'image'):
        raise ValueError(f"reduction must be 'batch' or 'image', got {reduction!r}")
    probs, targets = _probs_and_targets(logits, labels)
    weight = _pixel_weights(labels, mask)[..., None]
    axes = (0, 1, 2) if reduction == 'batch' else (1, 2)
    intersection = jnp.sum(weight * probs * targets, axis=axes)
    if denominator == 'squared':
        denom = jnp.sum(weight * (probs * probs + targets * targets), axis=axes)
    else:
        denom = jnp.sum(weight * (probs + targets), axis=axes)
    dice = _safe_ratio(2.0 * intersection + smooth, denom + smooth, empty_value=1.0)  # (..., C)
    num_channels = probs.shape[-1]
    if num_channels == 1:
        _label_weights(2, class_weights)  # validated for CE; the single Dice term needs none
        weights = jnp.ones((1,), jnp.float32)
    else:
        weights = _label_weights(num_channels, class_weights)
        weights = weights / jnp.sum(weights)
    return jnp.mean(1.0 - jnp.sum(weights * dice, axis=-1))


def cross_entropy_loss(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None, *,
                       class_weights: Sequence[float] | None = None) -> jax.Array:
    """Class-weighted pixel-mean cross entropy from logits (BCE when K == 1), a float32 scalar."""
    _check_shapes(logits, labels, mask)
    logits = jnp.asarray(logits, jnp.float32)
    num_channels = logits.shape[-1]
    if num_channels == 1:
        z = logits[..., 0]
        positive = labels == 1
        nll = -jnp.where(positive, jax.nn.log_sigmoid(z), jax.nn.log_sigmoid(-z))
        label_index = positive.astype(jnp.int32)
        weights = _label_weights(2, class_weights)
    else:
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        label_index = jnp.clip(labels, 0, num_channels - 1).astype(jnp.int32)
        nll = -jnp.take_along_axis(log_probs, label_index[..., None], axis=-1)[..., 0]
        weights = _label_weights(num_channels, class_weights)
    pixel_weight = _pixel_weights(labels, mask) * weights[label_index]
    return _safe_ratio(jnp.sum(pixel_weight * nll), jnp.sum(pixel_weight), empty_value=0.0)


def segmentation_loss(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None, *,
                      kind: LossKind = 'dice', class_weights: Sequence[float] | None = None,
                      denominator: Denominator = 'squared', smooth: float = 0.0,
                      reduction: Reduction = 'batch') -> jax.Array:
    """The loss the training step calls: 'dice' (Eq. 2), 'ce' (BCE/CE) or 'dice_ce' (their sum).

    logits (N, H, W, K), labels int (N, H, W), mask (N, H, W) pixel weights or None.
    """
    if kind not in LOSS_KINDS:
        raise ValueError(f'loss kind must be one of {LOSS_KINDS}, got {kind!r}')
    total = jnp.zeros((), jnp.float32)
    if kind in ('dice', 'dice_ce'):
        total = total + soft_dice_loss(logits, labels, mask, class_weights=class_weights,
                                       denominator=denominator, smooth=smooth,
                                       reduction=reduction)
    if kind in ('ce', 'dice_ce'):
        total = total + cross_entropy_loss(logits, labels, mask, class_weights=class_weights)
    return total
