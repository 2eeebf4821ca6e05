"""Optimizer and schedule: optax chain == PyTorch SGD(momentum, weight_decay), poly policy."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from cenet_jax.training.state import create_train_state, learning_rate_schedule, make_optimizer


def optim_config(**overrides) -> ml_collections.ConfigDict:
    cfg = ml_collections.ConfigDict(dict(name='sgd', lr=4e-3, momentum=0.9, nesterov=False,
                                         weight_decay=1e-4, schedule='poly', power=0.9,
                                         warmup_steps=0))
    cfg.update(overrides)
    return cfg


def test_poly_schedule_matches_paper_formula():
    total = 100
    schedule = learning_rate_schedule(optim_config(), total)
    for it in (0, 1, 37, 99, 100):
        expected = 4e-3 * (1 - it / total) ** 0.9
        assert float(schedule(it)) == pytest.approx(expected, rel=1e-5, abs=1e-12)


def test_warmup_then_poly():
    schedule = learning_rate_schedule(optim_config(warmup_steps=10), 110)
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(2e-3)
    assert float(schedule(10)) == pytest.approx(4e-3)


def test_unknown_optimizer_and_schedule_are_rejected():
    with pytest.raises(ValueError, match='optim.name'):
        make_optimizer(optim_config(name='lion'), 10)
    with pytest.raises(ValueError, match='optim.schedule'):
        make_optimizer(optim_config(schedule='step'), 10)


def test_sgd_with_weight_decay_matches_torch():
    torch = pytest.importorskip('torch')
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5, 3)).astype(np.float32)
    grads = [rng.normal(size=(5, 3)).astype(np.float32) for _ in range(6)]
    total = 6

    tw = torch.nn.Parameter(torch.tensor(w0))
    opt = torch.optim.SGD([tw], lr=4e-3, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: (1 - it / total) ** 0.9)
    for g in grads:
        tw.grad = torch.tensor(g)
        opt.step()
        sched.step()

    tx = make_optimizer(optim_config(), total)
    state = create_train_state({'params': {'w': jnp.asarray(w0)}}, tx, jax.random.key(0))
    params, opt_state = state.params, state.opt_state
    for g in grads:
        updates, opt_state = tx.update({'w': jnp.asarray(g)}, opt_state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(np.asarray(params['w']), tw.detach().numpy(), rtol=1e-6, atol=1e-7)
