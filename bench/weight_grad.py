"""The matmul formulation's 3x3 stride-1 weight gradients, Winograd F(2x2, 3x3) against im2col,
for every such convolution of CE-Net-34, timed alternately (A B A B ...) in one process.

Each row is one layer shape: the median ms of each way of computing dL/dkernel (summed over
batch chunks, as `ops.matmul` does), their ratio, how often the shape occurs in a step and
whether the fallback uses Winograd there now (N*H*W >= MIN_WINOGRAD_PIXELS). The total weighs
each row by its count: the fallback as it is, against im2col everywhere.

  python bench/weight_grad.py --cases 8x448,4x256 --reps 7
"""
from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from cenet_jax.ops import matmul  # noqa: E402


def layer_shapes(size: int) -> list[tuple[str, int, int, int]]:
    """(name, input size, channels, count per step) of CE-Net-34's 3x3 stride-1 padding-1
    convolutions with >= 8 output channels (the ones whose weight gradient `matmul` computes)."""
    return [('l1 3x3 64', size // 4, 64, 6), ('l2 3x3 128', size // 8, 128, 7),
            ('l3 3x3 256', size // 16, 256, 11), ('l4 3x3 512', size // 32, 512, 5),
            ('dac 3x3 d1 512', size // 32, 512, 3), ('head 3x3 32', size, 32, 1)]


_IM2COL = functools.partial(matmul.im2col_weight_grad, kernel_hw=(3, 3), strides=(1, 1),
                            padding=((1, 1), (1, 1)), dilation=(1, 1))
WAYS = {
    'winograd': jax.jit(lambda x, g: matmul.sum_over_batch_chunks(
        matmul.winograd_weight_grad, x, g).reshape(3, 3, x.shape[-1], g.shape[-1])),
    'im2col': jax.jit(lambda x, g: matmul.sum_over_batch_chunks(_IM2COL, x, g).reshape(
        3, 3, x.shape[-1], g.shape[-1])),
}


def time_layer(batch: int, hw: int, channels: int, reps: int) -> dict[str, float]:
    """Median seconds of each way, called alternately after a compile (and agreement) call."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((batch, hw, hw, channels)), jnp.float32)
    g = jnp.asarray(rng.standard_normal((batch, hw, hw, channels)), jnp.float32)
    first = [np.asarray(jax.block_until_ready(fn(x, g))) for fn in WAYS.values()]
    scale = float(np.abs(first[0]).max())
    assert float(np.abs(first[1] - first[0]).max()) <= 1e-4 * scale, 'the two ways disagree'
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(reps):
        for way, fn in WAYS.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(x, g))
            times[way].append(time.perf_counter() - start)
    return {way: statistics.median(t) for way, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cases', default='8x448,4x256', help='batch x size, comma-separated')
    parser.add_argument('--reps', type=int, default=7)
    args = parser.parse_args()
    for case in args.cases.split(','):
        batch, size = map(int, case.split('x'))
        print(f'\nbatch {batch}, input {size}, float32: ms for dL/dkernel of one call')
        print('| layer | winograd | im2col | im2col / winograd | count | winograd used |')
        print('|---|---|---|---|---|---|')
        now = only_im2col = 0.0
        for name, hw, channels, count in layer_shapes(size):
            t = time_layer(batch, hw, channels, args.reps)
            used = batch * hw * hw >= matmul.MIN_WINOGRAD_PIXELS
            now += count * t['winograd' if used else 'im2col']
            only_im2col += count * t['im2col']
            print(f"| {name} | {1e3 * t['winograd']:.1f} | {1e3 * t['im2col']:.1f} | "
                  f"{t['im2col'] / t['winograd']:.2f} | {count} | {'yes' if used else 'no'} |",
                  flush=True)
        print(f'| step total (x count) | {1e3 * now:.0f} (as used) | {1e3 * only_im2col:.0f} | '
              f'{only_im2col / now:.2f} | | |')


if __name__ == '__main__':
    main()
