"""Training-side sanity of CE-Net: one SGD step lowers a loss, and bfloat16 compute keeps
float32 parameters, BN statistics and logits."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .array_utils import random_images
from cenet_jax.models import build_model, reference_config

SHAPE = (2, 64, 64, 3)


def init_variables(model, seed: int = 0):
    """He-normal kernels, zero biases, identity BN: the structure of model.init (traced, not
    compiled: compiling CE-Net's ~270 random initialisers takes ~8 s on CPU) with numpy values."""
    x = jax.ShapeDtypeStruct(SHAPE, jnp.float32)
    shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name == 'kernel':
            fan_in = np.prod(leaf.shape[:-1])
            return rng.normal(0.0, np.sqrt(2.0 / fan_in), leaf.shape).astype(leaf.dtype)
        return (np.ones if name in ('scale', 'var') else np.zeros)(leaf.shape, leaf.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def test_one_sgd_step_lowers_the_loss():
    model = build_model(reference_config('cenet'))
    variables = init_variables(model)
    x = random_images(SHAPE, seed=0)
    mask = (np.random.default_rng(0).random(SHAPE[:3] + (1,)) > 0.5).astype(np.float32)
    optimizer = optax.sgd(0.1)

    def loss_fn(params, batch_stats):
        logits, updates = model.apply({'params': params, 'batch_stats': batch_stats}, x,
                                      train=True, mutable=['batch_stats'])
        return optax.sigmoid_binary_cross_entropy(logits, mask).mean(), updates['batch_stats']

    @jax.jit
    def step(params, batch_stats, opt_state):
        (loss, new_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch_stats)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_stats, opt_state, loss, grads

    params, stats = variables['params'], variables['batch_stats']
    new_params, new_stats, opt_state, loss_before, grads = step(params, stats,
                                                                optimizer.init(params))
    _, _, _, loss_after, _ = step(new_params, new_stats, opt_state)
    assert np.isfinite(float(loss_before)) and float(loss_after) < float(loss_before)
    norms = jax.tree.map(lambda g: float(jnp.abs(g).max()), grads)
    assert all(np.isfinite(n) for n in jax.tree.leaves(norms))
    no_gradient = [jax.tree_util.keystr(path) for path, n in
                   jax.tree_util.tree_leaves_with_path(norms) if n == 0.0]
    assert not no_gradient, f'parameters without gradient: {no_gradient}'
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), stats, new_stats)
    assert all(jax.tree.leaves(changed)), 'train mode must update every BN running statistic'


def test_bfloat16_keeps_float32_state_and_logits():
    cfg = reference_config('cenet')
    model32 = build_model(cfg)
    cfg.dtype = 'bfloat16'
    model16 = build_model(cfg)
    variables = init_variables(model16)
    dtypes = {leaf.dtype for leaf in jax.tree.leaves(variables)}
    assert dtypes == {jnp.dtype(jnp.float32)}
    x = random_images(SHAPE, seed=1)
    ref = jax.jit(functools.partial(model32.apply, train=False))(variables, x)
    low = jax.jit(functools.partial(model16.apply, train=False))(variables, x)
    assert low.dtype == jnp.float32
    train_logits, updates = jax.eval_shape(
        functools.partial(model16.apply, train=True, mutable=['batch_stats']), variables, x)
    assert train_logits.dtype == jnp.float32
    assert {leaf.dtype for leaf in jax.tree.leaves(updates)} == {jnp.dtype(jnp.float32)}
    relative = float(jnp.linalg.norm(low - ref) / jnp.linalg.norm(ref))
    print(f'bfloat16 vs float32 logits: relative L2 error {relative:.2e}')
    assert relative < 0.05
