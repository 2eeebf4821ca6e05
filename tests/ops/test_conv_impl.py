"""The 'matmul' convolution formulations (cenet_jax.ops.matmul) against XLA's own convolutions: outputs
and both gradients in float64 for every layer kind the networks use, the 'auto' resolution,
and whole-network train-mode gradients against a float64 reference."""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from cenet_jax import ops
from cenet_jax.models import build_model, reference_config
from cenet_jax.ops import matmul, onednn_loader

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.grad_accuracy import compare  # noqa: E402

# (input NHWC, kernel HWIO, strides, padding, dilation): each branch of matmul.conv.
CONV_CASES = {
    '3x3 Winograd gradient': ((2, 32, 34, 5), (3, 3, 5, 9), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    '3x3 Winograd, odd size': ((2, 33, 35, 5), (3, 3, 5, 9), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    '3x3 few pixels (im2col)': ((1, 9, 7, 5), (3, 3, 5, 9), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    '3x3 stride 2': ((2, 9, 10, 4), (3, 3, 4, 9), (2, 2), ((1, 1), (1, 1)), (1, 1)),
    '7x7 stride 2 (stem)': ((2, 9, 10, 3), (7, 7, 3, 9), (2, 2), ((3, 3), (3, 3)), (1, 1)),
    '1x1': ((2, 6, 5, 4), (1, 1, 4, 9), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    '1x1 stride 2': ((2, 9, 10, 4), (1, 1, 4, 9), (2, 2), ((0, 0), (0, 0)), (1, 1)),
    '3x3 dilation 3 (DAC)': ((2, 14, 14, 4), (3, 3, 4, 8), (1, 1), ((3, 3), (3, 3)), (3, 3)),
    '3x3 to 1 channel (XLA)': ((2, 8, 8, 4), (3, 3, 4, 1), (1, 1), ((1, 1), (1, 1)), (1, 1)),
}
# (input NHWC, kernel (kH, kW, Cout, Cin), strides, padding, output_padding)
TRANSPOSE_CASES = {
    'decoder 3x3/2 p1 op1': ((2, 5, 6, 4), (3, 3, 3, 4), (2, 2), (1, 1), (1, 1)),
    'head 4x4/2 p1': ((2, 5, 6, 4), (4, 4, 3, 4), (2, 2), (1, 1), (0, 0)),
    'U-Net 2x2/2': ((2, 5, 6, 4), (2, 2, 3, 4), (2, 2), (0, 0), (0, 0)),
    'output_padding > padding': ((2, 5, 6, 4), (3, 3, 3, 4), (2, 2), (0, 0), (1, 1)),
    'stride 3': ((1, 5, 7, 4), (3, 3, 3, 4), (3, 3), (1, 1), (2, 2)),
}


def _value_and_grads(fn, x, kernel):
    """fn(x, kernel), and d/dx, d/dkernel of sum(fn * g) for a fixed random g."""
    y = fn(x, kernel)
    g = np.random.default_rng(1).standard_normal(y.shape)
    _, vjp = jax.vjp(fn, x, kernel)
    return (y, *vjp(g))


def _assert_same(got, ref, what):
    for name, a, b in zip(('output', 'input gradient', 'kernel gradient'), got, ref):
        scale = float(np.abs(b).max())
        assert scale > 0, f'{what} {name}: empty reference'
        err = float(np.abs(np.asarray(a) - np.asarray(b)).max()) / scale
        assert err < 1e-12, f'{what} {name}: relative error {err:.1e} (float64)'


def _assert_matmul_equals_xla(conv, shapes, what):
    """conv(x, kernel, impl) in float64: the matmul formulation's output and gradients equal
    XLA's."""
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        x, k = (rng.standard_normal(shape) for shape in shapes)
        ref, got = (_value_and_grads(lambda x, k, impl=impl: conv(x, k, impl), x, k)
                    for impl in ('xla', 'matmul'))
        _assert_same(got, ref, what)


@pytest.mark.parametrize('case', sorted(CONV_CASES))
def test_matmul_conv_equals_xla_in_float64(case):
    xs, ks, strides, padding, dilation = CONV_CASES[case]
    _assert_matmul_equals_xla(
        lambda x, k, impl: ops.conv2d(x, k, strides, padding, dilation, impl), (xs, ks), case)


@pytest.mark.parametrize('case', sorted(TRANSPOSE_CASES))
def test_matmul_conv_transpose_equals_xla_in_float64(case):
    xs, ks, strides, padding, output_padding = TRANSPOSE_CASES[case]
    _assert_matmul_equals_xla(
        lambda x, k, impl: ops.conv2d_transpose(x, k, strides, padding, output_padding, impl),
        (xs, ks), case)


@pytest.mark.parametrize('case', ['3x3 Winograd, odd size', '3x3 stride 2', 'head 4x4/2 p1'])
def test_weight_gradients_summed_over_batch_chunks(monkeypatch, case):
    """With a tiny chunk budget every weight gradient is a lax.scan over single images."""
    monkeypatch.setattr(matmul, 'WEIGHT_GRAD_CHUNK_BYTES', 1)
    if case in CONV_CASES:
        test_matmul_conv_equals_xla_in_float64(case)
    else:
        test_matmul_conv_transpose_equals_xla_in_float64(case)


def test_conv_impl_auto_and_errors():
    cpu_default = 'onednn' if onednn_loader.available() else 'matmul'
    assert ops.resolve_conv_impl('auto', 'cpu') == cpu_default   # one device or several
    assert ops.resolve_conv_impl('auto', 'gpu') == 'xla'
    assert ops.resolve_conv_impl('auto', 'tpu') == 'xla'
    assert ops.resolve_conv_impl('xla', 'cpu') == 'xla'
    with pytest.raises(ValueError, match='conv_impl must be one of'):
        ops.resolve_conv_impl('winograd')
    cfg = reference_config()
    assert cfg.conv_impl == 'auto'
    cfg.conv_impl = 'fast'
    with pytest.raises(ValueError, match='conv_impl'):
        build_model(cfg)


def test_parameters_do_not_depend_on_conv_impl():
    shapes = {}
    for impl in ('xla', 'matmul') + (('onednn',) if onednn_loader.available() else ()):
        cfg = reference_config()
        cfg.conv_impl = impl
        variables = jax.eval_shape(lambda: build_model(cfg).init(
            jax.random.key(0), np.zeros((1, 64, 64, 3), np.float32), train=False))
        shapes[impl] = jax.tree.map(lambda a: (a.shape, a.dtype), variables)
    assert all(s == shapes['xla'] for s in shapes.values())


@pytest.mark.slow  # three CE-Net gradient compiles (~50 s); each layer kind is checked above
def test_whole_network_gradients_as_accurate_as_xla():
    """Train-mode Dice gradients of CE-Net (every layer kind) against float64: the matmul and
    onednn paths are as close to float64 as XLA's float32 path, leaf by leaf (a wrong formulation would be
    off by O(1)). Leaves that are zero in exact arithmetic are skipped (see grad_accuracy)."""
    fast = ['matmul'] + (['onednn'] if onednn_loader.available() else [])
    errors = compare(size=64, batch=2, impls=['xla', *fast])
    assert len(errors['xla']) > 100
    for impl in fast:
        for leaf, err in errors[impl].items():
            assert err <= 2 * errors['xla'][leaf] + 1e-4, (
                f'{leaf}: {impl} {err:.2e} vs xla {errors["xla"][leaf]:.2e} relative to float64')
        assert statistics.median(errors[impl].values()) < 1e-2
