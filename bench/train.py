"""Speed of CE-Net in cenet-jax against the same network in PyTorch, measured side by side.

Cases are named `<kind>_b<batch>_<size>_<dtype>`: kind `train` (the jitted train step that
train.py runs: forward, Dice loss, backward, SGD update, BatchNorm in training mode), `fwd`
(inference forward) or `tta` (8-fold flip/rotation test-time augmentation, the eval.py
prediction); dtype `f32` or `bf16` (JAX: bf16 compute with float32 parameters; PyTorch:
autocast). Every case and framework runs in its own subprocess, so peak memory is that case's
alone; the JAX columns come once per `--impls` formulation (`model.conv_impl`).

  GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736:glibc.malloc.arena_max=1 \
    python bench/train.py --vs-torch                      # the default CPU table
  python bench/train.py --cases train_b8_448_f32 --impls xla,matmul --json out.json

Columns: compile (s), median step (ms), images/s, peak memory (MB; on CPU the process's peak
RSS, which for JAX includes the compiler's own peak, and beside it XLA's buffer assignment of
the step: arguments + outputs + temporaries; on GPU the allocator's peak), GFLOP/s from XLA's
cost analysis of the compiled program, and the ratio JAX / PyTorch of the median step (below 1
means JAX is faster).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.timing import first_and_median  # noqa: E402

DEFAULT_CASES = ('train_b8_448_f32,fwd_b8_448_f32,tta_b8_448_f32,'
                 'train_b4_256_f32,fwd_b4_256_f32,tta_b4_256_f32')
KINDS = ('train', 'fwd', 'tta')
DTYPES = {'f32': 'float32', 'bf16': 'bfloat16'}


def parse_case(name: str) -> tuple[str, int, int, str]:
    """'train_b8_448_f32' -> ('train', 8, 448, 'f32'), with a clear error otherwise."""
    parts = name.split('_')
    if (len(parts) != 4 or parts[0] not in KINDS or not parts[1].startswith('b')
            or parts[3] not in DTYPES):
        raise SystemExit(f'bad case {name!r}: expected <{"|".join(KINDS)}>_b<batch>_<size>_'
                         f'<{"|".join(DTYPES)}>, e.g. train_b8_448_f32')
    return parts[0], int(parts[1][1:]), int(parts[2]), parts[3]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------------------------
# JAX worker

def jax_worker(case: str, impl: str, steps: int) -> dict[str, Any]:
    """Compile and time one case with cenet-jax; returns the row's JAX fields."""
    import jax
    import numpy as np

    from cenet_jax import parallel
    from cenet_jax.evaluation import make_predict_fn
    from cenet_jax.losses import segmentation_loss
    from cenet_jax.models import build_model, reference_config
    from cenet_jax.training.state import create_train_state, make_optimizer
    from cenet_jax.training.step import train_step
    from configs.default import get_config

    kind, batch, size, dtype = parse_case(case)
    cfg = reference_config('cenet')
    cfg.dtype, cfg.conv_impl = DTYPES[dtype], impl
    model = build_model(cfg)
    mesh = parallel.make_mesh()
    variables = jax.jit(functools.partial(model.init, train=False))(
        jax.random.key(0), np.zeros((1, 64, 64, 3), np.float32))
    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch, size, size, 3)).astype(np.float32)
    if kind == 'train':
        tx = make_optimizer(get_config().optim, 1000)
        state = parallel.replicate(create_train_state(variables, tx, jax.random.key(1)), mesh)
        batch_arrays = parallel.global_batch(
            {'image': images, 'label': (rng.random((batch, size, size)) > 0.8).astype(np.int32),
             'fov': np.ones((batch, size, size), np.float32)}, mesh)
        fn = jax.jit(functools.partial(train_step, model=model, tx=tx,
                                       loss_fn=functools.partial(segmentation_loss, kind='dice')),
                     in_shardings=(parallel.replicated(mesh), parallel.batch_sharding(mesh)),
                     out_shardings=(parallel.replicated(mesh), parallel.replicated(mesh)),
                     donate_argnums=0)
        args: list[Any] = [state, batch_arrays]
    else:
        variables = parallel.replicate(variables, mesh)
        x = jax.device_put(images, parallel.batch_sharding(mesh))
        apply_fn = lambda x, v: model.apply(v, x, train=False)  # noqa: E731
        if kind == 'fwd':
            fn = jax.jit(lambda v, x: apply_fn(x, v))
            args = [variables, x]
        else:
            predict = make_predict_fn(apply_fn, tta='d8')
            fn = jax.jit(lambda v, x: predict(x, v))
            args = [variables, x]
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    mem = compiled.memory_analysis()
    xla_mb = (sum(getattr(mem, f) for f in ('temp_size_in_bytes', 'argument_size_in_bytes',
                                            'output_size_in_bytes')) / 2**20 if mem else None)
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float((cost or {}).get('flops', 0.0))

    def run() -> None:
        if kind == 'train':
            args[0], metrics = compiled(*args)
            jax.block_until_ready(metrics)
        else:
            jax.block_until_ready(compiled(*args))

    _, step_s = first_and_median(run, steps)
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != 'cpu' else None
    peak = stats['peak_bytes_in_use'] / 2**20 if stats else _peak_rss_mb()
    return dict(jax_compile_s=compile_s, jax_ms=1e3 * step_s, jax_img_s=batch / step_s,
                jax_peak_mb=peak, jax_xla_mb=xla_mb,
                jax_gflops=flops / step_s / 1e9 if flops else None,
                device=f'{jax.device_count()} x {device.device_kind}')


# ---------------------------------------------------------------------------------------------
# PyTorch worker (the network of the parity tests, tests/models/torch_reference.py)

def torch_worker(case: str, steps: int, compile_model: bool) -> dict[str, Any]:
    """Time one case with the PyTorch CE-Net (eager, or torch.compile); returns its fields."""
    import torch

    from tests.models.torch_reference import TorchCENet

    kind, batch, size, dtype = parse_case(case)
    cuda = torch.cuda.is_available()
    dev = torch.device('cuda' if cuda else 'cpu')
    torch.manual_seed(0)
    model = TorchCENet('cenet').to(dev)
    step_model = torch.compile(model) if compile_model else model
    x = torch.randn(batch, 3, size, size, device=dev)
    label = (torch.rand(batch, size, size, device=dev) > 0.8).float()
    opt = torch.optim.SGD(model.parameters(), lr=4e-3, momentum=0.9, weight_decay=1e-4)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == 'bf16')

    def dice_loss(logits: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits.float())[:, 0]
        return 1 - 2 * (p * label).sum() / ((p * p).sum() + (label * label).sum())

    def train() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = dice_loss(step_model(x))
        loss.backward()
        opt.step()

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        model.eval()
        with torch.no_grad(), autocast:
            return step_model(inputs)

    views = [(rot, flip) for rot in (False, True) for flip in ((), (2,), (3,), (2, 3))]

    def tta() -> torch.Tensor:
        inputs = []
        for rot, flip in views:
            base = torch.rot90(x, 1, (2, 3)) if rot else x
            inputs.append(base.flip(flip) if flip else base)
        probs = torch.sigmoid(forward(torch.cat(inputs)).float()).chunk(len(views))
        out = []
        for p, (rot, flip) in zip(probs, views):
            p = p.flip(flip) if flip else p
            out.append(torch.rot90(p, -1, (2, 3)) if rot else p)
        return torch.stack(out).mean(0)

    fn = {'train': train, 'fwd': lambda: forward(x), 'tta': tta}[kind]

    def run() -> None:
        fn()
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    first_s, step_s = first_and_median(run, steps)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _peak_rss_mb()
    key = 'torchc' if compile_model else 'torch'
    return {f'{key}_compile_s': first_s, f'{key}_ms': 1e3 * step_s,
            f'{key}_img_s': batch / step_s, f'{key}_peak_mb': peak,
            f'{key}_version': torch.__version__}


# ---------------------------------------------------------------------------------------------
# Driver

def run_worker(worker: str, case: str, steps: int) -> dict[str, Any]:
    """Run one (framework, case) in a fresh Python process and parse its JSON line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), '--worker', worker, '--cases', case,
           '--steps', str(steps)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{')]
    if proc.returncode or not lines:
        tail = '\n'.join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f'{worker} {case} failed (exit {proc.returncode}):\n{tail}')
    return json.loads(lines[-1])


def matmul_peak_tflops(dtype: str, n: int = 8192, steps: int = 10) -> float:
    """The device's measured matmul rate (TFLOP/s) for an n x n x n product in `dtype`."""
    import jax
    import jax.numpy as jnp
    a = jnp.ones((n, n), DTYPES[dtype])
    f = jax.jit(lambda a: a @ a)
    _, t = first_and_median(lambda: jax.block_until_ready(f(a)), steps)
    return 2 * n ** 3 / t / 1e12


def _fmt(v: Any, spec: str) -> str:
    return '-' if v is None else format(v, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cases', default=DEFAULT_CASES,
                        help='comma-separated case names, e.g. train_b8_448_f32,fwd_b4_256_f32')
    parser.add_argument('--impls', default='auto',
                        help="JAX conv formulations to time (model.conv_impl): xla, matmul, auto")
    parser.add_argument('--vs-torch', action='store_true', help='also time PyTorch eager')
    parser.add_argument('--torch-compile', action='store_true', help='also time torch.compile')
    parser.add_argument('--steps', type=int, default=3, help='timed steps per case (median)')
    parser.add_argument('--json', help='write the rows as a JSON list to this file')
    parser.add_argument('--peak', action='store_true',
                        help="first measure the device's f32 and bf16 matmul rate (GPU/TPU)")
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args()
    cases = [c for c in args.cases.split(',') if c]
    for c in cases:
        parse_case(c)
    if args.worker == 'peak':
        print(json.dumps({d: matmul_peak_tflops(d) for d in DTYPES}), flush=True)
        return
    if args.worker:
        case = cases[0]
        if args.worker.startswith('jax:'):
            row = jax_worker(case, args.worker[4:], args.steps)
        else:
            row = torch_worker(case, args.steps, compile_model=args.worker == 'torch_compile')
        print(json.dumps(row), flush=True)
        return

    impls = [i for i in args.impls.split(',') if i]
    rows = []
    header = ('| case | impl | JAX compile (s) | JAX ms | JAX img/s | JAX peak MB | XLA buffers MB |'
              ' JAX GFLOP/s |')
    sep = '|---|---|---|---|---|---|---|---|'
    if args.vs_torch:
        header += ' torch ms | torch img/s | torch peak MB | ratio JAX/torch |'
        sep += '---|---|---|---|'
    if args.torch_compile:
        header += ' torch.compile ms | ratio JAX/compiled |'
        sep += '---|---|'
    print(f'GLIBC_TUNABLES={os.environ.get("GLIBC_TUNABLES", "(unset)")}; median of {args.steps} '
          'steps after a warm-up; each case and framework in its own process', flush=True)
    if args.peak:
        peak = run_worker('peak', cases[0], args.steps)
        print('measured matmul rate (8192^3): ' + ', '.join(f'{d} {v:.0f} TFLOP/s'
                                                           for d, v in peak.items()), flush=True)
        header += ' % of matmul rate |'
        sep += '---|'
    print(header + '\n' + sep, flush=True)
    for case in cases:
        torch_row = run_worker('torch', case, args.steps) if args.vs_torch else {}
        if args.torch_compile:
            torch_row.update(run_worker('torch_compile', case, args.steps))
        for impl in impls:
            row = {'case': case, 'impl': impl, **run_worker(f'jax:{impl}', case, args.steps),
                   **torch_row}
            line = (f'| {case} | {impl} | {row["jax_compile_s"]:.1f} | {row["jax_ms"]:.0f} | '
                    f'{row["jax_img_s"]:.2f} | {row["jax_peak_mb"]:.0f} | '
                    f'{_fmt(row["jax_xla_mb"], ".0f")} | {_fmt(row["jax_gflops"], ".0f")} |')
            if args.vs_torch:
                row['ratio'] = row['jax_ms'] / row['torch_ms']
                line += (f' {row["torch_ms"]:.0f} | {row["torch_img_s"]:.2f} | '
                         f'{row["torch_peak_mb"]:.0f} | {row["ratio"]:.2f} |')
            if args.torch_compile:
                row['ratio_compiled'] = row['jax_ms'] / row['torchc_ms']
                line += f' {row["torchc_ms"]:.0f} | {row["ratio_compiled"]:.2f} |'
            if args.peak and row['jax_gflops']:
                row['peak_fraction'] = row['jax_gflops'] / 1e3 / peak[parse_case(case)[3]]
                line += f' {100 * row["peak_fraction"]:.0f} % |'
            print(line, flush=True)
            rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == '__main__':
    main()
