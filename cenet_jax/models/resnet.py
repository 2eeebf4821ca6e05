"""ResNet-18/34/50 encoders in torchvision's layout (the CE-Net feature encoder).

Submodule names mirror torchvision's state dict (`conv1`, `bn1`, `layer1_0/conv1`, ...,
`layer2_0/downsample_conv`), so converting ImageNet weights is a rename and a transpose.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from cenet_jax.models.layers import Conv, batch_norm, kaiming_fan_out_init, max_pool

# depth -> (block kind, blocks per stage)
RESNET_LAYOUTS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ('basic', (2, 2, 2, 2)),
    34: ('basic', (3, 4, 6, 3)),
    50: ('bottleneck', (3, 4, 6, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)
EXPANSION = {'basic': 1, 'bottleneck': 4}


def encoder_channels(depth: int) -> tuple[int, int, int, int]:
    """Output channels of layer1..layer4 for a ResNet depth (64..512, or x4 for ResNet-50)."""
    if depth not in RESNET_LAYOUTS:
        raise ValueError(f'ResNet depth must be one of {sorted(RESNET_LAYOUTS)}, got {depth}.')
    kind, _ = RESNET_LAYOUTS[depth]
    return tuple(w * EXPANSION[kind] for w in STAGE_WIDTHS)  # type: ignore[return-value]


class BasicBlock(nn.Module):
    """torchvision BasicBlock: two 3x3 convs (stride on the first) plus identity/projection."""
    planes: int
    stride: int = 1
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv = dict(use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype,
                    conv_impl=self.conv_impl,
                    kernel_init=kaiming_fan_out_init)
        bn = dict(train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                  impl=self.conv_impl)
        y = Conv(self.planes, 3, self.stride, 1, name='conv1', **conv)(x)
        y = batch_norm(name='bn1', relu=True, **bn)(y)
        y = Conv(self.planes, 3, 1, 1, name='conv2', **conv)(y)
        y = batch_norm(name='bn2', **bn)(y)
        if self.stride != 1 or x.shape[-1] != self.planes:
            x = Conv(self.planes, 1, self.stride, 0, name='downsample_conv', **conv)(x)
            x = batch_norm(name='downsample_bn', **bn)(x)
        return nn.relu(x + y)


class Bottleneck(nn.Module):
    """torchvision Bottleneck (v1.5: stride on the 3x3 conv), 4x channel expansion."""
    planes: int
    stride: int = 1
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv = dict(use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype,
                    conv_impl=self.conv_impl,
                    kernel_init=kaiming_fan_out_init)
        bn = dict(train=train, dtype=self.dtype, param_dtype=self.param_dtype,
                  impl=self.conv_impl)
        out = self.planes * EXPANSION['bottleneck']
        y = Conv(self.planes, 1, 1, 0, name='conv1', **conv)(x)
        y = batch_norm(name='bn1', relu=True, **bn)(y)
        y = Conv(self.planes, 3, self.stride, 1, name='conv2', **conv)(y)
        y = batch_norm(name='bn2', relu=True, **bn)(y)
        y = Conv(out, 1, 1, 0, name='conv3', **conv)(y)
        y = batch_norm(name='bn3', **bn)(y)
        if self.stride != 1 or x.shape[-1] != out:
            x = Conv(out, 1, self.stride, 0, name='downsample_conv', **conv)(x)
            x = batch_norm(name='downsample_bn', **bn)(x)
        return nn.relu(x + y)


class ResNetEncoder(nn.Module):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) and layer1..layer4.

    Returns the four stage outputs (strides 4, 8, 16, 32), the skips CE-Net's decoder uses.
    """
    depth: int = 34
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, ...]:
        encoder_channels(self.depth)  # validates depth
        kind, counts = RESNET_LAYOUTS[self.depth]
        block_cls = BasicBlock if kind == 'basic' else Bottleneck
        x = Conv(64, 7, 2, 3, use_bias=False, dtype=self.dtype, param_dtype=self.param_dtype,
                 kernel_init=kaiming_fan_out_init, conv_impl=self.conv_impl, name='conv1')(x)
        x = batch_norm(train, self.dtype, self.param_dtype, name='bn1', impl=self.conv_impl,
                       relu=True)(x)
        x = max_pool(x, 3, 2, 1, impl=self.conv_impl)
        features = []
        for stage, (planes, count) in enumerate(zip(STAGE_WIDTHS, counts)):
            for i in range(count):
                stride = 2 if (stage > 0 and i == 0) else 1
                x = block_cls(planes, stride, self.dtype, self.param_dtype, self.conv_impl,
                              name=f'layer{stage + 1}_{i}')(x, train)
            features.append(x)
        return tuple(features)
