"""Exponential moving average (EMA) of the weights, kept in the train state.

After every optimizer step `ema = d * ema + (1 - d) * weights` for the parameters AND the
BatchNorm running statistics (as timm's ModelEma): the EMA model's statistics then average the
same steps as its weights, and no extra pass over data is needed. With warmup,
`d = min(decay, (1 + t) / (10 + t))` at step t (TensorFlow's `num_updates` rule), so early,
random weights are forgotten quickly.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from cenet_jax.errors import ConfigError


def check_ema_decay(decay: float) -> None:
    """ConfigError unless 0 <= decay < 1 (0 = no EMA)."""
    if not 0.0 <= decay < 1.0:
        raise ConfigError(f'config.ema_decay must be in [0, 1) (0 = off; e.g. 0.999), got {decay}')


def ema_decay_at(step: jax.Array, decay: float, warmup: bool) -> jax.Array:
    """The decay used after optimizer step `step` (1-based)."""
    d = jnp.asarray(decay, jnp.float32)
    if not warmup:
        return d
    t = step.astype(jnp.float32)
    return jnp.minimum(d, (1.0 + t) / (10.0 + t))


def update_ema(ema: dict[str, Any], variables: dict[str, Any], decay: jax.Array) -> dict[str, Any]:
    """`decay * ema + (1 - decay) * variables`, leaf by leaf, in each leaf's dtype."""
    return jax.tree.map(lambda e, v: (decay * e + (1.0 - decay) * v).astype(e.dtype), ema,
                        variables)
