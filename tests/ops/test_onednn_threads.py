"""OpenMP threads of the oneDNN path: which setting wins, that the count travels in every plan
key (so a primitive is built and run with the same count), and that one training step of a
tiny CE-Net gives the same loss at 1 and at 2 threads."""
from __future__ import annotations

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cenet_jax.errors import ConfigError
from cenet_jax.models import build_model
from cenet_jax.ops import onednn, onednn_loader
from cenet_jax.training import loop
from cenet_jax.training.state import create_train_state, make_optimizer
from tests.training.conftest import tiny_config
from tests.training.tiny_net import tiny_batch

pytestmark = pytest.mark.skipif(
    not onednn_loader.available(),
    reason=f'oneDNN extension unavailable: {onednn_loader.unavailable_reason()}')

THREADS, OMP = onednn_loader.THREADS_ENV, onednn_loader.OMP_THREADS_ENV
# The two thread counts split the reductions of the gradients (weight gradients, BatchNorm sums)
# differently, so float32 sums are reassociated and the second step's loss (after one update)
# moves by a few ulps: measured 1.8e-7 relative (the first step's loss: equal). 2e-6 leaves room
# for other instruction sets and is far below what a wrong split would do (a lost or doubled
# chunk of a sum moves the loss by percents).
RTOL = 2e-6


@pytest.mark.parametrize('env, expected', [
    ({THREADS: '3', OMP: '5'}, 3),     # ours first
    ({OMP: '5,2'}, 5),                 # OpenMP's, its first (outer) level
    ({THREADS: ' ', OMP: '4'}, 4),     # blank is unset
    ({}, len(os.sched_getaffinity(0))),
])
def test_which_setting_gives_the_thread_count(monkeypatch, env, expected):
    for name in (THREADS, OMP):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert onednn_loader.num_threads() == expected


@pytest.mark.parametrize('name, value', [(THREADS, '0'), (THREADS, 'two'), (OMP, '-1')])
def test_a_bad_thread_count_names_the_variable(monkeypatch, name, value):
    monkeypatch.delenv(THREADS, raising=False)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f'{name}='):
        onednn_loader.num_threads()


@pytest.mark.parametrize('threads', [1, 2])
def test_each_plan_is_built_for_the_count_in_its_key(monkeypatch, threads):
    monkeypatch.setenv(THREADS, str(threads))
    spec = onednn.ConvSpec(False, (1, 1), (1, 1, 1, 1), (1, 1), (9, 9))
    key = onednn.conv_key(onednn.FORWARD, spec, jnp.float32, jnp.float32, True, (2, 9, 9, 8),
                          (3, 3, 8, 16))
    assert onednn_loader.plan_key(key) == (threads, *key)
    assert onednn_loader.describe(key).threads == threads


def _plan_threads(hlo: str) -> set[int]:
    """The thread counts in front of the keys of the oneDNN calls of a lowered step."""
    return {int(m.group(1)) for m in re.finditer(r'key = dense<\[(\d+)', hlo)}


def test_a_training_step_gives_the_same_loss_at_1_and_2_threads(monkeypatch):
    """Tiny CE-Net (ResNet-18 + DAC), 64 px, batch 2, onednn: two steps per thread count, each
    count traced afresh (the count is read at trace time and compiled into the step)."""
    config = tiny_config(batch_size=2)
    config.model.conv_impl = 'onednn'
    model = build_model(config.model)
    batch = {k: jnp.asarray(v) for k, v in tiny_batch(size=2, hw=64).items()}
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(batch['image'])
    tx = make_optimizer(config.optim, 10)
    losses = {}
    for threads in (1, 2):
        monkeypatch.setenv(THREADS, str(threads))
        state = create_train_state(variables, tx, jax.random.key(1))
        lowered = jax.jit(loop.make_step(config, model, tx)).lower(state, batch)
        assert _plan_threads(lowered.as_text()) == {threads}
        step = lowered.compile()
        state, first = step(state, batch)
        _, second = step(state, batch)
        losses[threads] = [float(first['loss']), float(second['loss'])]
    np.testing.assert_allclose(losses[2], losses[1], rtol=RTOL)
