"""The CE-Net network: ResNet encoder -> context blocks -> decoder with additive skips -> head."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

from cenet_jax.models.decoder import DecoderBlock, SegmentationHead
from cenet_jax.models.resnet import ResNetEncoder, encoder_channels

SIZE_MULTIPLE = 32


def check_input_size(shape: tuple[int, ...], multiple: int = SIZE_MULTIPLE) -> None:
    """Raise a clear error unless the input is (N, H, W, C) with H and W multiples of `multiple`."""
    if len(shape) != 4:
        raise ValueError(f'expected an NHWC batch (N, H, W, C), got shape {tuple(shape)}')
    h, w = shape[1], shape[2]
    if h % multiple or w % multiple or h == 0 or w == 0:
        raise ValueError(
            f'input height and width must be positive multiples of {multiple} (e.g. 448x448, '
            f'384x512, 64x64); got {h}x{w}. Resize or pad to '
            f'{-(-h // multiple) * multiple}x{-(-w // multiple) * multiple}.')


class CENet(nn.Module):
    """CE-Net (Gu et al. 2019). Returns float32 logits (N, H, W, num_classes).

    `context` is a tuple of (submodule name, factory) pairs applied in order to the deepest
    encoder features; () is the Table VI "Backbone". Build it with `build_model(config)`.
    """
    num_classes: int = 1
    encoder_depth: int = 34
    context: tuple[tuple[str, Callable[..., nn.Module]], ...] = ()
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_input_size(x.shape)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, conv_impl=self.conv_impl)
        e1, e2, e3, e4 = ResNetEncoder(self.encoder_depth, name='encoder', **kw)(x, train)
        for name, factory in self.context:
            e4 = factory(name=name, dtype=self.dtype, param_dtype=self.param_dtype)(e4, train)
        c1, c2, c3, _ = encoder_channels(self.encoder_depth)
        d4 = DecoderBlock(c3, name='decoder4', **kw)(e4, train) + e3
        d3 = DecoderBlock(c2, name='decoder3', **kw)(d4, train) + e2
        d2 = DecoderBlock(c1, name='decoder2', **kw)(d3, train) + e1
        d1 = DecoderBlock(c1, name='decoder1', **kw)(d2, train)
        logits = SegmentationHead(self.num_classes, name='head', **kw)(d1)
        return logits.astype(jnp.float32)
