"""The `matmul` formulation (the CPU fallback where the oneDNN library cannot be used):
convolutions and max pooling written so that the expensive parts are plain matrix products,
which XLA:CPU runs at its full GEMM rate while its convolution gradients do not
(openxla/xla #34273).

1x1 convolutions are `dot`s; k x k convolutions keep XLA's forward and input gradient (a custom
VJP) but compute the weight gradient as Winograd F(2x2, 3x3) products (3x3 stride 1; 1.5-1.7x
faster per step than im2col there, bench/weight_grad.py) or as im2col times one matmul (the
rest); transposed convolutions are one matmul over channels followed by an overlap-add of the
k x k taps (no zero-inserted input). Max pooling keeps XLA's forward; its gradient goes to each
window's first maximum in row-major order (PyTorch's and XLA's tie rule), found by comparing the
k*k strided taps of the input with the pooled output and summed back with the same overlap-add
(XLA:CPU runs select-and-scatter 2-3x slower, docs/performance.md). Every function takes and
returns the same arrays as its `xla` twin.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cenet_jax.ops import xla

Pair = tuple[int, int]
Padding = Sequence[tuple[int, int]]

# Below this many output channels (the logits layer) a GEMM is a thin matrix-vector product
# and XLA's own convolution is faster.
MIN_MATMUL_FEATURES = 8
# Below this many pixels (N*H*W) im2col's weight gradient beats Winograd's 16 thin products.
MIN_WINOGRAD_PIXELS = 1024


def _accumulator(dtype: jnp.dtype) -> jnp.dtype:
    """float32 accumulation for float32 / bf16 / fp16 inputs, float64 for float64 ones."""
    return jnp.promote_types(dtype, jnp.float32)


def _dot(a: jax.Array, b: jax.Array, contract: tuple[int, int],
         accumulate: bool = False) -> jax.Array:
    """2-D matrix product over the given axes, accumulated in float32 and cast back (kept in
    the accumulator type with `accumulate`, for sums over several products)."""
    out = jax.lax.dot_general(a, b, (((contract[0],), (contract[1],)), ((), ())),
                              preferred_element_type=_accumulator(a.dtype))
    return out if accumulate else out.astype(a.dtype)


# Weight gradients are summed over chunks of the batch of at most this many input bytes, so
# their im2col / Winograd temporaries stay a few times this size instead of growing with the
# batch (peak memory), and stay warm in cache between building them and multiplying them.
WEIGHT_GRAD_CHUNK_BYTES = 32 * 2**20


def sum_over_batch_chunks(fn: Callable[..., jax.Array], *arrays: jax.Array) -> jax.Array:
    """sum(fn(*chunk) for chunks of the leading axis), chunks as large as fit in
    WEIGHT_GRAD_CHUNK_BYTES (per the largest array), in a `lax.scan` when more than one."""
    n = arrays[0].shape[0]
    per_item = max(a[0].size * a.dtype.itemsize for a in arrays)
    size = max(1, min(n, WEIGHT_GRAD_CHUNK_BYTES // max(per_item, 1)))
    while n % size:
        size -= 1
    if size == n:
        return fn(*arrays)
    chunked = [a.reshape(n // size, size, *a.shape[1:]) for a in arrays]
    first = jax.eval_shape(fn, *(c[0] for c in chunked))

    def body(total, chunk):
        return total + fn(*chunk), None

    total, _ = jax.lax.scan(body, jnp.zeros(first.shape, first.dtype), chunked)
    return total


def conv_1x1(x: jax.Array, kernel: jax.Array, strides: Pair) -> jax.Array:
    """A 1x1 convolution (no padding) as one matmul over channels; stride = subsampling."""
    if strides != (1, 1):
        x = x[:, ::strides[0], ::strides[1]]
    n, h, w, cin = x.shape
    y = _dot(x.reshape(n * h * w, cin), kernel.reshape(cin, -1), (1, 0))
    return y.reshape(n, h, w, -1)


def output_size(size: int, k: int, stride: int, pad: tuple[int, int], dilation: int) -> int:
    """Output length of a convolution along one axis (PyTorch's floor rule)."""
    return (size + pad[0] + pad[1] - dilation * (k - 1) - 1) // stride + 1


def im2col_t(x: jax.Array, kernel_hw: Pair, strides: Pair, padding: Padding,
             dilation: Pair) -> jax.Array:
    """Transposed patch matrix (kh*kw*C, N*Ho*Wo), rows ordered (i, j, c) like HWIO.

    Built from k*k strided slices of the channel-major input, so the weight gradient
    `im2col_t(x) @ g` is a plain row-major GEMM: XLA:CPU runs (M, K) x (K, N) at its full
    rate, but a product that contracts the leading axis of a (K, M) matrix 2-3x slower.
    """
    (kh, kw), (sh, sw), (dh, dw) = kernel_hw, strides, dilation
    n, h, w, c = x.shape
    ho = output_size(h, kh, sh, padding[0], dh)
    wo = output_size(w, kw, sw, padding[1], dw)
    xp = jnp.pad(x.transpose(3, 0, 1, 2), ((0, 0), (0, 0), tuple(padding[0]), tuple(padding[1])))
    cols = [jax.lax.slice(xp, (0, 0, i * dh, j * dw),
                          (c, n, i * dh + (ho - 1) * sh + 1, j * dw + (wo - 1) * sw + 1),
                          (1, 1, sh, sw))
            for i in range(kh) for j in range(kw)]
    return jnp.stack(cols).reshape(kh * kw * c, n * ho * wo)


# Winograd F(2x2, 3x3) (Lavin & Gray 2016) for the weight gradient of 3x3 stride-1 convolutions:
# forward y = A^T [(G w G^T) . (B^T d B)] A on 4x4 input tiles d (stride 2) giving 2x2 outputs,
# so dL/dw = G^T [sum over tiles and pixels of (B^T d B) (A dy A^T)] G: 16 products over
# N*H*W/4 rows instead of im2col's 9 over N*H*W, and 4x (not 9x) the input in transforms.
_WINOGRAD_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]],
                       np.float32)


def _winograd_input_1d(d: list[jax.Array]) -> list[jax.Array]:
    """B^T d along one axis for the 4 tile rows d0..d3."""
    return [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]


def _winograd_grad_1d(y: list[jax.Array]) -> list[jax.Array]:
    """A dy along one axis: the 4 transformed values of a tile from its 2 output gradients."""
    return [y[0], y[0] + y[1], y[0] - y[1], -y[1]]


def winograd_weight_grad(x: jax.Array, g: jax.Array) -> jax.Array:
    """dL/dkernel (3, 3, Cin, Cout) of a 3x3 stride-1 padding-1 convolution, NHWC x and
    output gradient g. Odd sizes are padded to even (zero gradient there)."""
    n, h, w, cin = x.shape
    cout = g.shape[-1]
    th, tw = (h + 1) // 2, (w + 1) // 2
    xp = jnp.pad(x, ((0, 0), (1, 1 + 2 * th - h), (1, 1 + 2 * tw - w), (0, 0)))
    gp = jnp.pad(g, ((0, 0), (0, 2 * th - h), (0, 2 * tw - w), (0, 0)))
    # Transforms stay NHWC with stride-2 slices on H and W, so they vectorise over channels.
    v_rows = _winograd_input_1d([xp[:, r:r + 2 * th:2] for r in range(4)])
    m_rows = _winograd_grad_1d([gp[:, r::2] for r in range(2)])
    products = []
    for v_row, m_row in zip(v_rows, m_rows):
        v_tiles = _winograd_input_1d([v_row[:, :, c:c + 2 * tw:2] for c in range(4)])
        m_tiles = _winograd_grad_1d([m_row[:, :, c::2] for c in range(2)])
        products += [_dot(v.reshape(-1, cin), m.reshape(-1, cout), (0, 0), accumulate=True)
                     for v, m in zip(v_tiles, m_tiles)]
    acc = _accumulator(x.dtype)
    du = jnp.stack(products).reshape(4, 4, cin, cout).astype(acc)
    gm = jnp.asarray(_WINOGRAD_G, acc)
    return jnp.einsum('ai,abco,bj->ijco', gm, du, gm)


def _uses_winograd(x_shape: tuple[int, ...], kernel_hw: Pair, strides: Pair,
                  padding: Padding, dilation: Pair) -> bool:
    """Winograd F(2x2, 3x3) covers 3x3 stride-1 padding-1 convolutions; below
    MIN_WINOGRAD_PIXELS im2col's single product is faster than its 16 thin ones."""
    return (tuple(kernel_hw) == (3, 3) and tuple(strides) == (1, 1) and tuple(dilation) == (1, 1)
            and tuple(map(tuple, padding)) == ((1, 1), (1, 1))
            and x_shape[0] * x_shape[1] * x_shape[2] >= MIN_WINOGRAD_PIXELS)


def im2col_weight_grad(x: jax.Array, g: jax.Array, kernel_hw: Pair, strides: Pair,
                       padding: Padding, dilation: Pair) -> jax.Array:
    """dL/dkernel (kh*kw*Cin, Cout) of any convolution: im2col of x times the output gradient."""
    patches_t = im2col_t(x, kernel_hw, strides, padding, dilation)
    return _dot(patches_t, g.reshape(-1, g.shape[-1]), (1, 0), accumulate=True)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_matmul_weight_grad(x: jax.Array, kernel: jax.Array, strides: Pair, padding: Padding,
                            dilation: Pair) -> jax.Array:
    """XLA's convolution and input gradient; the weight gradient as Winograd products (3x3
    stride 1) or im2col times one matmul, summed over batch chunks."""
    return xla.conv(x, kernel, strides, padding, dilation)


def _conv_fwd(x, kernel, strides, padding, dilation):
    return xla.conv(x, kernel, strides, padding, dilation), (x, kernel)


def _conv_bwd(strides, padding, dilation, residuals, g):
    x, kernel = residuals
    _, input_vjp = jax.vjp(lambda x_: xla.conv(x_, kernel, strides, padding, dilation), x)
    (dx,) = input_vjp(g)
    kernel_hw = kernel.shape[:2]
    if _uses_winograd(x.shape, kernel_hw, strides, padding, dilation):
        weight_grad = winograd_weight_grad
    else:
        weight_grad = functools.partial(im2col_weight_grad, kernel_hw=kernel_hw, strides=strides,
                                        padding=padding, dilation=dilation)
    dk = sum_over_batch_chunks(weight_grad, x, g)
    return dx, dk.reshape(kernel.shape).astype(kernel.dtype)


conv_matmul_weight_grad.defvjp(_conv_fwd, _conv_bwd)


def overlap_add(cols: jax.Array, strides: Pair, padding: Pair, out_hw: Pair) -> jax.Array:
    """Sum the taps cols (N, H, W, kh, kw, C) into the transposed-convolution output: tap
    (a, b) of input pixel (i, j) lands on (s*i + a - p, s*j + b - p). Done per output phase
    (a mod s, b mod s) with pads and adds, then the s*s phases are interleaved (no scatter)."""
    n, h, w, kh, kw, c = cols.shape
    (sh, sw), (ph, pw), (out_h, out_w) = strides, padding, out_hw
    taps_h, taps_w = -(-kh // sh), -(-kw // sw)  # taps per phase (ceil)
    lh, lw = h + taps_h - 1, w + taps_w - 1       # phase map size
    phases = []
    for ra in range(sh):
        row = []
        for rb in range(sw):
            acc = jnp.zeros((n, lh, lw, c), cols.dtype)
            for a in range(ra, kh, sh):
                for b in range(rb, kw, sw):
                    ta, tb = a // sh, b // sw
                    acc = acc + jnp.pad(cols[:, :, :, a, b], ((0, 0), (ta, taps_h - 1 - ta),
                                                              (tb, taps_w - 1 - tb), (0, 0)))
            row.append(acc)
        phases.append(jnp.stack(row, axis=3))           # (n, lh, lw, sw, C)
    full = jnp.stack(phases, axis=2).reshape(n, lh * sh, lw * sw, c)
    full = jnp.pad(full, ((0, 0), (0, max(0, ph + out_h - lh * sh)),
                          (0, max(0, pw + out_w - lw * sw)), (0, 0)))
    return full[:, ph:ph + out_h, pw:pw + out_w]


def _transpose_output_hw(x_hw: Pair, kernel_hw: Pair, strides: Pair, padding: Pair,
                         output_padding: Pair) -> Pair:
    return tuple((x_hw[d] - 1) * strides[d] - 2 * padding[d] + kernel_hw[d] + output_padding[d]
                 for d in range(2))  # type: ignore[return-value]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv_transpose(x: jax.Array, kernel: jax.Array, strides: Pair, padding: Pair,
                          output_padding: Pair) -> jax.Array:
    """PyTorch ConvTranspose2d as one matmul (N*H*W, Cin) x (Cin, kh*kw*Cout) and an
    overlap-add of the k x k taps (no zero-inserted input).

    Gradients: the input gradient of a transposed convolution is the ordinary stride-s
    convolution of the output gradient (XLA's fast strided convolution), and the weight
    gradient is im2col of the output gradient times the input, one GEMM.
    """
    kh, kw, cout, cin = kernel.shape
    n, h, w, _ = x.shape
    cols = _dot(x.reshape(n * h * w, cin), kernel.reshape(kh * kw * cout, cin), (1, 1))
    out_hw = _transpose_output_hw((h, w), (kh, kw), strides, padding, output_padding)
    return overlap_add(cols.reshape(n, h, w, kh, kw, cout), strides, padding, out_hw)


def _gradient_conv_padding(x_hw: Pair, g_hw: Pair, kernel_hw: Pair, strides: Pair,
                           padding: Pair) -> tuple[tuple[int, int], ...]:
    """Padding of the output gradient so that its stride-s k x k correlation has x's size."""
    return tuple((padding[d], (x_hw[d] - 1) * strides[d] + kernel_hw[d] - padding[d] - g_hw[d])
                 for d in range(2))


def _conv_transpose_fwd(x, kernel, strides, padding, output_padding):
    return conv_transpose(x, kernel, strides, padding, output_padding), (x, kernel)


def _conv_transpose_bwd(strides, padding, output_padding, residuals, g):
    x, kernel = residuals
    kh, kw = kernel.shape[:2]
    h, w = x.shape[1:3]
    pads = _gradient_conv_padding((h, w), g.shape[1:3], (kh, kw), strides, padding)
    # A negative high padding (output_padding > padding) crops the gradient first.
    g = g[:, :g.shape[1] + min(0, pads[0][1]), :g.shape[2] + min(0, pads[1][1])]
    pads = tuple((lo, max(0, hi)) for lo, hi in pads)
    dx = xla.conv(g, kernel, strides, pads, (1, 1))  # (kh, kw, Cout, Cin) is HWIO here

    # The roles swap: the weight gradient is im2col of the output gradient times the input.
    dk = sum_over_batch_chunks(functools.partial(im2col_weight_grad, kernel_hw=(kh, kw),
                                                 strides=strides, padding=pads, dilation=(1, 1)),
                               g, x)
    return dx, dk.reshape(kernel.shape).astype(kernel.dtype)


conv_transpose.defvjp(_conv_transpose_fwd, _conv_transpose_bwd)


def conv(x: jax.Array, kernel: jax.Array, strides: Pair, padding: Padding,
         dilation: Pair) -> jax.Array:
    """The matmul formulation of `xla.conv`: a 1x1 dot, or XLA's convolution with a matmul
    weight gradient (XLA's own for the few-channel logits layer)."""
    kh, kw, _, cout = kernel.shape
    padding = tuple(tuple(int(v) for v in p) for p in padding)
    if cout < MIN_MATMUL_FEATURES:
        return xla.conv(x, kernel, strides, padding, dilation)
    if (kh, kw) == (1, 1) and padding == ((0, 0), (0, 0)):
        return conv_1x1(x, kernel, strides)
    return conv_matmul_weight_grad(x, kernel, tuple(strides), padding, tuple(dilation))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def max_pool(x: jax.Array, window: Pair, strides: Pair, padding: Padding) -> jax.Array:
    """`xla.max_pool` whose gradient is formed from strided comparisons (see module doc)."""
    return xla.max_pool(x, window, strides, padding)


def _max_pool_fwd(x, window, strides, padding):
    y = xla.max_pool(x, window, strides, padding)
    return y, (x, y)


def _max_pool_bwd(window, strides, padding, residuals, g):
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


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
