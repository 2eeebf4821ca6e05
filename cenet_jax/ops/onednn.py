"""The `onednn` formulation (`model.conv_impl='onednn'`): (transposed) convolutions with bias,
training-mode BatchNorm (optionally with its ReLU) and max pooling, each a custom VJP whose
forward and backward are oneDNN calls (`onednn_loader.call`), the kernels PyTorch runs on CPU.

Arrays keep JAX's layouts and parameters their names, shapes and dtypes: activations NHWC,
kernels HWIO, transposed kernels (kH, kW, Cout, Cin). Computation is float32 or bfloat16; with
bfloat16 activations the float32 kernels, biases and BatchNorm parameters are converted inside
the calls, and their gradients come back in float32 (summed in float32). Other dtypes (float64
reference checks) are the callers' business: see `supports`.

Inside `jax.shard_map` (`per_shard`) the calls are typed as varying over the manual axes their
inputs vary over, and the gradient of an input that does not vary (a replicated kernel, bias or
BatchNorm parameter) is the sum of the shards' gradients.
"""
from __future__ import annotations

import functools
import os
import struct
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from cenet_jax.ops import onednn_loader, onednn_schema
from cenet_jax.ops.onednn_loader import DTYPE_CODES

Pair = tuple[int, int]
Padding = Sequence[tuple[int, int]]

FORWARD, BACKWARD_DATA, BACKWARD_WEIGHTS, PACK_KERNEL, FORWARD_PACKED = range(
    len(onednn_schema.ENUMS['conv_op']))
BACKWARD = onednn_schema.code('pass', 'backward')  # batch norm and pooling; FORWARD is theirs too
# Activation layout inside convolution calls: 'nhwc' (as JAX holds them, no reorder) or 'any'
# (oneDNN's choice, reordered from and to NHWC in the call). Default, as measured
# (docs/performance.md): nhwc for float32 (oneDNN's brgconv kernels beat its blocked ones plus
# the reorders) and any for bfloat16 (on AMX oneDNN picks NHWC itself; forcing it selects
# slower kernels). The variable is for measurements.
LAYOUT_ENV = 'CENET_JAX_ONEDNN_LAYOUT'
LAYOUTS = {name: onednn_schema.code('layout', name) for name in onednn_schema.ENUMS['layout']}
# Inference convolutions (outside differentiation) pack their kernel into oneDNN's layout in a
# call of its own, which XLA hoists out of the loop over TTA views, then convolve with the packed
# kernel; '0' packs inside every call as training does (for measurements: docs/performance.md).
PREPACK_ENV = 'CENET_JAX_ONEDNN_PREPACK'


def supports(*dtypes) -> bool:
    """Whether oneDNN computes in these dtypes (float32, bfloat16)."""
    return all(jnp.dtype(d) in DTYPE_CODES for d in dtypes)


def _code(dtype) -> int:
    return DTYPE_CODES[jnp.dtype(dtype)]


def _varying(x: jax.Array) -> frozenset:
    """The manual mesh axes (inside jax.shard_map) over which x differs from device to device."""
    return jax.typeof(x).mat.varying


def _call(key: onednn_loader.Key, inputs: Sequence[jax.Array],
          results: Sequence[jax.ShapeDtypeStruct]) -> list[jax.Array]:
    """`onednn_loader.call` typed for jax.shard_map: the inputs are cast to the axes any of them
    varies over, and so are the outputs (XLA's custom call is typed as not varying). Outside
    shard_map both casts are nothing."""
    axes = tuple(sorted(frozenset().union(*map(_varying, inputs)), key=str))
    inputs = [jax.lax.pcast(a, tuple(ax for ax in axes if ax not in _varying(a)), to='varying')
              for a in inputs]
    return [jax.lax.pcast(y, axes, to='varying')
            for y in onednn_loader.call(key, inputs, results)]


def _sum_to(ct: jax.Array, primal: jax.Array) -> jax.Array:
    """The cotangent of `primal` from a per-shard one: summed over the manual axes along which
    `primal` is replicated but `ct` varies (a replicated kernel's gradient is the sum of the
    shards' gradients), in primal's dtype."""
    axes = tuple(sorted(_varying(ct) - _varying(primal), key=str))
    return (jax.lax.psum(ct, axes) if axes else ct).astype(primal.dtype)


def activation_layout(act_dtype) -> str:
    """'nhwc' or 'any' for convolutions on these activations (LAYOUT_ENV overrides)."""
    layout = os.environ.get(LAYOUT_ENV) or (
        'nhwc' if jnp.dtype(act_dtype) == jnp.float32 else 'any')
    if layout not in LAYOUTS:
        raise ValueError(f'{LAYOUT_ENV} must be one of {sorted(LAYOUTS)}, got {layout!r}')
    return layout


# ---------------------------------------------------------------------------------------------
# (Transposed) convolution with bias.

class ConvSpec(NamedTuple):
    """The static description of one (transposed) convolution: PyTorch semantics, padding as
    (top, bottom, left, right) of oneDNN's problem (for a transposed convolution, of its
    output), and the output size."""
    transposed: bool
    strides: Pair
    padding4: tuple[int, int, int, int]
    dilation: Pair
    out_hw: Pair


def conv_key(op: int, spec: ConvSpec, act_dtype, weight_dtype, bias: bool, src_shape,
             kernel_shape) -> onednn_loader.Key:
    """csrc/conv.cc's key. `weight_dtype`: the kernel (and bias) buffers' type."""
    n, ih, iw, ic = src_shape
    kh, kw = kernel_shape[:2]
    oc = kernel_shape[2] if spec.transposed else kernel_shape[3]
    (oh, ow), (sh, sw), (dh, dw) = spec.out_hw, spec.strides, spec.dilation
    pad_top, pad_bottom, pad_left, pad_right = spec.padding4
    return onednn_schema.pack(
        'conv', op=op, transposed=spec.transposed, act_dtype=_code(act_dtype),
        weight_dtype=_code(weight_dtype), layout=LAYOUTS[activation_layout(act_dtype)],
        bias=bias, n=n, ic=ic, ih=ih, iw=iw, oc=oc, oh=oh, ow=ow, kh=kh, kw=kw, sh=sh, sw=sw,
        pad_top=pad_top, pad_bottom=pad_bottom, pad_left=pad_left, pad_right=pad_right, dh=dh,
        dw=dw)


def prepack() -> bool:
    """Whether inference convolutions pack their kernels in a call of their own (PREPACK_ENV,
    read at trace time; default yes)."""
    text = os.environ.get(PREPACK_ENV, '1').strip()
    if text not in ('0', '1'):
        raise ValueError(f'{PREPACK_ENV} must be 0 or 1, got {text!r}')
    return text == '1'


def _conv_forward(x, kernel, bias, spec: ConvSpec, packed: bool) -> jax.Array:
    """y = x (*) kernel + bias; `packed`: the kernel reordered by a call of its own first."""
    cout = kernel.shape[2 if spec.transposed else 3]
    key = functools.partial(conv_key, spec=spec, act_dtype=x.dtype, weight_dtype=kernel.dtype,
                            bias=bias is not None, src_shape=x.shape, kernel_shape=kernel.shape)
    bias = [] if bias is None else [bias.astype(kernel.dtype)]
    if packed:
        pack = key(PACK_KERNEL)
        (kernel,) = _call(pack, [kernel], [jax.ShapeDtypeStruct(
            (onednn_loader.output_bytes(pack)[0],), jnp.uint8)])
    (y,) = _call(key(FORWARD_PACKED if packed else FORWARD), [x, kernel, *bias],
                 [jax.ShapeDtypeStruct((x.shape[0], *spec.out_hw, cout), x.dtype)])
    return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv(x: jax.Array, kernel: jax.Array, bias: jax.Array | None, spec: ConvSpec) -> jax.Array:
    # Not differentiated: inference, where the kernel is the same for every call of a loop.
    return _conv_forward(x, kernel, bias, spec, packed=prepack())


def _conv_fwd(x, kernel, bias, spec):
    # Training: the kernel changes every step and the data gradient needs it in another layout
    # anyway (csrc/conv.cc), so the forward reorders it inside its call.
    return _conv_forward(x, kernel, bias, spec, packed=False), (x, kernel, bias)


def _conv_bwd(spec, residuals, g):
    x, kernel, bias = residuals
    g = g.astype(x.dtype)
    key = functools.partial(conv_key, spec=spec, act_dtype=x.dtype, weight_dtype=kernel.dtype,
                            src_shape=x.shape, kernel_shape=kernel.shape)
    (dx,) = _call(key(BACKWARD_DATA, bias=False), [g, kernel],
                  [jax.ShapeDtypeStruct(x.shape, x.dtype)])
    results = [jax.ShapeDtypeStruct(kernel.shape, kernel.dtype)]
    if bias is not None:
        results.append(jax.ShapeDtypeStruct(bias.shape, kernel.dtype))
    grads = _call(key(BACKWARD_WEIGHTS, bias=bias is not None), [x, g], results)
    dbias = None if bias is None else _sum_to(grads[1], bias)
    return dx, _sum_to(grads[0], kernel), dbias


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv(x: jax.Array, kernel: jax.Array, strides: Pair, padding: Padding, dilation: Pair,
         bias: jax.Array | None = None) -> jax.Array:
    """NHWC x HWIO cross-correlation with explicit padding (+ bias) in x's dtype, forward and
    gradients in oneDNN."""
    padding = tuple(tuple(int(v) for v in p) for p in padding)
    strides, dilation = tuple(map(int, strides)), tuple(map(int, dilation))
    kh, kw = kernel.shape[:2]
    out_hw = tuple((x.shape[1 + d] + sum(padding[d]) - dilation[d] * ((kh, kw)[d] - 1) - 1)
                   // strides[d] + 1 for d in range(2))
    spec = ConvSpec(False, strides, (*padding[0], *padding[1]), dilation, out_hw)
    return _conv(x, kernel, bias, spec)


def transpose_supported(padding: Pair, output_padding: Pair) -> bool:
    """oneDNN has no negative padding: output_padding may not exceed padding."""
    return all(op <= p for op, p in zip(output_padding, padding))


def conv_transpose(x: jax.Array, kernel: jax.Array, strides: Pair, padding: Pair,
                   output_padding: Pair, bias: jax.Array | None = None) -> jax.Array:
    """PyTorch ConvTranspose2d (kernel (kH, kW, Cout, Cin)) + bias, forward and gradients in
    oneDNN."""
    strides, padding = tuple(map(int, strides)), tuple(map(int, padding))
    output_padding = tuple(map(int, output_padding))
    kh, kw = kernel.shape[:2]
    out_hw = tuple((x.shape[1 + d] - 1) * strides[d] - 2 * padding[d] + (kh, kw)[d]
                   + output_padding[d] for d in range(2))
    # oneDNN's deconvolution pads the output by padding_l on top / left and padding_r at the
    # end: PyTorch's output_padding extends the end, so padding_r = padding - output_padding.
    pad4 = (padding[0], padding[0] - output_padding[0], padding[1], padding[1] - output_padding[1])
    return _conv(x, kernel, bias, ConvSpec(True, strides, pad4, (1, 1), out_hw))


# ---------------------------------------------------------------------------------------------
# Training-mode BatchNorm (+ ReLU).

def _batch_norm_key(op: int, x_shape, dtype, relu: bool, epsilon: float) -> onednn_loader.Key:
    n, h, w, c = x_shape
    bits = struct.unpack('<I', struct.pack('<f', epsilon))[0]
    return onednn_schema.pack('batch_norm', op=op, act_dtype=_code(dtype), relu=relu, n=n, c=c,
                              h=h, w=w, epsilon_bits=bits)


def _bn_forward(x, scale, bias, epsilon, relu):
    key = _batch_norm_key(FORWARD, x.shape, x.dtype, relu, epsilon)
    c = x.shape[-1]
    vec = jax.ShapeDtypeStruct((c,), jnp.float32)
    results = [jax.ShapeDtypeStruct(x.shape, x.dtype), vec, vec]
    if relu:
        results.append(jax.ShapeDtypeStruct((onednn_loader.output_bytes(key)[3],), jnp.uint8))
    out = _call(key, [x, scale.astype(jnp.float32), bias.astype(jnp.float32)], results)
    return out[0], out[1], out[2], (out[3] if relu else None)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _batch_norm(x, scale, bias, epsilon, relu):
    y, mean, var, _ = _bn_forward(x, scale, bias, epsilon, relu)
    return y, mean, var


def _batch_norm_fwd(x, scale, bias, epsilon, relu):
    y, mean, var, mask = _bn_forward(x, scale, bias, epsilon, relu)
    return (y, mean, var), (x, scale, bias, mean, var, mask)


def _batch_norm_bwd(epsilon, relu, residuals, cotangents):
    x, scale, bias, mean, var, mask = residuals
    dy = cotangents[0].astype(x.dtype)  # mean and var leave through stop_gradient
    key = _batch_norm_key(BACKWARD, x.shape, x.dtype, relu, epsilon)
    inputs = [x, dy, mean, var, scale.astype(jnp.float32)] + ([mask] if relu else [])
    vec = jax.ShapeDtypeStruct(scale.shape, jnp.float32)
    dx, dscale, dbias = _call(key, inputs, [jax.ShapeDtypeStruct(x.shape, x.dtype), vec, vec])
    return dx, _sum_to(dscale, scale), _sum_to(dbias, bias)


_batch_norm.defvjp(_batch_norm_fwd, _batch_norm_bwd)


def batch_norm_train(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float,
                     relu: bool = False) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(normalised x, then ReLU if `relu`, in x's dtype; batch mean; biased batch variance) for
    NHWC x; gradients flow to x, scale and bias only (the statistics feed running averages)."""
    y, mean, var = _batch_norm(x, scale, bias, float(epsilon), bool(relu))
    return y, jax.lax.stop_gradient(mean), jax.lax.stop_gradient(var)


# ---------------------------------------------------------------------------------------------
# Max pooling.

def _pool_key(op: int, x_shape, y_hw: Pair, dtype, window: Pair, strides: Pair,
              padding: Padding) -> onednn_loader.Key:
    n, h, w, c = x_shape
    (oh, ow), (kh, kw), (sh, sw) = y_hw, window, strides
    (pad_top, pad_bottom), (pad_left, pad_right) = padding
    return onednn_schema.pack('max_pool', op=op, act_dtype=_code(dtype), n=n, c=c, ih=h, iw=w,
                              oh=oh, ow=ow, kh=kh, kw=kw, sh=sh, sw=sw, pad_top=pad_top,
                              pad_bottom=pad_bottom, pad_left=pad_left, pad_right=pad_right)


def _pool_out_hw(x_shape, window, strides, padding) -> Pair:
    return tuple((x_shape[1 + d] + sum(padding[d]) - window[d]) // strides[d] + 1
                 for d in range(2))


def _pool_forward(x, window, strides, padding):
    y_hw = _pool_out_hw(x.shape, window, strides, padding)
    key = _pool_key(FORWARD, x.shape, y_hw, x.dtype, window, strides, padding)
    y_shape = (x.shape[0], *y_hw, x.shape[-1])
    argmax = jax.ShapeDtypeStruct((onednn_loader.output_bytes(key)[1],), jnp.uint8)
    return _call(key, [x], [jax.ShapeDtypeStruct(y_shape, x.dtype), argmax])


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _max_pool(x, window, strides, padding, in_hw):
    return _pool_forward(x, window, strides, padding)[0]


def _max_pool_fwd(x, window, strides, padding, in_hw):
    y, argmax = _pool_forward(x, window, strides, padding)
    return y, argmax


def _max_pool_bwd(window, strides, padding, in_hw, argmax, g):
    x_shape = (g.shape[0], *in_hw, g.shape[-1])
    key = _pool_key(BACKWARD, x_shape, g.shape[1:3], g.dtype, window, strides, padding)
    (dx,) = _call(key, [g, argmax], [jax.ShapeDtypeStruct(x_shape, g.dtype)])
    return (dx,)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def max_pool(x: jax.Array, window: Pair, strides: Pair, padding: Padding) -> jax.Array:
    """Max pooling of NHWC x with -inf padding (PyTorch MaxPool2d); the backward routes each
    gradient to the maximum oneDNN recorded in the forward."""
    padding = tuple(tuple(int(v) for v in p) for p in padding)
    return _max_pool(x, tuple(map(int, window)), tuple(map(int, strides)), padding,
                     tuple(x.shape[1:3]))
