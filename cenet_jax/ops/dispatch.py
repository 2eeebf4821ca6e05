"""Which formulation runs each operation. `resolve_conv_impl` turns `model.conv_impl='auto'`
into 'xla', 'matmul' or 'onednn' for the machine; `conv2d`, `conv2d_transpose`,
`batch_norm_train` and `max_pool` send a call to that formulation's module (`xla`, `matmul`,
`onednn`, `batch_norm`). Every formulation takes and returns the same arrays (NHWC input, HWIO
kernel, PyTorch's explicit padding), so parameters, converters and checkpoints do not depend on
the choice. `onednn` covers float32 and bfloat16; other dtypes (float64 reference checks) run
`matmul` there. With a mesh set (`jax.set_mesh`) the onednn calls run on each device's share of
the batch (`per_shard`).
"""
from __future__ import annotations

import functools
import logging
from typing import Sequence

import jax

from cenet_jax.errors import ConfigError
from cenet_jax.ops import batch_norm, matmul, onednn, onednn_loader, per_shard, xla

log = logging.getLogger('cenet_jax')

Pair = tuple[int, int]
Padding = Sequence[tuple[int, int]]

CONV_IMPLS = ('xla', 'matmul', 'onednn', 'auto')


def resolve_conv_impl(impl: str, backend: str | None = None) -> str:
    """'auto' -> 'onednn' on CPU where the extension loads (else 'matmul', with one log line
    saying why), 'xla' on GPU/TPU (cuDNN, TPU convolutions). On several CPU devices of one process
    the onednn calls run per shard under the mesh set with `jax.set_mesh` (`per_shard`); with
    several processes 'auto' keeps 'matmul' (a two-process run crashed with onednn). An explicit
    'onednn' that cannot run is a ConfigError that says why."""
    if impl not in CONV_IMPLS:
        raise ValueError(f'model.conv_impl must be one of {CONV_IMPLS}, got {impl!r}')
    backend = backend or jax.default_backend()
    if impl == 'onednn':
        reason = (f'it runs on CPU only (JAX runs on {backend})' if backend != 'cpu'
                  else onednn_loader.unavailable_reason())
        if reason:
            raise ConfigError(f"model.conv_impl='onednn' cannot run: {reason}. Use "
                              "model.conv_impl='auto' or 'xla'.")
        return impl
    if impl != 'auto':
        return impl
    if backend != 'cpu':
        return 'xla'
    if jax.process_count() > 1:   # the per-shard oneDNN path is tested on one process's devices only
        _log_fallback_once(f'{jax.process_count()} processes: oneDNN runs per shard on the devices of '
                           'one process only (tests/ops/test_onednn_mesh.py); set model.conv_impl=onednn to try it')
        return 'matmul'
    reason = onednn_loader.unavailable_reason()
    if reason is None:
        return 'onednn'
    _log_fallback_once(reason)
    return 'matmul'


def describe_conv_impl(impl: str) -> str:
    """A resolved formulation for the logs, e.g. 'onednn (oneDNN 3.2.0, avx512_core_amx, 2
    threads)': the thread count is part of the arithmetic (it orders the convolutions' sums)."""
    if impl == 'onednn' and onednn_loader.available():
        version, _, isa = onednn_loader.version().partition(' ')
        return f'onednn (oneDNN {version}, {isa}, {onednn_loader.threads_words(onednn_loader.num_threads())})'
    return impl


@functools.cache
def _log_fallback_once(reason: str) -> None:
    log.warning("model.conv_impl='auto' uses 'matmul' (XLA) convolutions, not oneDNN: %s",
                reason)


def _add_bias(y: jax.Array, bias: jax.Array | None) -> jax.Array:
    return y if bias is None else y + bias.astype(y.dtype)


def _unresolved(impl: str) -> ValueError:
    return ValueError(f"conv impl must be 'xla', 'matmul' or 'onednn' here (resolve 'auto' "
                      f"first), got {impl!r}")


def conv2d(x: jax.Array, kernel: jax.Array, strides: Pair, padding: Padding, dilation: Pair,
           impl: str = 'xla', bias: jax.Array | None = None) -> jax.Array:
    """Cross-correlation NHWC x HWIO with explicit padding, plus an optional bias, in the chosen
    formulation, computed in x's dtype (on the onednn path a float32 kernel and bias keep
    float32 gradients, the bias gradient summed by oneDNN's weight-gradient pass)."""
    if impl == 'onednn' and onednn.supports(x.dtype, kernel.dtype):
        return per_shard.run(lambda x, k, b: onednn.conv(x, k, strides, padding, dilation, b),
                             x, kernel, bias)
    kernel = kernel.astype(x.dtype)
    if impl == 'xla':
        return _add_bias(xla.conv(x, kernel, strides, padding, dilation), bias)
    if impl in ('matmul', 'onednn'):  # onednn: dtypes oneDNN lacks
        return _add_bias(matmul.conv(x, kernel, strides, padding, dilation), bias)
    raise _unresolved(impl)


def conv2d_transpose(x: jax.Array, kernel: jax.Array, strides: Pair, padding: Pair,
                     output_padding: Pair, impl: str = 'xla',
                     bias: jax.Array | None = None) -> jax.Array:
    """PyTorch ConvTranspose2d semantics (kernel (kH, kW, Cout, Cin)) plus an optional bias, in
    the chosen formulation, computed in x's dtype."""
    if (impl == 'onednn' and onednn.supports(x.dtype, kernel.dtype)
            and onednn.transpose_supported(padding, output_padding)):
        return per_shard.run(lambda x, k, b: onednn.conv_transpose(
            x, k, strides, padding, output_padding, b), x, kernel, bias)
    kernel = kernel.astype(x.dtype)
    if impl == 'xla':
        return _add_bias(xla.conv_transpose(x, kernel, strides, padding, output_padding), bias)
    if impl in ('matmul', 'onednn'):
        return _add_bias(matmul.conv_transpose(x, kernel, strides, padding, output_padding),
                         bias)
    raise _unresolved(impl)


def batch_norm_train(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float,
                     relu: bool = False, impl: str = 'xla'
                     ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Training-mode BatchNorm over the last axis, then a ReLU if `relu`: (output in x's dtype,
    batch mean, biased batch variance). oneDNN's kernel (ReLU fused) for 'onednn' on NHWC
    float32 / bfloat16, else the one-pass hand-VJP arithmetic of `batch_norm`; for 'onednn'
    with the batch split over a mesh, that arithmetic per shard with the sums reduced over the
    mesh (`per_shard.batch_norm_train`). Gradients flow to x, scale and bias only (the
    statistics feed the running averages, not the loss)."""
    if impl == 'onednn' and x.ndim == 4 and onednn.supports(x.dtype):
        sharded = per_shard.batch_norm_train(x, scale, bias, epsilon, relu)
        if sharded is not None:
            return sharded
        return onednn.batch_norm_train(x, scale, bias, epsilon, relu)
    y, mean, var = batch_norm.batch_norm_train(x, scale, bias, epsilon)
    return (jax.nn.relu(y) if relu else y), mean, var


def max_pool(x: jax.Array, window: Pair, strides: Pair, padding: Padding,
             impl: str = 'xla') -> jax.Array:
    """Max pooling NHWC with explicit -inf padding (PyTorch MaxPool2d, floor mode); the
    gradient's formulation follows `impl` (XLA's select-and-scatter, oneDNN's recorded
    argmax, or matmul's strided comparisons)."""
    window, strides = tuple(map(int, window)), tuple(map(int, strides))
    padding = tuple(tuple(int(v) for v in p) for p in padding)
    if impl == 'xla':
        return xla.max_pool(x, window, strides, padding)
    if impl == 'onednn' and onednn.supports(x.dtype):
        return per_shard.run(lambda x: onednn.max_pool(x, window, strides, padding), x)
    return matmul.max_pool(x, window, strides, padding)
