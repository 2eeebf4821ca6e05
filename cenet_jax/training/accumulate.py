"""Gradient accumulation inside the jitted step: the global batch split into k micro-batches,
their gradients averaged by a `lax.scan`, one optimizer update per step.

Micro-batch j holds rows j, j + k, j + 2k, ... of the global batch, so when every device's
share of the batch divides by k, each micro-batch is spread over all devices (no data moves).
The loss and gradients are the means over micro-batches: equal to those of the whole batch for
losses that are means over images or pixels ('ce', Dice with reduction 'image'); a Dice with
reduction 'batch' becomes the mean of the micro-batch Dice losses. BatchNorm normalises each
micro-batch with its own statistics; the running statistics are updated once per step with the
mean of the k micro-batch updates (each starts from the step's running statistics).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from cenet_jax.errors import ConfigError

# fn(params, micro_batch, rng) -> (loss, batch_stats): a loss function of one micro-batch
MicroLossFn = Callable[[Any, dict[str, jax.Array], jax.Array], tuple[jax.Array, Any]]


def check_grad_accum(grad_accum_steps: int, global_batch_size: int, num_devices: int) -> None:
    """ConfigError unless k >= 1 divides the global batch into micro-batches that split evenly
    over the devices."""
    k = grad_accum_steps
    if k < 1 or global_batch_size % k or (global_batch_size // k) % num_devices:
        raise ConfigError(
            f'config.grad_accum_steps={k} must be >= 1 and split config.batch_size='
            f'{global_batch_size} into micro-batches that are a multiple of the number of devices '
            f'({num_devices}); e.g. --config.grad_accum_steps=1, or a batch size of '
            f'{max(k, 1) * num_devices * max(global_batch_size // max(k * num_devices, 1), 1)}.')


def micro_batches(batch: dict[str, jax.Array], k: int) -> dict[str, jax.Array]:
    """(B, ...) leaves -> (k, B // k, ...): micro-batch j holds rows j, j + k, j + 2k, ..."""
    def split(x: jax.Array) -> jax.Array:
        return jnp.swapaxes(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 0, 1)
    return jax.tree.map(split, batch)


def accumulated_value_and_grad(fn: MicroLossFn, params: Any, batch: dict[str, jax.Array],
                               rng: jax.Array, k: int) -> tuple[tuple[jax.Array, Any], Any]:
    """((mean loss, mean batch_stats), mean gradients) of `fn` over k micro-batches; k = 1 is
    `jax.value_and_grad` on the whole batch, unchanged."""
    grad_fn = jax.value_and_grad(fn, has_aux=True)
    if k == 1:
        return grad_fn(params, batch, rng)

    def one(carry: tuple[Any, Any, Any], xs: tuple[dict[str, jax.Array], jax.Array]):
        micro, index = xs
        (loss, stats), grads = grad_fn(params, micro, jax.random.fold_in(rng, index))
        return jax.tree.map(jnp.add, carry, (loss, stats, grads)), None

    (loss, stats), grads = jax.eval_shape(grad_fn, params, jax.tree.map(
        lambda x: x[0], micro_batches(batch, k)), rng)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), (loss, stats, grads))
    sums, _ = jax.lax.scan(one, zeros, (micro_batches(batch, k), jnp.arange(k)))
    loss, stats, grads = jax.tree.map(lambda s: s / k, sums)
    return (loss, stats), grads
