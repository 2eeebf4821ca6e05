"""The most that fusing the ResNet BasicBlock's residual add and ReLU into its BatchNorm could save
in a train step: the XLA passes such a fusion would replace, timed per block shape.

oneDNN 3.2 has no CPU kernel for BatchNorm + add + ReLU (`fuse_norm_add_relu` is refused by
every CPU implementation, the reference one included), so `relu(bn2(y) + x)` runs as oneDNN's
BatchNorm and one XLA loop fusion, and its gradient as one XLA select before oneDNN's BatchNorm
backward. This times those two XLA passes, `relu(a + b)` and `where(out > 0, g, 0)`, at each
BasicBlock shape of CE-Net's ResNet-34 for a batch and input size, times the number of blocks of
that shape: an upper bound of what the fusion could save (a fused kernel would still read the
residual and write the mask).

  python bench/add_relu.py --batch 4 --size 256 --dtype float32 --reps 21
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BLOCKS = ((64, 4, 3), (128, 8, 4), (256, 16, 6), (512, 32, 3))  # channels, stride, count


def _median_ms(fn, args, reps: int) -> float:
    import jax
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--size', type=int, default=256)
    p.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
    p.add_argument('--reps', type=int, default=21)
    args = p.parse_args()
    import jax
    import jax.numpy as jnp
    import numpy as np

    forward = jax.jit(lambda a, b: jax.nn.relu(a + b))
    backward = jax.jit(lambda out, g: jnp.where(out > 0, g, jnp.zeros_like(g)))
    rng = np.random.default_rng(0)
    total = 0.0
    print(f'batch {args.batch} x {args.size}, {args.dtype}: ms per call (median of {args.reps})')
    print('| block shape | blocks | relu(a + b) | its gradient | x blocks |')
    print('|---|---|---|---|---|')
    for channels, stride, count in BLOCKS:
        shape = (args.batch, args.size // stride, args.size // stride, channels)
        a, b, g = (jnp.asarray(rng.standard_normal(shape), args.dtype) for _ in range(3))
        fwd = _median_ms(forward, (a, b), args.reps)
        bwd = _median_ms(backward, (forward(a, b), g), args.reps)
        total += (fwd + bwd) * count
        print(f'| {shape} | {count} | {fwd:.2f} | {bwd:.2f} | {(fwd + bwd) * count:.1f} |')
    print(f'per train step, at most: {total:.1f} ms')


if __name__ == '__main__':
    main()
