"""The paper's U-Net baseline (reference `UNet`: 64..512 channels, bilinear upsampling)."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from cenet_jax.models.cenet import check_input_size
from cenet_jax.models.layers import Conv, ConvTranspose, batch_norm, max_pool


def _interpolation_matrix(n_in: int, n_out: int) -> jnp.ndarray:
    """(n_out, n_in) linear-interpolation weights with align_corners=True."""
    if n_in == 1 or n_out == 1:
        return jnp.ones((n_out, n_in)) / n_in if n_in > 1 else jnp.ones((n_out, 1))
    pos = jnp.arange(n_out) * (n_in - 1) / (n_out - 1)
    lo = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, n_in - 2)
    frac = pos - lo
    eye = jnp.eye(n_in)
    return eye[lo] * (1 - frac)[:, None] + eye[lo + 1] * frac[:, None]


def resize_bilinear_align_corners(x: jax.Array, height: int, width: int) -> jax.Array:
    """Bilinear resize of NHWC `x` with PyTorch's align_corners=True (nn.Upsample in U-Net)."""
    mh = _interpolation_matrix(x.shape[1], height).astype(x.dtype)
    mw = _interpolation_matrix(x.shape[2], width).astype(x.dtype)
    return jnp.einsum('oh,nhwc,pw->nopc', mh, x, mw)


class DoubleConv(nn.Module):
    """(3x3 conv with bias, BN, ReLU) x 2."""
    features: int
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, conv_impl=self.conv_impl)
        for i in (1, 2):
            x = Conv(self.features, 3, 1, 1, name=f'conv{i}', **kw)(x)
            x = batch_norm(train, self.dtype, self.param_dtype, name=f'bn{i}',
                           impl=self.conv_impl, relu=True)(x)
        return x


class UNet(nn.Module):
    """U-Net with 4 poolings; `bilinear=False` uses 2x2 stride-2 transposed convolutions."""
    num_classes: int = 1
    width: int = 64
    bilinear: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        check_input_size(x.shape, 16)
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, conv_impl=self.conv_impl)
        w = self.width
        skips = [DoubleConv(w, name='inc', **kw)(x, train)]
        for i, mult in enumerate((2, 4, 8, 8), start=1):
            pooled = max_pool(skips[-1], 2, 2, impl=self.conv_impl)
            skips.append(DoubleConv(w * mult, name=f'down{i}', **kw)(pooled, train))
        y = skips.pop()
        for i, mult in enumerate((4, 2, 1, 1), start=1):
            skip = skips.pop()
            if self.bilinear:
                y = resize_bilinear_align_corners(y, skip.shape[1], skip.shape[2])
            else:
                y = ConvTranspose(y.shape[-1], 2, 2, 0, name=f'up{i}_deconv', **kw)(y)
            y = DoubleConv(w * mult, name=f'up{i}', **kw)(
                jnp.concatenate([skip.astype(y.dtype), y], axis=-1), train)
        logits = Conv(self.num_classes, 1, 1, 0, name='outc', **kw)(y)
        return logits.astype(jnp.float32)
