"""Context extractors that sit between CE-Net's encoder and decoder, and their registry.

DAC (dense atrous convolution), RMP (residual multi-kernel pooling), and the Inception /
Inception-ResNet blocks of the paper's Table VI. Every block maps (N, h, w, C) to
(N, h, w, C') and infers C from its input; the decoder adapts to C'.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from cenet_jax.models.layers import Conv, max_pool

relu = nn.relu
zeros = nn.initializers.zeros


class DACBlock(nn.Module):
    """Dense atrous convolution block (paper Fig. 3).

    shared=True (the reference code, default): four convolutions d1 (3x3, rate 1),
    d2 (3x3, rate 3), d3 (3x3, rate 5) and c (1x1) are reused by the four cascade branches:
    out = x + relu(d1 x) + relu(c d2 x) + relu(c d2 d1 x) + relu(c d3 d2 d1 x).
    shared=False gives every branch its own convolutions, as the paper's figure reads.
    atrous=False turns all rates into 1 (Table VI "DAC w/o atrous"). Biases start at zero.
    """
    shared: bool = True
    atrous: bool = True
    rates: tuple[int, int, int] = (1, 3, 5)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        channels = x.shape[-1]
        rates = self.rates if self.atrous else (1, 1, 1)

        def make(name: str, kind: str) -> Conv:
            kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, conv_impl=self.conv_impl, bias_init=zeros, name=name)
            if kind == 'c':
                return Conv(channels, 1, 1, 0, **kw)
            r = rates[int(kind[1]) - 1]
            return Conv(channels, 3, 1, r, dilation=r, **kw)

        names = {'d1': 'dilate1', 'd2': 'dilate2', 'd3': 'dilate3', 'c': 'conv1x1'}
        branches = (('d1',), ('d2', 'c'), ('d1', 'd2', 'c'), ('d1', 'd2', 'd3', 'c'))
        shared = {k: make(n, k) for k, n in names.items()} if self.shared else None
        prefixes: dict[tuple[str, ...], jax.Array] = {(): x}  # shared weights: d1(x), d2(d1(x)) once
        out = x
        for b, chain in enumerate(branches, start=1):
            y = x
            for depth, kind in enumerate(chain, start=1):
                key = chain[:depth]
                if shared and key in prefixes:
                    y = prefixes[key]
                    continue
                conv = shared[kind] if shared else make(f'branch{b}_{names[kind]}', kind)
                y = conv(y)
                prefixes[key] = y
            out = out + relu(y)
        return out


class RMPBlock(nn.Module):
    """Residual multi-kernel pooling: max-pools of sizes `pool_sizes` (kernel = stride, floor),
    ONE shared 1x1 conv C -> 1, bilinear upsampling back (half-pixel, PyTorch
    align_corners=False), concatenated as [p2, p3, p5, p6, x] -> C + len(pool_sizes) channels.

    When the map is smaller than a kernel (inputs under 192 px for the 2/3/5/6 pools), that
    pool covers the whole map instead of producing an empty map, so every input size that is a
    multiple of 32 works; at 192 px and above this is exactly the reference behaviour.
    """
    pool_sizes: tuple[int, ...] = (2, 3, 5, 6)
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        n, h, w, _ = x.shape
        conv = Conv(1, 1, 1, 0, dtype=self.dtype, param_dtype=self.param_dtype,
                    conv_impl=self.conv_impl, name='conv')
        pooled = []
        for k in self.pool_sizes:
            kh, kw = min(k, h), min(k, w)
            p = max_pool(x, (kh, kw), (kh, kw), impl=self.conv_impl)
            p = conv(p)
            pooled.append(jax.image.resize(p, (n, h, w, 1), 'bilinear').astype(p.dtype))
        return jnp.concatenate(pooled + [x.astype(pooled[0].dtype)], axis=-1)


class InceptionBlock(nn.Module):
    """Table VI "Backbone + Inception-block" (reference `DACblock_with_inception_blocks`):
    relu(c1 x) + relu(c3 c1 x) + relu(c5 c1 x) + maxpool3x3(x), the 1x1 conv shared, no residual."""
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        c = x.shape[-1]
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, conv_impl=self.conv_impl, bias_init=zeros)
        c1 = Conv(c, 1, 1, 0, name='conv1x1', **kw)
        c3 = Conv(c, 3, 1, 1, name='conv3x3', **kw)
        c5 = Conv(c, 5, 1, 2, name='conv5x5', **kw)
        pooled = max_pool(x, 3, 1, 1, impl=self.conv_impl)
        return relu(c1(x)) + relu(c3(c1(x))) + relu(c5(c1(x))) + pooled


class InceptionResNetBlock(nn.Module):
    """Table VI "Backbone + Inception-ResNet-block" (reference `DACblock_with_inception`):
    a = relu(c1 x), b = relu(c3 c1 x), m = relu(cm [a, b]), out = x + relu(c1 m); c1 shared."""
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    conv_impl: str = 'xla'

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        c = x.shape[-1]
        kw = dict(dtype=self.dtype, param_dtype=self.param_dtype, conv_impl=self.conv_impl, bias_init=zeros)
        c1 = Conv(c, 1, 1, 0, name='dilate1', **kw)
        c3 = Conv(c, 3, 1, 1, name='dilate3', **kw)
        cm = Conv(c, 1, 1, 0, name='conv1x1', **kw)
        a = relu(c1(x))
        b = relu(c3(c1(x)))
        m = relu(cm(jnp.concatenate([a, b], axis=-1)))
        return x + relu(c1(m))


# A context-block factory is called as factory(**options, dtype=..., param_dtype=..., name=...)
# and returns a linen Module whose __call__(x, train) maps (N, h, w, C) -> (N, h, w, C').
ContextFactory = Callable[..., nn.Module]

_CONTEXT_BLOCKS: dict[str, ContextFactory] = {
    'dac': DACBlock,
    'rmp': RMPBlock,
    'inception': InceptionBlock,
    'inception_resnet': InceptionResNetBlock,
}
# The blocks defined here (they take `conv_impl`); user-registered ones may not.
BUILTIN_CONTEXT_BLOCKS = frozenset(_CONTEXT_BLOCKS)


def register_context_block(name: str, factory: ContextFactory) -> None:
    """Make `factory` selectable as `config.model.context = (..., name, ...)`."""
    if not callable(factory):
        raise TypeError(f'context block {name!r}: factory must be callable, got {factory!r}')
    _CONTEXT_BLOCKS[name] = factory


def context_block_names() -> list[str]:
    """Names that `config.model.context` may contain."""
    return sorted(_CONTEXT_BLOCKS)


def resolve_context_block(spec: str | ContextFactory) -> tuple[str, ContextFactory]:
    """A (module name, factory) pair for a registered name or a factory passed directly."""
    if callable(spec):
        return getattr(spec, '__name__', type(spec).__name__).lower(), spec
    if spec not in _CONTEXT_BLOCKS:
        raise ValueError(f'unknown context block {spec!r}; registered: {context_block_names()} '
                         '(add your own with cenet_jax.models.register_context_block).')
    return spec, _CONTEXT_BLOCKS[spec]


def context_names(specs: Sequence[str | ContextFactory]) -> list[str]:
    """Unique submodule names for a sequence of context blocks (e.g. ['dac', 'rmp'])."""
    names: list[str] = []
    for spec in specs:
        name, _ = resolve_context_block(spec)
        names.append(name if name not in names else f'{name}_{len(names)}')
    return names
