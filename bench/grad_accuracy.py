"""Whole-network gradient accuracy of each convolution formulation against float64.

Computes the train-mode Dice-loss gradients of CE-Net at float64 (XLA formulation, the
reference) and at float32 in each formulation, and prints per formulation the worst and the
median relative error over parameter leaves (max|g - g64| / max|g64| per leaf). A fast
formulation counts only if its errors are as small as the plain XLA path's.

  python bench/grad_accuracy.py --size 128 --batch 2
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import traverse_util  # noqa: E402

from cenet_jax.losses import segmentation_loss  # noqa: E402
from cenet_jax.models import build_model, reference_config  # noqa: E402


def network_gradients(impl: str, dtype: str, variables: dict, images: np.ndarray,
                      labels: np.ndarray, variant: str = 'cenet') -> dict[str, np.ndarray]:
    """Flattened ('a/b/kernel' -> float64 array) Dice-loss gradients in training mode."""
    cfg = reference_config(variant)
    cfg.conv_impl, cfg.dtype, cfg.param_dtype = impl, dtype, dtype
    model = build_model(cfg)
    cast = lambda t: jax.tree.map(lambda a: jnp.asarray(a, dtype), t)  # noqa: E731

    def loss(params, stats, x, y):
        logits, _ = model.apply({'params': params, 'batch_stats': stats}, x, train=True,
                                mutable=['batch_stats'])
        return segmentation_loss(logits, y, None, kind='dice')

    grads = jax.jit(jax.grad(loss))(cast(variables['params']), cast(variables['batch_stats']),
                                    jnp.asarray(images, dtype), jnp.asarray(labels))
    return {k: np.asarray(v, np.float64)
            for k, v in traverse_util.flatten_dict(grads, sep='/').items()}


def relative_errors(got: dict[str, np.ndarray], ref: dict[str, np.ndarray],
                    zero_below: float = 1e-6) -> dict[str, float]:
    """Per leaf max|got - ref| / max|ref|. Leaves whose float64 gradient is below `zero_below`
    times the largest one are skipped: they are zero in exact arithmetic (the bias of a
    convolution followed by training-mode BatchNorm), so any float32 value is rounding noise
    and a ratio to ~0 means nothing."""
    top = max(float(np.abs(r).max()) for r in ref.values())
    out = {}
    for k, r in ref.items():
        scale = float(np.abs(r).max())
        if scale > zero_below * top:
            out[k] = float(np.abs(got[k] - r).max()) / scale
    return out


def compare(size: int, batch: int, impls: list[str], variant: str = 'cenet',
            seed: int = 0) -> dict[str, dict[str, float]]:
    """{impl: {leaf: relative error vs float64}} for random images and labels."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch, size, size, 3)).astype(np.float32)
    labels = (rng.random((batch, size, size)) > 0.8).astype(np.int32)
    cfg = reference_config(variant)
    cfg.conv_impl = 'xla'
    variables = build_model(cfg).init(jax.random.key(seed), images[:1], train=False)
    with jax.enable_x64(True):
        ref = network_gradients('xla', 'float64', variables, images, labels, variant)
    return {impl: relative_errors(network_gradients(impl, 'float32', variables, images, labels,
                                                    variant), ref) for impl in impls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--impls', default='xla,matmul')
    parser.add_argument('--variant', default='cenet')
    parser.add_argument('--worst', type=int, default=5, help='list the N worst leaves')
    args = parser.parse_args()
    errors = compare(args.size, args.batch, args.impls.split(','), args.variant)
    print(f'{args.variant}, batch {args.batch} at {args.size} px: relative gradient error vs float64')
    print('| impl | worst leaf | worst | median | leaves compared |\n|---|---|---|---|---|')
    for impl, err in errors.items():
        worst = max(err, key=err.get)
        print(f'| {impl} | {worst} | {err[worst]:.2e} | {statistics.median(err.values()):.2e} | '
              f'{len(err)} |')
    for impl, err in errors.items():
        print(f'{impl}: ' + ', '.join(f'{k} {v:.1e}' for k, v in
                                      sorted(err.items(), key=lambda kv: -kv[1])[:args.worst]))


if __name__ == '__main__':
    main()
