"""The operations the networks are built from (convolution, transposed convolution, training
BatchNorm, max pooling), each in the formulation `model.conv_impl` names: `xla` (the reference),
`matmul` (the CPU fallback) or `onednn` (the CPU default; its loader and the compiled `csrc/`).

The networks (`cenet_jax.models`) use only the names exported here; the formulation modules
(`xla`, `matmul`, `batch_norm`, `onednn`, `onednn_loader`), the dispatcher (`dispatch`) and
`per_shard` (the onednn calls per device when a mesh is set with `jax.set_mesh`) are for the
tests and benchmarks.
"""
from cenet_jax.ops.dispatch import (CONV_IMPLS, batch_norm_train, conv2d, conv2d_transpose,
                                    describe_conv_impl, max_pool, resolve_conv_impl)

__all__ = ['CONV_IMPLS', 'batch_norm_train', 'conv2d', 'conv2d_transpose', 'describe_conv_impl',
           'max_pool', 'resolve_conv_impl']
