"""BatchNorm's training-mode arithmetic of the `xla` and `matmul` formulations: XLA operations
with a hand-written VJP, in as few passes over the activations as the maths allows.

Forward: one pass for the statistics (sums of d and d^2 with d = x - K, K the first pixel of
the batch per channel: the shifted-data variance, free of the cancellation of E[x^2] - E[x]^2
when the mean is large against the spread), one for the normalisation. Backward: one pass for
sum(dy) and sum(dy * x), one for dx. Autodiff of the two-pass textbook form makes XLA
materialise x - mean and traverse the activations 2-3x more (docs/performance.md). Statistics
and sums are float32 (float64 for float64 inputs) whatever the compute dtype.

With `axis_name` (inside jax.shard_map, the batch split over those mesh axes) the sums and the
shift are reduced over the axes: the statistics and gradients of the global batch
(synchronised BatchNorm), as `xla` computes them on a sharded batch under jit.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

AxisNames = tuple[str, ...]


def _wide(x: jax.Array) -> jax.Array:
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _sums(values: tuple[jax.Array, ...], axes: tuple[int, ...], axis_name: AxisNames
          ) -> tuple[jax.Array, ...]:
    """Per-channel sums over `axes`, and over the mesh axes `axis_name` (one all-reduce)."""
    sums = tuple(jnp.sum(v, axis=axes) for v in values)
    return jax.lax.psum(sums, axis_name) if axis_name else sums


def _count(x: jax.Array, axis_name: AxisNames) -> int:
    """Values per channel in the (global) batch."""
    return x.size // x.shape[-1] * math.prod(jax.lax.axis_size(a) for a in axis_name)


def batch_statistics(x: jax.Array, axis_name: AxisNames = ()) -> tuple[jax.Array, jax.Array]:
    """Per-channel mean and biased variance over all axes but the last (and over the mesh axes
    `axis_name`), in one pass."""
    axes = tuple(range(x.ndim - 1))
    shift = jax.lax.stop_gradient(_wide(x[(0,) * (x.ndim - 1)]))
    if axis_name:  # one shift for every shard, so that their sums add up
        shift = jax.lax.pmean(shift, axis_name)
    d = _wide(x) - shift
    sum_d, sum_d2 = _sums((d, d * d), axes, axis_name)
    count = _count(x, axis_name)
    mean_d = sum_d / count
    var = jnp.maximum(sum_d2 / count - mean_d * mean_d, 0.0)
    return mean_d + shift, var


def _forward(x, scale, bias, epsilon, axis_name):
    mean, var = batch_statistics(x, axis_name)
    inv = jax.lax.rsqrt(var + epsilon)
    mul = inv * _wide(scale)
    y = (_wide(x) * mul + (_wide(bias) - mean * mul)).astype(x.dtype)
    return y, mean, var, inv


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _normalize(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float,
               axis_name: AxisNames) -> tuple[jax.Array, jax.Array, jax.Array]:
    y, mean, var, _ = _forward(x, scale, bias, epsilon, axis_name)
    return y, mean, var


def _normalize_fwd(x, scale, bias, epsilon, axis_name):
    y, mean, var, inv = _forward(x, scale, bias, epsilon, axis_name)
    return (y, mean, var), (x, scale, bias, mean, inv)


def _normalize_bwd(axis_name, residuals, cotangents):
    x, scale, bias, mean, inv = residuals
    dy = _wide(cotangents[0])  # mean and var leave through stop_gradient: no cotangent
    xw = _wide(x)
    axes = tuple(range(x.ndim - 1))
    count = _count(x, axis_name)
    sum_dy, sum_dy_x = _sums((dy, dy * xw), axes, axis_name)
    dscale = inv * (sum_dy_x - mean * sum_dy)          # sum(dy * xhat)
    k = _wide(scale) * inv
    # dx = k * (dy - sum_dy / n - xhat * dscale / n), with xhat = (x - mean) * inv
    c1 = -k * inv * dscale / count
    c0 = -k * sum_dy / count - c1 * mean
    dx = (k * dy + c1 * xw + c0).astype(x.dtype)
    return dx, dscale.astype(scale.dtype), sum_dy.astype(bias.dtype), None


_normalize.defvjp(_normalize_fwd, _normalize_bwd)


def batch_norm_train(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float,
                     axis_name: AxisNames = ()) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(normalised x in x's dtype, batch mean, biased batch variance), the batch being x and,
    inside jax.shard_map, its shards along the mesh axes `axis_name`; gradients flow to x,
    scale and bias only (the statistics feed the running averages, not the loss)."""
    y, mean, var = _normalize(x, scale, bias, epsilon, tuple(axis_name))
    return y, jax.lax.stop_gradient(mean), jax.lax.stop_gradient(var)
