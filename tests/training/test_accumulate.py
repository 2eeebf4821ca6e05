"""Gradient accumulation: k micro-batches in one jitted step against one step on the whole batch."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cenet_jax.errors import ConfigError
from cenet_jax.losses import segmentation_loss
from cenet_jax import parallel
from cenet_jax.training.accumulate import check_grad_accum, micro_batches
from cenet_jax.training.state import create_train_state
from cenet_jax.training.step import train_step
from tests.training.tiny_net import TinyNet, tiny_batch


def one_step(model, data, k: int, loss_kind: str, mesh=None):
    variables = model.init(jax.random.key(0), jnp.asarray(data['image'][:1]), train=False)
    tx = optax.sgd(0.1)
    state = create_train_state(variables, tx, jax.random.key(1))
    loss_fn = functools.partial(segmentation_loss, kind=loss_kind, reduction='image')
    step = functools.partial(train_step, model=model, tx=tx, loss_fn=loss_fn, grad_accum_steps=k)
    if mesh is None:
        return jax.jit(step)(state, data)
    jitted = jax.jit(step, in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)))
    return jitted(state, parallel.global_batch(data, mesh))


def test_micro_batches_take_every_kth_row():
    x = np.arange(8)
    split = np.asarray(micro_batches({'x': jnp.asarray(x)}, 4)['x'])
    np.testing.assert_array_equal(split, [[0, 4], [1, 5], [2, 6], [3, 7]])


@pytest.mark.parametrize('loss_kind', ['dice', 'ce'])
def test_accumulated_step_equals_whole_batch_step_without_batchnorm(loss_kind):
    model, data = TinyNet(batch_norm=False), tiny_batch()
    whole, m_whole = one_step(model, data, 1, loss_kind)
    mesh = parallel.make_mesh()   # 4 devices: micro-batches of 2 spread over them
    accumulated, m_acc = one_step(model, data, 4, loss_kind, mesh=mesh)
    np.testing.assert_allclose(m_acc['loss'], m_whole['loss'], rtol=1e-6)
    np.testing.assert_allclose(m_acc['grad_norm'], m_whole['grad_norm'], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(accumulated.params), jax.tree.leaves(whole.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_accumulated_step_with_batchnorm_is_close_and_running_mean_exact():
    model, data = TinyNet(batch_norm=True), tiny_batch(size=16)
    whole, m_whole = one_step(model, data, 1, 'ce')
    accumulated, m_acc = one_step(model, data, 2, 'ce')
    # Micro-batches normalise with their own statistics: close, not equal.
    np.testing.assert_allclose(m_acc['loss'], m_whole['loss'], rtol=0.05)
    np.testing.assert_allclose(m_acc['grad_norm'], m_whole['grad_norm'], rtol=0.2)
    # One running-statistics update per step, from the mean of the micro-batch means.
    np.testing.assert_allclose(accumulated.batch_stats['BatchNorm_0']['mean'],
                               whole.batch_stats['BatchNorm_0']['mean'], rtol=1e-5, atol=1e-7)
    var_acc = np.asarray(accumulated.batch_stats['BatchNorm_0']['var'])
    var_whole = np.asarray(whole.batch_stats['BatchNorm_0']['var'])
    assert np.all(var_acc <= var_whole + 1e-6)   # within-micro-batch variance only
    np.testing.assert_allclose(var_acc, var_whole, rtol=0.05)


def test_grad_accum_must_split_the_batch_over_the_devices():
    check_grad_accum(2, 8, 4)
    for k in (0, 3, 4):
        with pytest.raises(ConfigError, match='grad_accum_steps'):
            check_grad_accum(k, 8, 4)
