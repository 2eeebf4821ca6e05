"""Speed of CE-Net in cenet-jax against the same network in PyTorch, measured side by side.

Cases (bench/cases.py) are named `<kind>_b<batch>_<size>_<dtype>`: kind `train`, `fwd` or `tta`;
dtype `f32` or `bf16` (JAX: bf16 compute with float32 parameters; PyTorch: autocast). Every case
and framework runs in its own subprocess, so peak memory is that case's alone; the JAX columns
come once per `--impls` formulation (`model.conv_impl`).

  GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736:glibc.malloc.arena_max=1 \
    python bench/train.py --vs-torch --impls xla,matmul,onednn   # the CPU table
  python bench/train.py --cases train_b8_448_f32 --impls onednn --json out.json

Columns: compile (s), median step (ms), images/s, peak memory (MB; on CPU the process's peak
RSS, which for JAX includes the compiler's own peak, and beside it XLA's buffer assignment of
the step: arguments + outputs + temporaries; on GPU the allocator's peak), the model's GFLOP/s
(XLA's FLOP count of the case in the XLA formulation divided by the step time, the same work for
every formulation), and the ratio JAX / PyTorch of the median step (below 1: JAX is faster).
With `onednn` it first prints oneDNN's version and the instruction set its kernels run on.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import cases  # noqa: E402
from bench.cases import DTYPES, jax_case, model_flops, parse_case, torch_case  # noqa: E402
from bench.timing import first_and_median  # noqa: E402

DEFAULT_CASES = ('train_b8_448_f32,fwd_b8_448_f32,tta_b8_448_f32,'
                 'train_b4_256_f32,fwd_b4_256_f32,tta_b4_256_f32')


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------------------------
# JAX worker

def jax_worker(case: str, impl: str, steps: int) -> dict[str, Any]:
    """Compile and time one case with cenet-jax; returns the row's JAX fields."""
    import jax

    c = jax_case(case, impl)
    t0 = time.perf_counter()
    c.fn = c.fn.lower(*c.args).compile()
    compile_s = time.perf_counter() - t0
    mem = c.fn.memory_analysis()
    xla_mb = (sum(getattr(mem, f) for f in ('temp_size_in_bytes', 'argument_size_in_bytes',
                                            'output_size_in_bytes')) / 2**20 if mem else None)
    _, step_s = first_and_median(c.run, steps)
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != 'cpu' else None
    peak = stats['peak_bytes_in_use'] / 2**20 if stats else _peak_rss_mb()
    return dict(jax_compile_s=compile_s, jax_ms=1e3 * step_s, jax_img_s=c.batch / step_s,
                jax_peak_mb=peak, jax_xla_mb=xla_mb,
                device=f'{jax.device_count()} x {device.device_kind}')


def onednn_info() -> dict[str, Any]:
    """oneDNN's version and ISA, and the kernels a 3x3 64-channel convolution runs in float32
    and bfloat16 (AMX or not)."""
    import jax.numpy as jnp

    from cenet_jax.ops import onednn, onednn_loader
    if not onednn_loader.available():
        return {'onednn': f'unavailable: {onednn_loader.unavailable_reason()}'}
    spec = onednn.ConvSpec(False, (1, 1), (1, 1, 1, 1), (1, 1), (56, 56))
    kernels = {name: onednn_loader.impl_info(onednn.conv_key(
        onednn.FORWARD, spec, dt, jnp.float32, False, (8, 56, 56, 64), (3, 3, 64, 64)))
        for name, dt in (('f32', jnp.float32), ('bf16', jnp.bfloat16))}
    return {'onednn': onednn_loader.version(), 'onednn_kernels': kernels}


# ---------------------------------------------------------------------------------------------
# PyTorch worker

def torch_worker(case: str, steps: int, compile_model: bool) -> dict[str, Any]:
    """Time one case with the PyTorch CE-Net (eager, or torch.compile); returns its fields."""
    import torch

    c = torch_case(case, compile_model)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    first_s, step_s = first_and_median(c.run, steps)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _peak_rss_mb()
    key = 'torchc' if compile_model else 'torch'
    return {f'{key}_compile_s': first_s, f'{key}_ms': 1e3 * step_s,
            f'{key}_img_s': c.batch / step_s, f'{key}_peak_mb': peak,
            f'{key}_version': torch.__version__}


# ---------------------------------------------------------------------------------------------
# Driver

def run_worker(worker: str, case: str, steps: int) -> dict[str, Any]:
    """Run one (framework, case) in a fresh Python process and parse its JSON line."""
    return cases.run_worker('bench/train.py', ['--worker', worker, '--cases', case,
                                               '--steps', str(steps)], f'{worker} {case}')


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
                        help="JAX conv formulations to time (model.conv_impl): xla, matmul, onednn, auto")
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
    if args.worker == 'onednn':
        print(json.dumps(onednn_info()), flush=True)
        return
    if args.worker == 'flops':
        print(json.dumps({'flops': model_flops(cases[0])}), flush=True)
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
    if 'onednn' in impls or 'auto' in impls:
        info = run_worker('onednn', cases[0], args.steps)
        print(f'oneDNN: {info["onednn"]}; kernels of a 3x3 64-channel convolution: '
              + ', '.join(f'{k} {v}' for k, v in info.get('onednn_kernels', {}).items()),
              flush=True)
        if 'amx' not in info.get('onednn', '') and any(c.endswith('bf16') for c in cases):
            print('note: no AMX on this CPU: bf16 runs correctly here, but its speed on AMX '
                  'hardware cannot be measured on this machine', flush=True)
    if args.peak:
        peak = run_worker('peak', cases[0], args.steps)
        print('measured matmul rate (8192^3): ' + ', '.join(f'{d} {v:.0f} TFLOP/s'
                                                           for d, v in peak.items()), flush=True)
        header += ' % of matmul rate |'
        sep += '---|'
    print(header + '\n' + sep, flush=True)
    for case in cases:
        flops = run_worker('flops', case, args.steps)['flops']
        torch_row = run_worker('torch', case, args.steps) if args.vs_torch else {}
        if args.torch_compile:
            torch_row.update(run_worker('torch_compile', case, args.steps))
        for impl in impls:
            row = {'case': case, 'impl': impl, **run_worker(f'jax:{impl}', case, args.steps),
                   **torch_row}
            row['jax_gflops'] = flops / row['jax_ms'] * 1e3 / 1e9 if flops else None
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
