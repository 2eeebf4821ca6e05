"""Max pooling behind `layers.max_pool`, in the formulation `model.conv_impl` names.

`xla`: `lax.reduce_window` and its autodiff gradient (select-and-scatter), the reference.
`onednn`: oneDNN's pooling, which records where each maximum was (onednn_ops).
`matmul` (and dtypes oneDNN lacks): the XLA forward with a custom VJP: the gradient of
each window goes to its first maximum in row-major order (PyTorch's and XLA's tie rule), found
by comparing the k*k strided taps of the input with the pooled output, and the per-tap
gradients are summed back with the overlap-add of the transposed convolution. XLA:CPU runs
select-and-scatter 2-3x slower than this (docs/performance.md).
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp

from cenet_jax.models import onednn_ops
from cenet_jax.models.conv_math import overlap_add

Pair = tuple[int, int]
Padding = Sequence[tuple[int, int]]


def _reduce_max(x: jax.Array, window: Pair, strides: Pair, padding: Padding) -> jax.Array:
    """Max over windows, -inf padding (PyTorch MaxPool2d, floor mode). A Python -inf init
    makes JAX emit reduce_window_max, which it can differentiate (the 'xla' reference)."""
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, *window, 1), (1, *strides, 1),
                                 ((0, 0), *padding, (0, 0)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def max_pool_first_max(x: jax.Array, window: Pair, strides: Pair, padding: Padding
                       ) -> jax.Array:
    """`_reduce_max` whose gradient is formed from strided comparisons (see module doc)."""
    return _reduce_max(x, window, strides, padding)


def _fwd(x, window, strides, padding):
    y = _reduce_max(x, window, strides, padding)
    return y, (x, y)


def _bwd(window, strides, padding, residuals, g):
    x, y = residuals
    n, h, w, c = x.shape
    (kh, kw), (sh, sw) = window, strides
    (pt, pb), (pl, pr) = padding
    xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-jnp.inf)
    ho, wo = y.shape[1:3]
    zero = jnp.zeros((), g.dtype)
    taken = jnp.zeros(y.shape, bool)
    taps = []
    for i in range(kh):
        for j in range(kw):
            tap = jax.lax.slice(xp, (0, i, j, 0), (n, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, c),
                                (1, sh, sw, 1))
            first = (tap == y) & ~taken
            taken = taken | first
            taps.append(jnp.where(first, g, zero))
    cols = jnp.stack(taps, axis=3).reshape(n, ho, wo, kh, kw, c)
    return (overlap_add(cols, (sh, sw), (pt, pl), (h, w)),)


max_pool_first_max.defvjp(_fwd, _bwd)


def max_pool(x: jax.Array, window: Pair, strides: Pair, padding: Padding,
             impl: str = 'xla') -> jax.Array:
    """Max pooling NHWC with explicit padding; the gradient's formulation follows `impl`."""
    window, strides = tuple(map(int, window)), tuple(map(int, strides))
    padding = tuple(tuple(int(v) for v in p) for p in padding)
    if impl == 'xla':
        return _reduce_max(x, window, strides, padding)
    if impl == 'onednn' and onednn_ops.supports(x.dtype):
        return onednn_ops.max_pool(x, window, strides, padding)
    return max_pool_first_max(x, window, strides, padding)
