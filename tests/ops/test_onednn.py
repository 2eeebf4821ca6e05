"""The oneDNN path (`model.conv_impl='onednn'`): every layer kind against XLA's own operations
and against float64, bfloat16 against float32 at a stated tolerance, the fallbacks, the errors,
and concurrent calls. Skipped, with the loader's reason, where the extension is not built."""
from __future__ import annotations

import logging
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cenet_jax.errors import ConfigError
from cenet_jax import ops
from cenet_jax.models import build_model, reference_config
from cenet_jax.ops import batch_norm, dispatch, onednn, onednn_loader, onednn_schema

from .test_conv_impl import CONV_CASES, TRANSPOSE_CASES

pytestmark = pytest.mark.skipif(
    not onednn_loader.available(),
    reason=f'oneDNN extension unavailable: {onednn_loader.unavailable_reason()}')

# float32 against a float64 reference: relative to the largest magnitude of each result.
FLOAT32_TOLERANCE = 2e-5
# bfloat16 computation against float32: inputs rounded to 8 bits of mantissa, float32 sums.
BFLOAT16_TOLERANCE = 3e-2


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = float(np.abs(b).max())
    assert scale > 0, 'empty reference'
    return float(np.abs(a - b).max()) / scale


def _values_and_grads(fn, args, dtype, seed=1):
    """fn(*args) and the gradients of sum(fn * g) for every argument, g fixed and random."""
    args = [None if a is None else jnp.asarray(a, dtype) for a in args]
    y, vjp = jax.vjp(fn, *args)
    g = jnp.asarray(np.random.default_rng(seed).standard_normal(y.shape), y.dtype)
    return [y, *vjp(g)]


def _conv_case(case, bias):
    xs, ks, strides, padding, dilation = CONV_CASES[case]
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(xs), rng.standard_normal(ks),
            rng.standard_normal(ks[-1]) if bias else None]
    return args, lambda impl: (lambda x, k, b: ops.conv2d(
        x, k, strides, padding, dilation, impl, b))


def _transpose_case(case, bias):
    xs, ks, strides, padding, output_padding = TRANSPOSE_CASES[case]
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(xs), rng.standard_normal(ks),
            rng.standard_normal(ks[2]) if bias else None]
    return args, lambda impl: (lambda x, k, b: ops.conv2d_transpose(
        x, k, strides, padding, output_padding, impl, b))


def _check_against_float64(args, make):
    """The onednn formulation in float32 is as close to XLA's float64 result as float32
    rounding allows, for the output and every gradient."""
    with jax.enable_x64(True):
        ref = _values_and_grads(make('xla'), args, jnp.float64)
    got = _values_and_grads(jax.jit(make('onednn')), args, jnp.float32)
    for name, a, b in zip(('output', 'input gradient', 'kernel gradient', 'bias gradient'),
                          got, ref):
        if b is not None:
            assert _rel(a, b) < FLOAT32_TOLERANCE, f'{name}: {_rel(a, b):.1e}'


@pytest.mark.parametrize('bias', [False, True], ids=['no bias', 'bias'])
@pytest.mark.parametrize('case', sorted(CONV_CASES))
def test_conv_matches_float64(case, bias):
    _check_against_float64(*_conv_case(case, bias))


@pytest.mark.parametrize('bias', [False, True], ids=['no bias', 'bias'])
@pytest.mark.parametrize('case', sorted(TRANSPOSE_CASES))
def test_conv_transpose_matches_float64(case, bias):
    """'output_padding > padding' has no oneDNN form and takes the matmul formulation."""
    _check_against_float64(*_transpose_case(case, bias))


@pytest.mark.parametrize('case', ['3x3 Winograd gradient', '3x3 dilation 3 (DAC)', 'head 4x4/2 p1',
                                  'decoder 3x3/2 p1 op1'])
def test_bfloat16_against_float32(case):
    """bfloat16 activations with float32 kernels and bias: the result is bfloat16, the kernel
    and bias gradients float32, all within BFLOAT16_TOLERANCE of the float32 computation."""
    args, make = (_conv_case if case in CONV_CASES else _transpose_case)(case, True)
    ref = _values_and_grads(make('onednn'), args, jnp.float32)

    def bf16_fn(x, k, b):
        return make('onednn')(x.astype(jnp.bfloat16), k, b)

    got = _values_and_grads(jax.jit(bf16_fn), args, jnp.float32)
    assert got[0].dtype == jnp.bfloat16
    for name, a, b in zip(('output', 'input gradient', 'kernel gradient', 'bias gradient'),
                          got, ref):
        assert _rel(a, b) < BFLOAT16_TOLERANCE, f'{name}: {_rel(a, b):.1e}'


@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
@pytest.mark.parametrize('case', ['3x3 Winograd gradient', 'head 4x4/2 p1'])
def test_inference_with_a_prepacked_kernel_is_the_training_forward(case, dtype):
    """Outside differentiation the kernel is packed by a call of its own and the convolution
    runs on the packed kernel: the same result, bit for bit, as the training forward (the kernel
    reordered inside the call), and as with prepacking off."""
    args, make = (_conv_case if case in CONV_CASES else _transpose_case)(case, True)
    x, k, b = (jnp.asarray(a, jnp.float32) for a in args)
    fn = make('onednn')

    def infer(x, k, b):
        return fn(x.astype(dtype), k, b)

    packed = jax.jit(infer)
    assert 'pack' in _conv_ops(packed, x, k, b)
    training_forward = jax.jit(lambda *a: jax.vjp(infer, *a)[0])(x, k, b)
    np.testing.assert_array_equal(packed(x, k, b), training_forward)


def _conv_ops(fn, *args) -> list[str]:
    """The oneDNN convolution ops (conv_op names) of fn's lowered calls, in order."""
    text = fn.lower(*args).as_text()
    ops_ = []
    for line in text.splitlines():
        if 'cenet_onednn' in line and 'key = dense<[' in line:
            key = [int(v) for v in line.split('key = dense<[')[1].split(']')[0].split(',')]
            operation, fields = onednn_schema.unpack(key)
            if operation == 'conv':
                ops_.append(onednn_schema.ENUMS['conv_op'][fields['op']].split('_')[0])
    return ops_


def test_tta_packs_each_kernel_once_outside_the_loop_over_views(monkeypatch):
    """In a TTA prediction (8 views through the model in a lax.map) every kernel is packed once,
    in the entry computation, not once per view; PREPACK_ENV=0 packs inside every call."""
    from cenet_jax.evaluation import make_predict_fn
    from cenet_jax.models.layers import Conv

    model = Conv(4, 3, 1, 1, conv_impl='onednn')
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype(np.float32)
    variables = model.init(jax.random.key(0), x)

    def where_the_packs_run(fn) -> dict[str, int]:
        hlo = fn.lower(variables, x).compile().as_text()
        places, computation = {}, None
        for line in hlo.splitlines():
            if line and not line.startswith(' ') and line.rstrip().endswith('{'):
                computation = 'entry' if line.startswith('ENTRY') else 'loop body or other'
            if 'cenet_onednn' in line and 'key = dense<[' in line:
                key = [int(v) for v in line.split('key = dense<[')[1].split(']')[0].split(',')]
                op = onednn_schema.unpack(key)[1]['op']
                name = f'{onednn_schema.ENUMS["conv_op"][op]} in {computation}'
                places[name] = places.get(name, 0) + 1
        return places

    def traced_now():  # a new jitted function, traced with the environment of now
        predict = make_predict_fn(lambda x, v: model.apply(v, x), tta='d8')
        return jax.jit(lambda v, x: predict(x, v))

    assert where_the_packs_run(traced_now()) == {
        'pack_kernel in entry': 1, 'forward_packed in loop body or other': 1}
    monkeypatch.setenv(onednn.PREPACK_ENV, '0')
    assert where_the_packs_run(traced_now()) == {'forward in loop body or other': 1}
    monkeypatch.setenv(onednn.PREPACK_ENV, 'yes')
    with pytest.raises(ValueError, match=onednn.PREPACK_ENV):
        onednn.prepack()


@pytest.mark.parametrize('relu', [False, True], ids=['bn', 'bn+relu'])
@pytest.mark.parametrize('dtype', ['float32', 'bfloat16'])
def test_batch_norm_matches_the_xla_formulation(relu, dtype):
    """oneDNN's training-mode BatchNorm (ReLU fused) against batch_norm's: output, batch
    statistics, and the gradients of x, scale and bias."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((2, 9, 10, 16)) * 3 + 1).astype(np.float32)
    scale, bias = rng.standard_normal(16), rng.standard_normal(16)
    act = jnp.dtype(dtype)

    def ref_fn(x, s, b):
        y, mean, var = batch_norm.batch_norm_train(x, s, b, 1e-5)
        return (jax.nn.relu(y) if relu else y), mean, var

    def got_fn(x, s, b):
        return onednn.batch_norm_train(x.astype(act), s, b, 1e-5, relu)

    args = [jnp.asarray(a, jnp.float32) for a in (x, scale, bias)]
    ref, got = ref_fn(*args), jax.jit(got_fn)(*args)
    assert got[0].dtype == act and got[1].dtype == got[2].dtype == jnp.float32
    g = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
    ref_grads = jax.vjp(lambda *a: ref_fn(*a)[0], *args)[1](g)
    got_grads = jax.jit(lambda *a: jax.vjp(lambda *b: got_fn(*b)[0], *a[:3])[1](
        a[3].astype(act)))(*args, g)
    tol = FLOAT32_TOLERANCE if dtype == 'float32' else BFLOAT16_TOLERANCE
    for name, a, b in zip(('output', 'mean', 'variance', 'x gradient', 'scale gradient',
                           'bias gradient'), (*got, *got_grads), (*ref, *ref_grads)):
        assert _rel(a, b) < tol, f'{name}: {_rel(a, b):.1e}'


@pytest.mark.parametrize('window, strides, padding', [
    ((3, 3), (2, 2), ((1, 1), (1, 1))),   # the stem
    ((2, 2), (2, 2), ((0, 0), (0, 0))),   # U-Net
    ((3, 3), (3, 3), ((0, 0), (0, 0))),   # RMP
    ((3, 3), (1, 1), ((1, 1), (1, 1))),   # Inception block
])
@pytest.mark.parametrize('impl', ['onednn', 'matmul'])
def test_max_pool_matches_xla(impl, window, strides, padding):
    """Forward and gradient of max pooling (ties after a ReLU included) equal XLA's reference
    (the gradient up to the order of the sums where windows overlap)."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(np.maximum(rng.standard_normal((2, 11, 12, 8)), 0), jnp.float32)
    fns = {i: (lambda x, i=i: ops.max_pool(x, window, strides, padding, i))
           for i in ('xla', impl)}
    ref = _values_and_grads(fns['xla'], [x], jnp.float32)
    got = _values_and_grads(jax.jit(fns[impl]), [x], jnp.float32)
    np.testing.assert_array_equal(got[0], ref[0])
    assert _rel(got[1], ref[1]) < 1e-6


def test_auto_resolution_and_fallbacks(caplog):
    """onednn on CPU however many devices JAX has (4 in the tests: the calls run per shard)."""
    with caplog.at_level(logging.WARNING, logger='cenet_jax'):
        assert ops.resolve_conv_impl('auto', 'cpu') == 'onednn'
        assert ops.resolve_conv_impl('onednn', 'cpu') == 'onednn'
    assert caplog.text == ''
    with pytest.raises(ConfigError, match='runs on CPU only'):
        ops.resolve_conv_impl('onednn', 'gpu')


def test_an_extension_that_cannot_load_falls_back_or_is_a_clear_error(monkeypatch, caplog):
    reason = 'the oneDNN extension was not built (test)'
    monkeypatch.setattr(onednn_loader, '_load', lambda: reason)
    dispatch._log_fallback_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger='cenet_jax'):
        assert ops.resolve_conv_impl('auto', 'cpu') == 'matmul'
        assert ops.resolve_conv_impl('auto', 'cpu') == 'matmul'
    assert caplog.text.count(reason) == 1, 'one log line, not one per model'
    cfg = reference_config()
    cfg.conv_impl = 'onednn'
    with pytest.raises(ConfigError, match=r"conv_impl='onednn' cannot run: the oneDNN extension"):
        build_model(cfg)
    dispatch._log_fallback_once.cache_clear()


def test_impossible_operation_fails_at_trace_time_with_onednns_reason():
    spec = onednn.ConvSpec(True, (2, 2), (0, -1, 0, -1), (1, 1), (10, 12))
    key = onednn.conv_key(0, spec, jnp.float32, jnp.float32, False, (2, 5, 6, 4),
                              (3, 3, 3, 4))
    with pytest.raises(ValueError, match='oneDNN cannot run'):
        onednn_loader.describe(key)


def test_calls_from_concurrent_threads_agree():
    """Plans are cached and executions serialised: the same jitted convolution run from four
    threads at once (new shapes, so plans are built concurrently too) gives identical results."""
    rng = np.random.default_rng(0)
    fn = jax.jit(jax.grad(lambda x, k: jnp.sum(ops.conv2d(
        x, k, (1, 1), ((1, 1), (1, 1)), (1, 1), 'onednn') ** 2), argnums=(0, 1)))
    x = jnp.asarray(rng.standard_normal((2, 13, 15, 6)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 6, 10)), jnp.float32)
    results = [None] * 4

    def work(i):
        results[i] = jax.block_until_ready(fn(x, k))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results[1:]:
        for a, b in zip(r, results[0]):
            np.testing.assert_array_equal(a, b)


def test_version_names_the_instruction_set_and_threads(monkeypatch):
    version = onednn_loader.version()
    assert version.startswith('3.') and version.split()[1] != 'unknown_isa', version
    for threads, words in (('1', '1 thread'), ('2', '2 threads')):
        monkeypatch.setenv(onednn_loader.THREADS_ENV, threads)
        assert ops.describe_conv_impl('onednn') == (
            f'onednn (oneDNN {version.split()[0]}, {version.split()[1]}, {words})')
    assert ops.describe_conv_impl('matmul') == 'matmul'
