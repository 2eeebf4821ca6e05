"""FLOP rate in the training log (training/flops.py: XLA's cost analysis of the step lowered
with conv_impl='xla'; MFU from the device's peak) and `config.profile_steps` (training/
profiling.py). A training run that logs its TFLOP/s and writes a profile is test_loop.py's
`trained_demo` (test_demo_training_logs_its_flop_rate_and_writes_the_profile)."""
import functools
import re
import time
import types

import jax
import jax.numpy as jnp
import pytest

from cenet_jax import parallel
from cenet_jax.errors import ConfigError
from cenet_jax.logging import MetricsLogger
from cenet_jax.models import build_model
from cenet_jax.training import loop
from cenet_jax.training.flops import peak_flops_per_device, train_step_flops
from cenet_jax.training.profiling import parse_profile_steps
from cenet_jax.training.state import make_optimizer
from tests.training.conftest import tiny_config


def _shapes(config, batch_size):
    tx = make_optimizer(config.optim, 10)
    model = build_model(config.model)
    state = jax.eval_shape(lambda: loop.initial_state(model, config, tx, parallel.make_mesh()))
    h, w = config.data.image_size
    batch = {'image': jax.ShapeDtypeStruct((batch_size, h, w, 3), jnp.float32),
             'label': jax.ShapeDtypeStruct((batch_size, h, w), jnp.int32),
             'fov': jax.ShapeDtypeStruct((batch_size, h, w), jnp.float32)}
    return tx, state, batch


def test_step_flops_are_the_whole_step_whatever_the_formulation():
    config = tiny_config()
    tx, state, batch = _shapes(config, 4)
    count = functools.partial(train_step_flops, lambda model: loop.make_step(config, model, tx))
    flops = count(config.model, state, batch)
    matmul = config.model.copy_and_resolve_references()
    matmul.conv_impl = 'matmul'
    assert count(matmul, state, batch) == flops        # always counted in the XLA form
    _, state8, batch8 = _shapes(config, 8)
    assert count(config.model, state8, batch8) == pytest.approx(2 * flops, rel=0.02)
    xla = config.model.copy_and_resolve_references()
    xla.conv_impl = 'xla'
    model = build_model(xla)
    forward = jax.jit(functools.partial(model.apply, train=False)).lower(
        {'params': state.params, 'batch_stats': state.batch_stats},
        batch['image']).cost_analysis()['flops']
    assert 2.5 * forward < flops < 4 * forward          # forward + two backward passes + update


def test_peak_flops_of_known_devices():
    def device(platform, kind):
        return types.SimpleNamespace(platform=platform, device_kind=kind)
    assert peak_flops_per_device(device('gpu', 'NVIDIA H100 80GB HBM3')) == 989e12
    assert peak_flops_per_device(device('gpu', 'NVIDIA H100 PCIe')) == 756e12
    assert peak_flops_per_device(device('gpu', 'NVIDIA A100-SXM4-40GB')) == 312e12
    assert peak_flops_per_device(device('tpu', 'TPU v5 lite')) == 197e12
    assert peak_flops_per_device(device('cpu', 'cpu')) is None
    assert peak_flops_per_device(device('gpu', 'Some New GPU')) is None
    assert peak_flops_per_device(device('cpu', 'cpu'), override_tflops=2.0) == 2e12


def test_progress_line_gives_tflops_and_mfu(tmp_path):
    logger = MetricsLogger(tmp_path, 100, enabled=False, flops_per_step=3e12, peak_flops=1e15)
    logger._clock = (time.perf_counter() - 2.0, 0)   # 4 steps in 2 s: 6 TFLOP/s, MFU 0.6 %
    line, rates = logger.progress_line(4, 0.1, 0.5, 1e-3, batch_size=8)
    assert re.search(r' 16\.0 img/s 6\.00 TFLOP/s MFU 0\.6% ETA ', line), line
    assert rates['tflops_per_sec'] == pytest.approx(6.0, rel=0.01)
    assert rates['mfu'] == pytest.approx(0.006, rel=0.01)
    cpu = MetricsLogger(tmp_path, 100, enabled=False, flops_per_step=3e12)
    cpu._clock = (time.perf_counter() - 2.0, 0)
    line, rates = cpu.progress_line(4, 0.1, 0.5, 1e-3, batch_size=8)
    assert 'TFLOP/s' in line and 'MFU' not in line and 'mfu' not in rates


@pytest.mark.parametrize('value, message', [
    ((5, 3), r'1 <= A <= B <= 6'), ((0, 2), r'1 <= A <= B <= 6'), ((2, 9), r'1 <= A <= B <= 6'),
    (('a', 'b'), r'two step numbers'), ((3,), r'two step numbers'),
])
def test_profile_steps_must_be_a_range_of_the_run(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_profile_steps(value, 6)
    assert parse_profile_steps((), 6) is None and parse_profile_steps((2, 2), 6) == (2, 2)
