"""A researcher's own context block, registered by name or passed directly (README example)."""
import jax
import jax.numpy as jnp
from flax import linen as nn

from cenet_jax.models import build_model, reference_config, register_context_block


class SqueezeExcite(nn.Module):
    """Channel attention: (N, h, w, C) -> (N, h, w, C)."""
    reduction: int = 16
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train=False):
        c = x.shape[-1]
        w = nn.relu(nn.Dense(c // self.reduction, dtype=self.dtype)(x.mean(axis=(1, 2))))
        return x * nn.sigmoid(nn.Dense(c, dtype=self.dtype)(w))[:, None, None, :]


def test_registered_block_is_selected_by_config():
    register_context_block('se', SqueezeExcite)
    cfg = reference_config()
    cfg.context = ('dac', 'se', 'rmp')
    cfg.context_options = {'se': {'reduction': 8}}
    model = build_model(cfg)
    x = jnp.zeros((1, 64, 64, 3))
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)['params']
    assert {'dac', 'se', 'rmp'} <= set(shapes)
    assert shapes['se']['Dense_0']['kernel'].shape == (512, 64)   # reduction 8 reached the block
    assert jax.eval_shape(model.apply, jax.eval_shape(model.init, jax.random.key(0), x), x).shape \
        == (1, 64, 64, 1)


def test_factory_passed_directly():
    model = build_model(reference_config('backbone'), context_blocks=(SqueezeExcite,))
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))['params']
    assert 'squeezeexcite' in shapes
