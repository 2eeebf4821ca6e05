"""CE-Net's decoder block and segmentation head (reference `DecoderBlock`, `finaldeconv1..3`)."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from cenet_jax.models.layers import Conv, ConvTranspose, batch_norm


class DecoderBlock(nn.Module):
    """1x1 conv C -> C/4, BN, ReLU; 3x3 stride-2 transposed conv (pad 1, output_padding 1),
    BN, ReLU; 1x1 conv C/4 -> features, BN, ReLU. Doubles the spatial size."""
    features: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        mid = x.shape[-1] // 4
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, conv_impl=self.conv_impl)
        bn = dict(train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                  impl=self.conv_impl, relu=True)
        x = Conv(mid, 1, 1, 0, name='conv1', **kw)(x)
        x = batch_norm(name='norm1', **bn)(x)
        x = ConvTranspose(mid, 3, 2, 1, output_padding=1, name='deconv2', **kw)(x)
        x = batch_norm(name='norm2', **bn)(x)
        x = Conv(self.features, 1, 1, 0, name='conv3', **kw)(x)
        return batch_norm(name='norm3', **bn)(x)


class SegmentationHead(nn.Module):
    """4x4 stride-2 transposed conv (pad 1) to 32 ch, ReLU, 3x3 conv, ReLU, 3x3 conv to K logits."""
    num_classes: int
    width: int = 32
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, conv_impl=self.conv_impl)
        x = nn.relu(ConvTranspose(self.width, 4, 2, 1, name='final_deconv1', **kw)(x))
        x = nn.relu(Conv(self.width, 3, 1, 1, name='final_conv2', **kw)(x))
        return Conv(self.num_classes, 3, 1, 1, name='final_conv3', **kw)(x)
