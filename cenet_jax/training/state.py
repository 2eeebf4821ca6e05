"""The one pytree of training state (step, params, batch_stats, opt_state, rng, ema) and the
optimizer."""
from __future__ import annotations

import re
from typing import Any, Mapping

import flax
import jax
import jax.numpy as jnp
import optax

from cenet_jax.errors import ConfigError
from cenet_jax.training.param_groups import (DEFAULT_GROUP, GroupRule, group_labels, hold_until,
                                             parse_rules)


@flax.struct.dataclass
class TrainState:
    """Everything a training step reads and writes; checkpointed as one pytree."""
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array
    ema: Any = None   # {'params', 'batch_stats'} averaged over steps (training/ema.py), or None

    @property
    def variables(self) -> dict[str, Any]:
        """{'params', 'batch_stats'} for `model.apply`."""
        return {'params': self.params, 'batch_stats': self.batch_stats}

    @property
    def eval_variables(self) -> dict[str, Any]:
        """What validation predicts with: the EMA weights when kept, else the live ones."""
        return self.variables if self.ema is None else self.ema


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


def _base_optimizer(optim_cfg: Mapping[str, Any], schedule: optax.Schedule,
                    weight_decay: float) -> optax.GradientTransformation:
    """The configured optimizer with a given schedule and weight decay (one parameter group)."""
    name, wd = optim_cfg['name'], weight_decay
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


def _group_optimizer(optim_cfg: Mapping[str, Any], schedule: optax.Schedule,
                     rule: GroupRule) -> optax.GradientTransformation:
    """One group's optimizer: frozen (no state), or scaled lr / own decay / held at first."""
    if rule.frozen:
        return optax.set_to_zero()
    scaled = schedule if rule.lr_scale == 1.0 else (lambda count: rule.lr_scale * schedule(count))
    wd = float(optim_cfg['weight_decay']) if rule.weight_decay is None else rule.weight_decay
    tx = _base_optimizer(optim_cfg, scaled, wd)
    return optax.chain(tx, hold_until(rule.freeze_until)) if rule.freeze_until > 0 else tx


def make_optimizer(optim_cfg: Mapping[str, Any], total_steps: int) -> optax.GradientTransformation:
    """SGD as PyTorch's `SGD(momentum, weight_decay)` (decay added to the gradient before
    momentum, on every parameter), or Adam (the reference code's choice); with
    `optim.param_groups` rules, one such optimizer per group (training/param_groups.py)."""
    schedule = learning_rate_schedule(optim_cfg, total_steps)
    rules = parse_rules(optim_cfg.get('param_groups', ()) or ())
    if not rules:
        return _base_optimizer(optim_cfg, schedule, float(optim_cfg['weight_decay']))
    default = GroupRule(text=DEFAULT_GROUP, pattern=re.compile(''))
    transforms = {DEFAULT_GROUP: _group_optimizer(optim_cfg, schedule, default)}
    for i, rule in enumerate(rules):
        transforms[f'group{i}'] = _group_optimizer(optim_cfg, schedule, rule)
    return optax.multi_transform(transforms, lambda params: group_labels(params, rules))


def create_train_state(variables: Mapping[str, Any], tx: optax.GradientTransformation,
                       rng: jax.Array, *, ema: bool = False) -> TrainState:
    """A fresh state at step 0 from model variables (with `ema`: an EMA starting from them)."""
    params, batch_stats = variables['params'], variables.get('batch_stats', {})
    average = jax.tree.map(jnp.copy, {'params': params, 'batch_stats': batch_stats}) if ema else None
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
                      opt_state=tx.init(params), rng=rng, ema=average)
