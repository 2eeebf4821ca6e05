"""The one pytree of training state (step, params, batch_stats, opt_state, rng) and the optimizer."""
from __future__ import annotations

from typing import Any, Mapping

import flax
import jax
import jax.numpy as jnp
import optax

from cenet_jax.errors import ConfigError


@flax.struct.dataclass
class TrainState:
    """Everything a training step reads and writes; checkpointed as one pytree."""
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array

    @property
    def variables(self) -> dict[str, Any]:
        """{'params', 'batch_stats'} for `model.apply`."""
        return {'params': self.params, 'batch_stats': self.batch_stats}


def learning_rate_schedule(optim_cfg: Mapping[str, Any], total_steps: int) -> optax.Schedule:
    """Paper: poly `lr * (1 - step/total)^0.9`; also 'constant' and 'cosine', with linear warmup."""
    lr, kind = float(optim_cfg['lr']), optim_cfg['schedule']
    warmup = int(optim_cfg.get('warmup_steps', 0))
    decay_steps = max(total_steps - warmup, 1)
    if kind == 'poly':
        main = optax.polynomial_schedule(lr, 0.0, power=float(optim_cfg['power']),
                                         transition_steps=decay_steps)
    elif kind == 'constant':
        main = optax.constant_schedule(lr)
    elif kind == 'cosine':
        main = optax.cosine_decay_schedule(lr, decay_steps)
    else:
        raise ConfigError(f"optim.schedule must be 'poly', 'constant' or 'cosine', got {kind!r}")
    if warmup <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def make_optimizer(optim_cfg: Mapping[str, Any], total_steps: int) -> optax.GradientTransformation:
    """SGD as PyTorch's `SGD(momentum, weight_decay)` (decay added to the gradient before
    momentum, on every parameter), or Adam (the reference code's choice)."""
    schedule = learning_rate_schedule(optim_cfg, total_steps)
    name, wd = optim_cfg['name'], float(optim_cfg['weight_decay'])
    if name == 'sgd':
        core = optax.sgd(schedule, momentum=float(optim_cfg['momentum']) or None,
                         nesterov=bool(optim_cfg.get('nesterov', False)))
    elif name == 'adam':
        core = optax.adam(schedule, b1=float(optim_cfg.get('b1', 0.9)),
                          b2=float(optim_cfg.get('b2', 0.999)))
    elif name == 'adamw':
        return optax.adamw(schedule, weight_decay=wd)
    else:
        raise ConfigError(f"optim.name must be 'sgd', 'adam' or 'adamw', got {name!r}")
    parts = [optax.add_decayed_weights(wd)] if wd > 0 else []
    return optax.chain(*parts, core)


def create_train_state(variables: Mapping[str, Any], tx: optax.GradientTransformation,
                       rng: jax.Array) -> TrainState:
    """A fresh state at step 0 from model variables."""
    params = variables['params']
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get('batch_stats', {}), opt_state=tx.init(params),
                      rng=rng)
