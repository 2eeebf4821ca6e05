"""Output shapes, parameter counts (against the PyTorch models) and input-size checks of
every Table VI variant, all through jax.eval_shape (nothing is compiled)."""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import pytest

from cenet_jax.models import VARIANTS, build_model, reference_config


def abstract_init(model, shape):
    """Variables of `model` as ShapeDtypeStructs, for an NHWC input of `shape`."""
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    return jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)


def abstract_logits(model, variables, shape, train=False):
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    fn = functools.partial(model.apply, train=train, mutable=['batch_stats'] if train else False)
    return jax.eval_shape(fn, variables, x)


def count(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


@pytest.mark.parametrize('variant, num_classes',
                         [(v, 1) for v in sorted(VARIANTS)] + [('cenet', 11), ('unet', 3)])
def test_variant_output_shape_and_dtypes(variant, num_classes):
    cfg = reference_config(variant)
    cfg.num_classes = num_classes
    model = build_model(cfg)
    variables = abstract_init(model, (2, 64, 96, 3))
    assert set(variables) == {'params', 'batch_stats'}
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    logits = abstract_logits(model, variables, (2, 64, 96, 3))
    assert (logits.shape, logits.dtype) == ((2, 64, 96, num_classes), jnp.float32)
    logits, updates = abstract_logits(model, variables, (2, 96, 64, 3), train=True)
    assert logits.shape == (2, 96, 64, num_classes)
    assert jax.tree.map(lambda a: a.shape, updates['batch_stats']) == \
        jax.tree.map(lambda a: a.shape, variables['batch_stats'])


@pytest.mark.parametrize('variant', sorted(VARIANTS))
def test_parameter_count_equals_pytorch(variant, reference_model):
    model_torch = reference_model(variant)
    variables = abstract_init(build_model(reference_config(variant)), (1, 64, 64, 3))
    torch_params = sum(p.numel() for p in model_torch.parameters())
    torch_stats = sum(b.numel() for name, b in model_torch.named_buffers()
                      if name.endswith(('running_mean', 'running_var')))
    assert count(variables['params']) == torch_params
    assert count(variables['batch_stats']) == torch_stats


def test_cenet_parameter_count():
    """The reference CE-Net (ResNet-34, shared DAC, RMP, K = 1) has 29,003,093 parameters."""
    variables = abstract_init(build_model(reference_config('cenet')), (1, 64, 64, 3))
    assert count(variables['params']) == 29_003_093


def test_unshared_dac_has_a_convolution_per_branch():
    base = reference_config('backbone_dac')
    unshared = reference_config('backbone_dac')
    unshared.dac_shared = False
    shared_count = count(abstract_init(build_model(base), (1, 64, 64, 3))['params'])
    params = abstract_init(build_model(unshared), (1, 64, 64, 3))['params']
    c = 512
    conv3, conv1 = 9 * c * c + c, c * c + c
    # shared: 3 dilated convs + one 1x1; per branch: 1 + 1 + 2 + 3 dilated convs, three 1x1.
    assert count(params) - shared_count == (7 * conv3 + 3 * conv1) - (3 * conv3 + conv1)
    assert len(params['dac']) == 10


@pytest.mark.parametrize('depth, deepest', [(18, 512), (50, 2048)])
def test_other_encoder_depths(depth, deepest):
    cfg = reference_config('cenet')
    cfg.encoder_depth = depth
    model = build_model(cfg)
    variables = abstract_init(model, (1, 64, 64, 3))
    assert variables['params']['decoder4']['conv1']['kernel'].shape == (1, 1, deepest + 4,
                                                                          (deepest + 4) // 4)
    assert abstract_logits(model, variables, (1, 64, 64, 3)).shape == (1, 64, 64, 1)


@pytest.mark.parametrize('shape', [(1, 32, 32, 3), (1, 64, 64, 3), (1, 160, 96, 3)])
def test_rmp_below_192_pixels_clips_pools_to_the_map(shape):
    """PyTorch's RMP fails for maps under 6x6; ours pools the whole map instead."""
    model = build_model(reference_config('cenet'))
    variables = abstract_init(model, shape)
    assert abstract_logits(model, variables, shape).shape == shape[:3] + (1,)


@pytest.mark.parametrize('variant, shape, multiple', [
    ('cenet', (1, 65, 64, 3), 32), ('cenet', (1, 64, 48, 3), 32), ('unet', (1, 72, 64, 3), 16)])
def test_input_size_must_be_a_multiple(variant, shape, multiple):
    model = build_model(reference_config(variant))
    with pytest.raises(ValueError, match=f'multiples of {multiple}'):
        abstract_init(model, shape)
