"""The oneDNN operations on each device's share of the batch. XLA cannot split a custom call:
under jit, with the batch sharded over several devices, it would gather the whole batch onto
every device before each oneDNN call. When a mesh is set (`jax.set_mesh`; training and
prediction run under `parallel.make_mesh()`'s), `dispatch` sends the onednn calls through
`jax.shard_map` over the mesh's axes instead. Convolutions and pooling are per sample, so each
shard's call is exact; training BatchNorm reduces its sums over the axes (synchronised
BatchNorm: the statistics and gradients of the global batch, as `xla` computes them).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
from jax.sharding import PartitionSpec as P

from cenet_jax.ops import batch_norm

AxisNames = tuple[str, ...]


def batch_axes(batch_size: int) -> AxisNames:
    """The axes of the mesh set with `jax.set_mesh` that a batch of `batch_size` splits over:
    those not already manual (inside a shard_map), when they hold several devices and divide
    the batch. () (no mesh, one device, an odd batch such as model.init's one image): the call
    takes the whole array."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return ()
    axes = tuple(a for a in mesh.axis_names if a not in mesh.manual_axes)
    devices = math.prod(mesh.shape[a] for a in axes)
    return axes if devices > 1 and batch_size % devices == 0 else ()


def run(fn: Callable[..., Any], x: jax.Array, *params: jax.Array | None,
        replicated_outputs: int = 0) -> Any:
    """fn(x, *params) with x's leading (batch) axis split over `batch_axes` and `params`
    replicated, each device calling fn on its shard; fn returns the batched result, then
    `replicated_outputs` values that are equal on every shard. Without batch axes, fn(x,
    *params) as it is."""
    axes = batch_axes(x.shape[0])
    if not axes:
        return fn(x, *params)
    batched, replicated = P(axes), P()
    out_specs = (batched, *(replicated,) * replicated_outputs) if replicated_outputs else batched
    return jax.shard_map(fn, in_specs=(batched, *(replicated,) * len(params)),
                         out_specs=out_specs, axis_names=frozenset(axes))(x, *params)


def batch_norm_train(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float,
                     relu: bool) -> tuple[jax.Array, jax.Array, jax.Array] | None:
    """Synchronised training BatchNorm (then ReLU if `relu`) of a batch split over
    `batch_axes`: (output, global mean, global biased variance); None when x is not split.

    oneDNN's BatchNorm takes its statistics from the batch it is given, so per shard it runs
    `batch_norm`'s arithmetic with the sums reduced over the axes."""
    axes = batch_axes(x.shape[0])
    if not axes:
        return None

    def shard(x, scale, bias):
        y, mean, var = batch_norm.batch_norm_train(x, scale, bias, epsilon, axes)
        return (jax.nn.relu(y) if relu else y), mean, var

    return run(shard, x, scale, bias, replicated_outputs=2)
