"""Throughput of the jitted CE-Net train step (the one train.py runs): compile time, median step
time and images/s per input size and compute dtype, printed as a table.

  GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736:glibc.malloc.arena_max=1 \
    python bench/train.py --sizes 64,128,448 --batch 8 --dtypes float32,bfloat16 --steps 5
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
import numpy as np  # noqa: E402

from cenet_jax.losses import segmentation_loss  # noqa: E402
from cenet_jax.models import build_model, reference_config  # noqa: E402
from cenet_jax.training import parallel  # noqa: E402
from cenet_jax.training.state import create_train_state, make_optimizer  # noqa: E402
from cenet_jax.training.step import train_step  # noqa: E402
from configs.default import get_config  # noqa: E402


def bench_one(size: int, batch: int, dtype: str, steps: int, variant: str) -> dict[str, float]:
    """Compile once, run `steps` timed steps; returns compile_s, step_s (median), img/s."""
    cfg = reference_config(variant)
    cfg.dtype = dtype
    model = build_model(cfg)
    mesh = parallel.make_mesh()
    tx = make_optimizer(get_config().optim, 1000)
    variables = jax.jit(functools.partial(model.init, train=False))(
        jax.random.key(0), np.zeros((1, 64, 64, 3), np.float32))
    state = parallel.replicate(create_train_state(variables, tx, jax.random.key(1)), mesh)
    rng = np.random.default_rng(0)
    batch_np = {'image': rng.normal(size=(batch, size, size, 3)).astype(np.float32),
                'label': (rng.random((batch, size, size)) > 0.8).astype(np.int32),
                'fov': np.ones((batch, size, size), np.float32)}
    batch_arrays = parallel.global_batch(batch_np, mesh)
    step = jax.jit(functools.partial(train_step, model=model, tx=tx,
                                     loss_fn=functools.partial(segmentation_loss, kind='dice')),
                   in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
                   out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
                   donate_argnums=0)
    t0 = time.perf_counter()
    compiled = step.lower(state, batch_arrays).compile()
    compile_s = time.perf_counter() - t0
    state, metrics = compiled(state, batch_arrays)  # warm-up
    jax.block_until_ready(metrics)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, metrics = compiled(state, batch_arrays)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    return {'compile_s': compile_s, 'step_s': step_s, 'img_s': batch / step_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', default='64,128,448')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--dtypes', default='float32')
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--variant', default='cenet')
    args = parser.parse_args()
    print(f'devices: {jax.device_count()} x {jax.devices()[0].device_kind}; variant '
          f'{args.variant}; batch {args.batch}; median of {args.steps} steps after a warm-up')
    print('| size | dtype | compile (s) | step (s) | images/s |')
    print('|---|---|---|---|---|')
    for dtype in args.dtypes.split(','):
        for size in (int(s) for s in args.sizes.split(',')):
            r = bench_one(size, args.batch, dtype, args.steps, args.variant)
            print(f'| {size}x{size} | {dtype} | {r["compile_s"]:.1f} | {r["step_s"]:.3f} | '
                  f'{r["img_s"]:.2f} |', flush=True)


if __name__ == '__main__':
    main()
