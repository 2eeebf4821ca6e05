"""Pure train step: (state, batch) -> (state, metrics). Jitted once by the loop."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from cenet_jax.training.accumulate import accumulated_value_and_grad
from cenet_jax.training.ema import ema_decay_at, update_ema
from cenet_jax.training.state import TrainState

# loss_fn(logits (N, H, W, K), labels int (N, H, W), mask float (N, H, W) | None) -> scalar
LossFn = Callable[[jax.Array, jax.Array, jax.Array | None], jax.Array]


def train_step(state: TrainState, batch: dict[str, jax.Array], *, model: nn.Module,
               tx: optax.GradientTransformation, loss_fn: LossFn,
               use_mask: bool = False, grad_accum_steps: int = 1, ema_decay: float = 0.0,
               ema_warmup: bool = False) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer step with BatchNorm in training mode (statistics over the global batch,
    or over each micro-batch when the gradients of `grad_accum_steps` of them are averaged),
    then the EMA of the new weights when the state keeps one."""
    rng, step_rng = jax.random.split(state.rng)

    def loss_and_stats(params: Any, part: dict[str, jax.Array], part_rng: jax.Array
                       ) -> tuple[jax.Array, Any]:
        logits, updates = model.apply(
            {'params': params, 'batch_stats': state.batch_stats}, part['image'], train=True,
            mutable=['batch_stats'], rngs={'dropout': part_rng})
        mask = part['fov'] if use_mask else None
        with jax.named_scope('loss'):  # names in profiles (bench/step_profile.py)
            loss = loss_fn(logits, part['label'], mask)
        return loss, updates.get('batch_stats', {})

    (loss, batch_stats), grads = accumulated_value_and_grad(
        loss_and_stats, state.params, batch, step_rng, grad_accum_steps)
    with jax.named_scope('optimizer'):
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
    step = state.step + 1
    ema = state.ema
    if ema is not None:
        ema = update_ema(ema, {'params': params, 'batch_stats': batch_stats},
                         ema_decay_at(step, ema_decay, ema_warmup))
    new_state = state.replace(step=step, params=params, batch_stats=batch_stats,
                              opt_state=opt_state, rng=rng, ema=ema)
    grad_norm = optax.tree.norm(grads)
    # A NaN input batch can leave the loss finite while the gradients are not (seen on one device
    # with oneDNN's BatchNorm + ReLU: tests/training/test_loop.py's NaN test): both count.
    metrics = {'loss': loss, 'grad_norm': grad_norm,
               'finite': jnp.isfinite(loss) & jnp.isfinite(grad_norm)}
    return new_state, metrics


def predict_logits(variables: dict[str, Any], images: jax.Array, *, model: nn.Module) -> jax.Array:
    """Inference-mode logits (running BN statistics)."""
    return model.apply(variables, images, train=False)
