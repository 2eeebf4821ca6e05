"""EMA of the weights: the update rule in train_step, warmup, and config errors."""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from cenet_jax import run_config
from cenet_jax.errors import ConfigError
from cenet_jax.evaluation.run import use_ema_weights
from cenet_jax.losses import segmentation_loss
from cenet_jax.training.ema import check_ema_decay, ema_decay_at
from cenet_jax.training.state import create_train_state
from cenet_jax.training.step import train_step
from tests.training.tiny_net import TinyNet, tiny_batch


def test_warmup_decay_follows_num_updates_rule():
    for step, expected in ((1, 2 / 11), (10, 11 / 20), (1000, 0.99)):
        assert float(ema_decay_at(jnp.asarray(step), 0.99, True)) == pytest.approx(expected)
    assert float(ema_decay_at(jnp.asarray(1), 0.99, False)) == pytest.approx(0.99)


@pytest.mark.parametrize('warmup, decay', [(False, 0.9), (True, 2 / 11)])
def test_train_step_averages_params_and_batch_stats(warmup, decay):
    model, data = TinyNet(), tiny_batch()
    variables = model.init(jax.random.key(0), jnp.asarray(data['image'][:1]), train=False)
    tx = optax.sgd(0.1)
    state = create_train_state(variables, tx, jax.random.key(1), ema=True)
    step = jax.jit(functools.partial(train_step, model=model, tx=tx, ema_decay=0.9,
                                     ema_warmup=warmup,
                                     loss_fn=functools.partial(segmentation_loss, kind='ce')))
    new, _ = step(state, data)
    live = {'params': new.params, 'batch_stats': new.batch_stats}
    expected = jax.tree.map(lambda e, v: decay * e + (1 - decay) * v, state.ema, live)
    assert jax.tree.structure(new.ema) == jax.tree.structure(live)
    for got, want, before in zip(jax.tree.leaves(new.ema), jax.tree.leaves(expected),
                                 jax.tree.leaves(state.ema)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(new.ema),
                                                   jax.tree.leaves(state.ema))]
    assert any(moved)
    assert new.eval_variables is new.ema and state.replace(ema=None).eval_variables['params'] \
        is state.params


def test_bad_decay_and_ema_of_a_run_without_one_are_config_errors():
    with pytest.raises(ConfigError, match='ema_decay'):
        check_ema_decay(1.0)
    no_ema = ml_collections.ConfigDict({'ema_decay': 0.0})
    with pytest.raises(ConfigError, match='no EMA'):
        use_ema_weights(no_ema, True)
    assert use_ema_weights(no_ema, None) is False
    with_ema = ml_collections.ConfigDict({'ema_decay': 0.99})
    assert use_ema_weights(with_ema, None) is True and use_ema_weights(with_ema, False) is False


def test_state_shaping_fields_are_locked_on_resume():
    assert run_config.is_locked('ema_decay') and run_config.is_locked('optim.param_groups')
    for free in ('ema_warmup', 'grad_accum_steps'):
        assert not run_config.is_locked(free), free
