"""The oneDNN path on a mesh of 4 CPU devices (tests/conftest.py): each oneDNN call works on its
device's share of the batch, BatchNorm is synchronised over the mesh, and a training step's loss,
gradients and BatchNorm statistics equal those of `xla` on the same mesh."""
from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from cenet_jax import ops, parallel
from cenet_jax.losses import segmentation_loss
from cenet_jax.models import build_model, reference_config
from cenet_jax.ops import onednn_loader, per_shard

pytestmark = pytest.mark.skipif(
    not onednn_loader.available(),
    reason=f'oneDNN extension unavailable: {onednn_loader.unavailable_reason()}')

BATCH, SIZE, DEVICES = 8, 64, 4
# Tolerances of the training step, onednn against xla on the same mesh. Both compute in float32
# and differ in the order of their sums (oneDNN's kernels against XLA's), so the forward pass
# agrees to float32 rounding (measured: logits 4e-6, BN statistics 4e-6 of their largest
# magnitude). The gradient does not: it is discontinuous where a ReLU input crosses 0 or two
# max-pool candidates swap, and float32 rounding moves values across those points. Measured on
# this step: float64 gradients move by 5e-5 (whole tree, relative L2) when the images move by a
# relative 1e-7, but by 4e-10 for 1e-10; xla itself on 1 device and on this 4-device mesh (the
# same arithmetic, summed in another order) differs by 1.6e-3 (whole tree) and up to 8e-3 (one
# parameter's gradient, relative L2); onednn against xla on the mesh by 1.7e-3 and 8.3e-3. A
# mistake in the sharding (per-shard BatchNorm statistics, a weight gradient of one shard or
# summed twice) moves them by tens of percent.
FORWARD_TOLERANCE = 1e-4
GRADIENT_TOLERANCE = 1e-2        # the whole gradient, relative L2
LEAF_GRADIENT_TOLERANCE = 5e-2   # each parameter's gradient, relative L2


def _mesh():
    assert jax.device_count() >= DEVICES, 'tests/conftest.py sets 4 CPU devices'
    return parallel.make_mesh(jax.devices()[:DEVICES])


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def test_batch_axes_follow_the_mesh_set():
    mesh = _mesh()
    assert per_shard.batch_axes(BATCH) == ()            # no mesh set: whole arrays
    with jax.set_mesh(mesh):
        assert per_shard.batch_axes(BATCH) == ('data',)
        assert per_shard.batch_axes(6) == ()            # 6 images do not split over 4
        inner = jax.shard_map(lambda x: x * 0 + len(per_shard.batch_axes(x.shape[0])),
                              in_specs=P('data'), out_specs=P('data'))
        assert int(inner(jnp.zeros(BATCH)).max()) == 0  # already per shard: no second split
    with jax.set_mesh(parallel.make_mesh(jax.devices()[:1])):
        assert per_shard.batch_axes(BATCH) == ()


def _layers(impl):
    """Every onednn operation in a row: convolution with bias, BatchNorm + ReLU (statistics
    summed into the result too), max pooling, transposed convolution with bias."""
    def f(x, kernel, kernel_t, bias, scale):
        y = ops.conv2d(x, kernel, (1, 1), ((1, 1), (1, 1)), (1, 1), impl, bias)
        y, mean, var = ops.batch_norm_train(y, scale, bias, 1e-5, True, impl)
        y = ops.max_pool(y, (3, 3), (2, 2), ((1, 1), (1, 1)), impl)
        y = ops.conv2d_transpose(y, kernel_t, (2, 2), (1, 1), (0, 0), impl, bias[:4])
        return jnp.sum(jnp.sin(y)) + jnp.sum(mean * var)
    return f


def test_each_operation_on_the_mesh_matches_xla():
    """Value and every gradient of conv -> BN + ReLU -> max pool -> transposed conv, per shard
    on 4 devices, against xla on the global batch (one device)."""
    rng = np.random.default_rng(0)
    args = [rng.standard_normal((BATCH, 10, 10, 4)) * 2 + 1, rng.standard_normal((3, 3, 4, 6)),
            rng.standard_normal((4, 4, 4, 6)), rng.standard_normal(6), rng.standard_normal(6)]
    args = [jnp.asarray(a, jnp.float32) for a in args]
    mesh = _mesh()
    sharded = [jax.device_put(args[0], parallel.batch_sharding(mesh)), *args[1:]]
    grad = functools.partial(jax.value_and_grad, argnums=(0, 1, 2, 3, 4))
    got = parallel.on_mesh(jax.jit(grad(_layers('onednn'))), mesh)(*sharded)
    ref = jax.jit(grad(_layers('xla')))(*args)
    for name, a, b in zip(('value', 'x', 'kernel', 'transposed kernel', 'bias', 'scale'),
                          jax.tree.leaves(got), jax.tree.leaves(ref)):
        assert _rel(a, b) < 2e-5, f'{name}: {_rel(a, b):.1e}'


def _small_cenet(conv_impl):
    """CE-Net (ResNet-18, DAC, RMP with pools that fit the 2x2 bottleneck of 64 px images)."""
    cfg = reference_config('cenet')
    cfg.encoder_depth = 18
    cfg.rmp_pool_sizes = (1, 2)
    cfg.conv_impl = conv_impl
    return build_model(cfg)


def _training_step(params, batch_stats, batch, model):
    """(loss, logits, gradients, updated BN statistics) of one training-mode step."""
    def loss_fn(params):
        logits, updates = model.apply({'params': params, 'batch_stats': batch_stats},
                                      batch['image'], train=True, mutable=['batch_stats'])
        loss = segmentation_loss(logits, batch['label'], kind='dice_ce')
        return loss, (logits, updates['batch_stats'])
    (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return loss, logits, grads, stats


@pytest.fixture(scope='module')
def training_step():
    """{impl: (lowered step, compiled HLO text, outputs)} of one training step on the 4-device
    mesh."""
    mesh = _mesh()
    rng = np.random.default_rng(0)
    batch = {'image': rng.normal(size=(BATCH, SIZE, SIZE, 3)).astype(np.float32),
             'label': (rng.random((BATCH, SIZE, SIZE)) > 0.7).astype(np.int32)}
    variables = _small_cenet('xla').init(jax.random.key(0), batch['image'][:1])
    args = (*parallel.replicate((variables['params'], variables['batch_stats']), mesh),
            parallel.global_batch(batch, mesh))
    results = {}
    for impl in ('onednn', 'xla'):
        step = jax.jit(functools.partial(_training_step, model=_small_cenet(impl)),
                       in_shardings=(parallel.replicated(mesh),) * 2
                       + (parallel.batch_sharding(mesh),),
                       out_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh),
                                      parallel.replicated(mesh), parallel.replicated(mesh)))
        lowered = parallel.on_mesh(step.lower, mesh)(*args)
        compiled = lowered.compile()
        results[impl] = lowered, compiled.as_text(), jax.device_get(compiled(*args))
    return results


def _l2(tree) -> float:
    return float(np.sqrt(sum(np.sum(np.square(np.asarray(a, np.float64)))
                             for a in jax.tree.leaves(tree))))


def test_training_step_on_four_devices_matches_xla(training_step):
    """Loss, logits and BN statistics to float32 rounding; gradients to the tolerances above.
    A conv bias followed by BatchNorm has a zero gradient in exact arithmetic: its leaf is
    measured against 1e-6 of the whole gradient's norm rather than its own rounding noise."""
    (loss, logits, grads, stats), (ref_loss, ref_logits, ref_grads, ref_stats) = (
        training_step['onednn'][2], training_step['xla'][2])
    assert _rel(loss, ref_loss) < FORWARD_TOLERANCE, f'loss: {_rel(loss, ref_loss):.1e}'
    assert _rel(logits, ref_logits) < FORWARD_TOLERANCE, f'logits: {_rel(logits, ref_logits):.1e}'
    stat_errors = [_rel(a, b) for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(ref_stats))]
    assert max(stat_errors) < FORWARD_TOLERANCE, f'BN statistics: {max(stat_errors):.1e}'
    diff = jax.tree.map(lambda a, b: np.asarray(a, np.float64) - b, grads, ref_grads)
    total = _l2(ref_grads)
    assert _l2(diff) / total < GRADIENT_TOLERANCE, f'gradients: {_l2(diff) / total:.1e}'
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(diff)[0]]
    leaf_errors = {path: _l2(d) / max(_l2(r), 1e-6 * total)
                   for path, d, r in zip(paths, jax.tree.leaves(diff), jax.tree.leaves(ref_grads))}
    worst = max(leaf_errors, key=leaf_errors.get)
    assert leaf_errors[worst] < LEAF_GRADIENT_TOLERANCE, f'{worst}: {leaf_errors[worst]:.1e}'


def test_onednn_calls_in_the_step_take_the_per_device_batch(training_step):
    """Every oneDNN custom call of the lowered step works on BATCH / 4 images (its first
    operand's leading dimension), and the compiled step gathers no activations."""
    lowered, compiled, _ = training_step['onednn']
    calls = re.findall(r'stablehlo\.custom_call @cenet_onednn\(.*?:\s*\(tensor<(\d+)x',
                       lowered.as_text())
    assert len(calls) > 50, f'{len(calls)} oneDNN calls: the step should run on oneDNN'
    assert set(calls) == {str(BATCH // DEVICES)}, sorted(set(calls))
    assert 'all-gather' not in compiled
