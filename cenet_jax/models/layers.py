"""The layers every convolution, BatchNorm and max pooling of the networks goes through.

Parameters are stored once, in the layout the PyTorch converters expect (kernel HWIO for
regular convolutions, (kH, kW, Cout, Cin) for transposed ones, exactly
`torch_weight.transpose(2, 3, 1, 0)`), and the arithmetic is `cenet_jax.ops`, in the
formulation named by `conv_impl` ('xla', 'onednn' or 'matmul'). The formulation changes speed
only: parameter names, shapes and values are the same in all.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from cenet_jax import ops

Padding = Sequence[tuple[int, int]]
Initializer = Callable[..., jax.Array]

# PyTorch's default Conv2d initialisation: kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), +).
torch_default_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, 'fan_in', 'uniform')
# torchvision ResNet initialisation: kaiming_normal(mode='fan_out', nonlinearity='relu').
kaiming_fan_out_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def torch_default_bias_init(fan_in: int) -> Initializer:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default bias initialisation."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class Conv(nn.Module):
    """2D convolution with PyTorch's explicit symmetric padding (`padding=p` pads p each side)."""
    features: int
    kernel_size: int | tuple[int, int] = 3
    strides: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    dilation: int | tuple[int, int] = 1
    use_bias: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    kernel_init: Initializer = torch_default_kernel_init
    bias_init: Initializer | None = None  # None: PyTorch's default U(+-1/sqrt(fan_in))
    conv_impl: str = 'xla'               # 'xla' | 'onednn' | 'matmul' (cenet_jax.ops)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = _pair(self.kernel_size)
        cin = x.shape[-1]
        kernel = self.param('kernel', self.kernel_init, (kh, kw, cin, self.features),
                            self.param_dtype)
        ph, pw = _pair(self.padding)
        bias = None
        if self.use_bias:
            init = self.bias_init or torch_default_bias_init(cin * kh * kw)
            bias = self.param('bias', init, (self.features,), self.param_dtype)
        return ops.conv2d(x.astype(self.dtype), kernel, _pair(self.strides),
                          ((ph, ph), (pw, pw)), _pair(self.dilation), self.conv_impl, bias)


class ConvTranspose(nn.Module):
    """PyTorch `ConvTranspose2d(cin, features, k, stride, padding, output_padding)`."""
    features: int
    kernel_size: int | tuple[int, int] = 3
    strides: int | tuple[int, int] = 2
    padding: int | tuple[int, int] = 1
    output_padding: int | tuple[int, int] = 0
    use_bias: bool = True
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    kernel_init: Initializer = torch_default_kernel_init
    conv_impl: str = 'xla'               # 'xla' | 'onednn' | 'matmul' (cenet_jax.ops)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = _pair(self.kernel_size)
        cin = x.shape[-1]
        # Stored as (kH, kW, Cout, Cin) == torch (Cin, Cout, kH, kW).transpose(2, 3, 1, 0).
        # The variance_scaling fan_in of this shape is Cout*kH*kW, which is also PyTorch's.
        kernel = self.param('kernel', self.kernel_init, (kh, kw, self.features, cin),
                            self.param_dtype)
        bias = None
        if self.use_bias:
            bias = self.param('bias', torch_default_bias_init(self.features * kh * kw),
                              (self.features,), self.param_dtype)
        return ops.conv2d_transpose(x.astype(self.dtype), kernel, _pair(self.strides),
                                    _pair(self.padding), _pair(self.output_padding),
                                    self.conv_impl, bias)


class BatchNorm(nn.Module):
    """PyTorch `BatchNorm2d` over the last axis (variables `scale`, `bias`; `mean`, `var`).

    Unlike `flax.linen.BatchNorm`, the running variance is updated with the UNBIASED batch
    variance (n / (n - 1)), as PyTorch does, so training-mode statistics match a PyTorch
    model; normalisation itself uses the biased variance (both libraries). Statistics and
    the normalisation run in float32 whatever the compute dtype; under jit with a batch
    sharded over a Mesh the means are global (synchronised BN) without any axis_name.
    `relu=True` applies the ReLU that follows (fused into oneDNN's kernel on the onednn path).
    Training mode runs `ops.batch_norm_train` in the formulation `impl` names (oneDNN's
    batch normalisation for 'onednn', else one-pass statistics with a hand-written VJP).
    """
    use_running_average: bool = True
    momentum: float = 0.9  # Flax convention: new = momentum * old + (1 - momentum) * batch
    epsilon: float = 1e-5
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    relu: bool = False
    impl: str = 'xla'      # the model's conv_impl (see cenet_jax.ops); speed only

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        scale = self.param('scale', nn.initializers.ones, (features,), self.param_dtype)
        bias = self.param('bias', nn.initializers.zeros, (features,), self.param_dtype)
        ra_mean = self.variable('batch_stats', 'mean', jnp.zeros, (features,), jnp.float32)
        ra_var = self.variable('batch_stats', 'var', jnp.ones, (features,), jnp.float32)
        x = x.astype(self.dtype)
        if not self.use_running_average:
            y, mean, var = ops.batch_norm_train(x, scale, bias, self.epsilon, self.relu,
                                                self.impl)
            if not self.is_initializing():
                count = x.size // features
                unbiased = var * (count / max(count - 1, 1))
                ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
                ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * unbiased
            return y
        x32 = x.astype(jnp.promote_types(x.dtype, jnp.float32))  # float32, or float64
        mul = jax.lax.rsqrt(ra_var.value + self.epsilon) * scale.astype(x32.dtype)
        y = ((x32 - ra_mean.value) * mul + bias.astype(x32.dtype)).astype(self.dtype)
        return nn.relu(y) if self.relu else y


def batch_norm(train: bool, dtype: Any, param_dtype: Any, name: str, impl: str = 'xla',
               relu: bool = False) -> BatchNorm:
    """BatchNorm with PyTorch's defaults and update rule (eps 1e-5, torch momentum 0.1 ==
    Flax momentum 0.9, unbiased running variance), then a ReLU if `relu`."""
    return BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                     dtype=dtype, param_dtype=param_dtype, relu=relu, impl=impl, name=name)


def max_pool(x: jax.Array, kernel: int | tuple[int, int], stride: int | tuple[int, int],
             padding: int = 0, impl: str = 'xla') -> jax.Array:
    """PyTorch MaxPool2d(kernel, stride, padding) (floor mode, -inf padding); `impl` is the
    model's conv_impl, which picks the gradient's formulation (cenet_jax.ops)."""
    return ops.max_pool(x, _pair(kernel), _pair(stride),
                              ((padding, padding), (padding, padding)), impl)
