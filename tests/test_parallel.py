"""Data parallelism: one step on 4 devices equals the single-device step (BN included)."""
import functools

import jax
import numpy as np
import pytest

from cenet_jax.losses import segmentation_loss
from cenet_jax.models import build_model, reference_config
from cenet_jax import parallel
from cenet_jax.training.step import train_step
from cenet_jax.training.state import create_train_state, make_optimizer
from tests.training.test_state import optim_config


def _one_step(devices, model, state, batch):
    mesh = parallel.make_mesh(devices)
    step = jax.jit(functools.partial(
        train_step, model=model, tx=make_optimizer(optim_config(lr=0.1), 10),
        loss_fn=functools.partial(segmentation_loss, kind='dice')),
        in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
        out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)))
    step = parallel.on_mesh(step, mesh)   # as the training loop runs it
    new_state, metrics = step(parallel.replicate(state, mesh), parallel.global_batch(batch, mesh))
    return jax.device_get(new_state), jax.device_get(metrics)


def test_four_device_step_equals_single_device_step():
    assert jax.device_count() >= 4, 'tests/conftest.py sets 4 CPU devices'
    cfg = reference_config('backbone')
    cfg.encoder_depth = 18
    model = build_model(cfg)
    rng = np.random.default_rng(0)
    batch = {'image': rng.normal(size=(4, 64, 64, 3)).astype(np.float32),
             'label': (rng.random((4, 64, 64)) > 0.7).astype(np.int32),
             'fov': np.ones((4, 64, 64), np.float32)}
    variables = model.init(jax.random.key(0), batch['image'][:1])
    state = create_train_state(variables, make_optimizer(optim_config(lr=0.1), 10),
                               jax.random.key(1))
    one, m1 = _one_step(jax.devices()[:1], model, state, batch)
    four, m4 = _one_step(jax.devices()[:4], model, state, batch)
    assert float(m1['loss']) == pytest.approx(float(m4['loss']), rel=1e-5)
    # BatchNorm statistics are over the global batch in both cases.
    for a, b in zip(jax.tree.leaves(one.batch_stats), jax.tree.leaves(four.batch_stats)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(four.params)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    changed = [not np.allclose(a, b) for a, b in
               zip(jax.tree.leaves(state.params), jax.tree.leaves(one.params))]
    assert any(changed), 'the step must change the parameters'


def test_batch_not_divisible_by_devices_is_a_clear_error():
    mesh = parallel.make_mesh(jax.devices()[:4])
    with pytest.raises(ValueError, match='multiple of the number of devices'):
        parallel.check_batch_size(6, mesh)
    assert parallel.check_batch_size(8, mesh) == 8
