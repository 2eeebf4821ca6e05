"""The `xla` formulation: XLA's own convolutions and max pooling, differentiated by JAX (the
reference every other formulation is tested against, and what GPUs and TPUs run).

Arrays follow the package's conventions: NHWC activations, HWIO kernels, transposed kernels
(kH, kW, Cout, Cin), and PyTorch's explicit padding.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

Pair = tuple[int, int]
Padding = Sequence[tuple[int, int]]

DIMENSIONS = ('NHWC', 'HWIO', 'NHWC')


def conv(x: jax.Array, kernel: jax.Array, strides: Pair, padding: Padding,
         dilation: Pair) -> jax.Array:
    """NHWC x HWIO cross-correlation with explicit (PyTorch-style) padding."""
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=strides, padding=tuple(tuple(p) for p in padding),
        rhs_dilation=dilation, dimension_numbers=DIMENSIONS)


def conv_transpose(x: jax.Array, kernel: jax.Array, strides: Pair, padding: Pair,
                   output_padding: Pair) -> jax.Array:
    """PyTorch ConvTranspose2d with kernel (kH, kW, Cout, Cin): dilate the input by the stride,
    pad by k - 1 - p (plus output_padding at the end), correlate with the flipped kernel."""
    kh, kw = kernel.shape[:2]
    flipped = jnp.flip(kernel, axis=(0, 1)).transpose(0, 1, 3, 2)  # (kH, kW, Cin, Cout)
    pads = ((kh - 1 - padding[0], kh - 1 - padding[0] + output_padding[0]),
            (kw - 1 - padding[1], kw - 1 - padding[1] + output_padding[1]))
    return jax.lax.conv_general_dilated(
        x, flipped, window_strides=(1, 1), padding=pads, lhs_dilation=strides,
        dimension_numbers=DIMENSIONS)


def max_pool(x: jax.Array, window: Pair, strides: Pair, padding: Padding) -> jax.Array:
    """Max over windows, -inf padding (PyTorch MaxPool2d, floor mode). A Python -inf init
    makes JAX emit reduce_window_max, which it differentiates with select-and-scatter."""
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, *window, 1), (1, *strides, 1),
                                 ((0, 0), *padding, (0, 0)))
