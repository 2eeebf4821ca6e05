"""Per-layer study: forward + backward time of every distinct convolution of CE-Net-34, in
each JAX formulation (`conv_impl` xla / matmul) and in PyTorch, side by side in one process.

Each row is one layer shape, timed as value and gradients (input and weight) of
sum(conv(x, w) * g); the last column counts how often the shape occurs in the network.

  GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736:glibc.malloc.arena_max=1 \
    python bench/conv_layers.py --batch 2 --size 448
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from bench.timing import first_and_median  # noqa: E402
from cenet_jax import ops  # noqa: E402


def layer_shapes(size: int) -> list[tuple[str, str, int, int, int, int, int, int, int]]:
    """(name, kind, input size, cin, cout, k, stride, pad, dilation, count) for CE-Net-34."""
    s = size
    return [
        ('stem 7x7/2', 'conv', s, 3, 64, 7, 2, 3, 1, 1),
        ('l1 3x3', 'conv', s // 4, 64, 64, 3, 1, 1, 1, 6),
        ('l2 3x3/2', 'conv', s // 4, 64, 128, 3, 2, 1, 1, 1),
        ('l2 1x1/2', 'conv', s // 4, 64, 128, 1, 2, 0, 1, 1),
        ('l2 3x3', 'conv', s // 8, 128, 128, 3, 1, 1, 1, 7),
        ('l3 3x3/2', 'conv', s // 8, 128, 256, 3, 2, 1, 1, 1),
        ('l3 3x3', 'conv', s // 16, 256, 256, 3, 1, 1, 1, 11),
        ('l4 3x3/2', 'conv', s // 16, 256, 512, 3, 2, 1, 1, 1),
        ('l4 3x3', 'conv', s // 32, 512, 512, 3, 1, 1, 1, 5),
        ('dac 3x3 d3', 'conv', s // 32, 512, 512, 3, 1, 3, 3, 2),
        ('d4 deconv', 'deconv', s // 32, 129, 129, 3, 2, 1, 1, 1),
        ('d3 deconv', 'deconv', s // 16, 64, 64, 3, 2, 1, 1, 1),
        ('d2 deconv', 'deconv', s // 8, 32, 32, 3, 2, 1, 1, 1),
        ('d1 deconv', 'deconv', s // 4, 16, 16, 3, 2, 1, 1, 1),
        ('d1 1x1 16->64', 'conv', s // 2, 16, 64, 1, 1, 0, 1, 1),
        ('head deconv 4x4', 'deconv', s // 2, 64, 32, 4, 2, 1, 0, 1),
        ('head 3x3 32', 'conv', s, 32, 32, 3, 1, 1, 1, 1),
        ('head 3x3 ->1', 'conv', s, 32, 1, 3, 1, 1, 1, 1),
    ]


def jax_case(kind, n, hw, cin, cout, k, stride, pad, extra, impl, dtype='float32'):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(n, hw, hw, cin)), dtype)
    if kind == 'conv':
        w = jnp.asarray(rng.normal(size=(k, k, cin, cout)) * 0.05, jnp.float32)
        f = lambda x, w: ops.conv2d(x, w, (stride, stride), ((pad, pad), (pad, pad)),
                                    (extra, extra), impl)
    else:
        w = jnp.asarray(rng.normal(size=(k, k, cout, cin)) * 0.05, jnp.float32)
        f = lambda x, w: ops.conv2d_transpose(x, w, (stride, stride), (pad, pad),
                                              (extra, extra), impl)
    y = jax.eval_shape(f, x, w)
    g = jnp.asarray(rng.normal(size=y.shape), dtype)
    step = jax.jit(jax.grad(lambda x, w, g: jnp.sum(f(x, w) * g), argnums=(0, 1)))
    return lambda: jax.block_until_ready(step(x, w, g))


def torch_case(kind, n, hw, cin, cout, k, stride, pad, extra, dtype='float32'):
    import torch
    torch.manual_seed(0)
    x = torch.randn(n, cin, hw, hw, requires_grad=True)
    if kind == 'conv':
        m = torch.nn.Conv2d(cin, cout, k, stride, pad, dilation=extra, bias=False)
    else:
        m = torch.nn.ConvTranspose2d(cin, cout, k, stride, pad, output_padding=extra, bias=False)
    with torch.no_grad():
        g = torch.randn_like(m(x))

    autocast = torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype == 'bfloat16')

    def run():
        x.grad = None
        m.weight.grad = None
        with autocast:
            y = m(x)
        (y.float() * g).sum().backward()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', type=int, default=448)
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--impls', default='xla,matmul')
    parser.add_argument('--no-torch', action='store_true')
    parser.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'),
                        help='compute dtype (JAX: bf16 arrays, float32 kernels; PyTorch: autocast)')
    args = parser.parse_args()
    impls = args.impls.split(',')
    cols = impls + ([] if args.no_torch else ['torch'])
    print(f'batch {args.batch}, input {args.size}, {args.dtype}: ms for forward + input and weight gradients')
    print('| layer | ' + ' | '.join(cols) + ' | count |')
    print('|---' * (len(cols) + 2) + '|')
    totals = dict.fromkeys(cols, 0.0)
    for name, kind, hw, cin, cout, k, s, p, extra, count in layer_shapes(args.size):
        row = {}
        for impl in impls:
            fn = jax_case(kind, args.batch, hw, cin, cout, k, s, p, extra, impl, args.dtype)
            row[impl] = first_and_median(fn, args.reps)[1]
        if not args.no_torch:
            fn = torch_case(kind, args.batch, hw, cin, cout, k, s, p, extra, args.dtype)
            row['torch'] = first_and_median(fn, args.reps)[1]
        for c in cols:
            totals[c] += row[c] * count
        print(f'| {name} | ' + ' | '.join(f'{1e3 * row[c]:.1f}' for c in cols) + f' | {count} |',
              flush=True)
    print('| total (x count) | ' + ' | '.join(f'{1e3 * totals[c]:.0f}' for c in cols) + ' | |')


if __name__ == '__main__':
    main()
