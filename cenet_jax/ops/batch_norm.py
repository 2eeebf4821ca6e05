"""BatchNorm's training-mode arithmetic of the `xla` and `matmul` formulations: XLA operations
with a hand-written VJP, in as few passes over the activations as the maths allows.

Forward: one pass for the statistics (sums of d and d^2 with d = x - K, K the first pixel of
the batch per channel: the shifted-data variance, free of the cancellation of E[x^2] - E[x]^2
when the mean is large against the spread), one for the normalisation. Backward: one pass for
sum(dy) and sum(dy * x), one for dx. Autodiff of the two-pass textbook form makes XLA
materialise x - mean and traverse the activations 2-3x more (docs/performance.md). Statistics
and sums are float32 (float64 for float64 inputs) whatever the compute dtype.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _wide(x: jax.Array) -> jax.Array:
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def batch_statistics(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-channel mean and biased variance over all axes but the last, in one pass."""
    axes = tuple(range(x.ndim - 1))
    shift = jax.lax.stop_gradient(_wide(x[(0,) * (x.ndim - 1)]))
    d = _wide(x) - shift
    mean_d = jnp.mean(d, axis=axes)
    var = jnp.maximum(jnp.mean(d * d, axis=axes) - mean_d * mean_d, 0.0)
    return mean_d + shift, var


def _forward(x, scale, bias, epsilon):
    mean, var = batch_statistics(x)
    inv = jax.lax.rsqrt(var + epsilon)
    mul = inv * _wide(scale)
    y = (_wide(x) * mul + (_wide(bias) - mean * mul)).astype(x.dtype)
    return y, mean, var, inv


@jax.custom_vjp
def _normalize(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
    y, mean, var, _ = _forward(x, scale, bias, epsilon)
    return y, mean, var


def _normalize_fwd(x, scale, bias, epsilon):
    y, mean, var, inv = _forward(x, scale, bias, epsilon)
    return (y, mean, var), (x, scale, bias, mean, inv)


def _normalize_bwd(residuals, cotangents):
    x, scale, bias, mean, inv = residuals
    dy = _wide(cotangents[0])  # mean and var leave through stop_gradient: no cotangent
    xw = _wide(x)
    axes = tuple(range(x.ndim - 1))
    count = x.size // x.shape[-1]
    sum_dy = jnp.sum(dy, axis=axes)
    sum_dy_x = jnp.sum(dy * xw, axis=axes)
    dscale = inv * (sum_dy_x - mean * sum_dy)          # sum(dy * xhat)
    k = _wide(scale) * inv
    # dx = k * (dy - sum_dy / n - xhat * dscale / n), with xhat = (x - mean) * inv
    c1 = -k * inv * dscale / count
    c0 = -k * sum_dy / count - c1 * mean
    dx = (k * dy + c1 * xw + c0).astype(x.dtype)
    return dx, dscale.astype(scale.dtype), sum_dy.astype(bias.dtype), None


_normalize.defvjp(_normalize_fwd, _normalize_bwd)


def batch_norm_train(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float
                     ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(normalised x in x's dtype, batch mean, biased batch variance); gradients flow to x,
    scale and bias only (the statistics feed the running averages, not the loss)."""
    y, mean, var = _normalize(x, scale, bias, epsilon)
    return y, jax.lax.stop_gradient(mean), jax.lax.stop_gradient(var)
