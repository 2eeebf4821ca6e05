"""Speed of CE-Net in cenet-jax against the same network in PyTorch, measured side by side.

Cases (bench/cases.py) are named `<kind>_b<batch>_<size>_<dtype>`: kind `train`, `fwd` or `tta`;
dtype `f32` or `bf16` (JAX: bf16 compute with float32 parameters; PyTorch: autocast). The JAX
columns come once per `--impls` formulation (`model.conv_impl`; `auto` shows what it resolved to).

Every case runs in `--rounds` rounds (default 3); a round runs each framework once, every one in
a fresh process, alternating A B A B ... (JAX formulations, then PyTorch eager, then
torch.compile), so a machine that slows down for a few minutes hits both frameworks of a round.
Each process compiles and warms up untimed, then times `--steps` steps (median). Per case: each
framework's median step over the rounds and images/s from it, and the ratio JAX / PyTorch as the
median of the per-round ratios with its min and max. Against a target (`--target`, else issue
27's per dtype on a CPU: float32 0.75, bf16 0.6 with AMX and 0.85 without) a case is `met` when
the max ratio is within it, `missed` when the min is above it, else `not decided`.

Run time: every round pays each framework's process start, import and compile again (excluded
from the timing), so a run takes about cases x rounds x frameworks x (start + compile +
(warm-up + steps) x step time), about `--rounds` times a single run of each process; the
end prints the wall time. To shorten it, time fewer `--cases`; `--steps` shortens only the
timed part.

  GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736:glibc.malloc.arena_max=1 \\
    python bench/train.py --vs-torch --impls auto --json cpu.json      # the CPU table
  ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 python bench/train.py ...  # both frameworks below AMX
  python bench/train.py --from-json cpu.json                          # print a saved table again

Columns: compile (s), median step (ms), images/s, peak memory (MB; on CPU the process's peak
RSS, which for JAX includes the compiler's own peak, and beside it XLA's buffer assignment of
the step: arguments + outputs + temporaries; on GPU the allocator's peak), the model's GFLOP/s
(XLA's FLOP count of the case in the XLA formulation divided by the step time, the same work for
every formulation), the ratio JAX / PyTorch (below 1: JAX is faster), target and verdict. With
`onednn` or `auto` it first prints oneDNN's version and the instruction set its kernels run on.
"""
from __future__ import annotations

import argparse
import datetime
import json
import re
import resource
import shlex
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import cases, machine, report, rounds  # noqa: E402
from bench.cases import DTYPES, jax_case, model_flops, parse_case, torch_case  # noqa: E402
from bench.timing import first_and_median  # noqa: E402

DEFAULT_CASES = ('train_b8_448_f32,fwd_b8_448_f32,tta_b8_448_f32,'
                 'train_b4_256_f32,fwd_b4_256_f32,tta_b4_256_f32')


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------------------------
# JAX worker

def jax_worker(case: str, impl: str, steps: int, warmup: int) -> dict[str, Any]:
    """Compile and time one case with cenet-jax; returns one round's JAX fields."""
    import jax

    c = jax_case(case, impl)
    t0 = time.perf_counter()
    c.fn = c.fn.lower(*c.args).compile()
    compile_s = time.perf_counter() - t0
    mem = c.fn.memory_analysis()
    xla_mb = (sum(getattr(mem, f) for f in ('temp_size_in_bytes', 'argument_size_in_bytes',
                                            'output_size_in_bytes')) / 2**20 if mem else None)
    _, step_s = first_and_median(c.run, steps, warmup)
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != 'cpu' else None
    peak = stats['peak_bytes_in_use'] / 2**20 if stats else _peak_rss_mb()
    return dict(jax_compile_s=compile_s, jax_ms=1e3 * step_s, jax_peak_mb=peak,
                jax_xla_mb=xla_mb, jax_impl=c.conv_impl, platform=device.platform,
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

def torch_onednn_version() -> str | None:
    """The version of the oneDNN built into PyTorch, from its build configuration."""
    import torch
    found = re.search(r'(?:MKL-DNN|oneDNN) v([0-9][0-9.]*)', torch.__config__.show())
    return found.group(1) if found else None


def torch_worker(case: str, steps: int, warmup: int, compile_model: bool) -> dict[str, Any]:
    """Time one case with the PyTorch CE-Net (eager, or torch.compile); returns one round's
    fields."""
    import torch

    c = torch_case(case, compile_model)
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    first_s, step_s = first_and_median(c.run, steps, warmup)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _peak_rss_mb()
    key = 'torchc' if compile_model else 'torch'
    return {f'{key}_compile_s': first_s, f'{key}_ms': 1e3 * step_s, f'{key}_peak_mb': peak,
            'torch_version': torch.__version__, 'torch_onednn': torch_onednn_version()}


# ---------------------------------------------------------------------------------------------
# Driver

def run_worker(worker: str, case: str, steps: int = 1, warmup: int = 1) -> dict[str, Any]:
    """Run one (worker, case) in a fresh Python process and parse its JSON line; the process
    inherits this one's environment (GLIBC_TUNABLES, ONEDNN_MAX_CPU_ISA, thread counts), the
    same for every framework."""
    return cases.run_worker('bench/train.py', ['--worker', worker, '--cases', case,
                                               '--steps', str(steps), '--warmup', str(warmup)],
                            f'{worker} {case}')


def matmul_peak_tflops(dtype: str, n: int = 8192, steps: int = 10) -> float:
    """The device's measured matmul rate (TFLOP/s) for an n x n x n product in `dtype`."""
    import jax
    import jax.numpy as jnp
    a = jnp.ones((n, n), DTYPES[dtype])
    f = jax.jit(lambda a: a @ a)
    _, t = first_and_median(lambda: jax.block_until_ready(f(a)), steps)
    return 2 * n ** 3 / t / 1e12


def worker_main(worker: str, case: str, steps: int, warmup: int) -> dict[str, Any]:
    """What one worker process measures (the driver parses its JSON line)."""
    if worker == 'peak':
        return {d: matmul_peak_tflops(d) for d in DTYPES}
    if worker == 'onednn':
        return onednn_info()
    if worker == 'flops':
        return {'flops': model_flops(case)}
    if worker == 'torch_onednn':
        return {'torch_onednn': torch_onednn_version()}
    if worker.startswith('jax:'):
        return jax_worker(case, worker[4:], steps, warmup)
    if worker in (rounds.TORCH, rounds.TORCH_COMPILE):
        return torch_worker(case, steps, warmup, compile_model=worker == rounds.TORCH_COMPILE)
    raise SystemExit(f'unknown worker {worker!r}')


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_case(case: str, workers: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """All rounds of one case, A B A B ...: one dict per round, worker -> its fields."""
    results: list[dict[str, Any]] = [{} for _ in range(args.rounds)]
    for r, worker in rounds.schedule(workers, args.rounds):
        row = results[r][worker] = run_worker(worker, case, args.steps, args.warmup)
        ms = next(v for k, v in row.items() if k.endswith('_ms'))
        _progress(f'{case} round {r + 1}/{args.rounds}: {worker} {ms:.0f} ms')
    return results


def describe_machine(settings: dict[str, Any]) -> dict[str, Any]:
    """machine.describe() plus what only workers can tell: the oneDNN versions of both
    frameworks, the kernels cenet-jax's oneDNN picks, and with --peak the matmul rate."""
    info = machine.describe()
    info['onednn'] = {}
    case = settings['cases'][0]
    if {'onednn', 'auto'} & set(settings['impls']):
        found = run_worker('onednn', case)
        info['onednn']['cenet-jax'] = found['onednn']
        info['onednn_kernels'] = found.get('onednn_kernels')
        if found.get('onednn_kernels') and ('amx' in found['onednn']) != info['amx']:
            _progress(f'warning: oneDNN reports {found["onednn"]} but /proc/cpuinfo and '
                      f'ONEDNN_MAX_CPU_ISA={info["isa_cap"]} say AMX {info["amx"]}: the bf16 '
                      'target follows the latter')
    if settings['vs_torch'] or settings['torch_compile']:
        info['onednn']['torch'] = run_worker('torch_onednn', case)['torch_onednn']
    if settings['peak']:
        info['matmul_tflops'] = run_worker('peak', case)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--cases', default=DEFAULT_CASES,
                        help='comma-separated case names, e.g. train_b8_448_f32,fwd_b4_256_f32')
    parser.add_argument('--impls', default='auto',
                        help="JAX conv formulations to time (model.conv_impl): xla, matmul, "
                             "onednn, auto (what train.py runs by default)")
    parser.add_argument('--vs-torch', action='store_true', help='also time PyTorch eager')
    parser.add_argument('--torch-compile', action='store_true', help='also time torch.compile')
    parser.add_argument('--rounds', type=int, default=3,
                        help='rounds per case; each runs every framework once in a fresh process '
                             '(A B A B ...); at least 3 for a verdict worth quoting')
    parser.add_argument('--steps', type=int, default=3,
                        help='timed steps per process (their median is the round\'s step time)')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed steps per process before the timed ones (after compiling)')
    parser.add_argument('--target', type=float,
                        help='JAX / PyTorch ratio a case must stay within (default: per dtype on '
                             'a CPU: f32 0.75, bf16 0.6 with AMX, 0.85 without)')
    parser.add_argument('--json', help='write the machine, settings and rows (every round '
                                       'included) to this file, after every case')
    parser.add_argument('--from-json', help='print the table of a saved --json file and exit')
    parser.add_argument('--peak', action='store_true',
                        help="first measure the device's f32 and bf16 matmul rate (GPU/TPU)")
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.from_json:
        print(report.render(json.loads(Path(args.from_json).read_text())))
        return
    case_names = [c for c in args.cases.split(',') if c]
    for c in case_names:
        parse_case(c)
    if args.worker:
        print(json.dumps(worker_main(args.worker, case_names[0], args.steps, args.warmup)),
              flush=True)
        return
    impls = [i for i in args.impls.split(',') if i]
    workers = rounds.frameworks(impls, args.vs_torch, args.torch_compile)
    rounds.schedule(workers, args.rounds)  # validates --rounds before any process starts
    start = time.perf_counter()
    date = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
    settings = {'cases': case_names, 'impls': impls, 'vs_torch': args.vs_torch,
                'torch_compile': args.torch_compile, 'peak': args.peak, 'rounds': args.rounds,
                'steps': args.steps, 'warmup': args.warmup, 'target': args.target,
                'order': workers, 'command': shlex.join(['python', *sys.argv])}
    info = describe_machine(settings)
    peak = info.get('matmul_tflops')
    print(report.preamble(info, settings), flush=True)
    if args.rounds < 3:
        _progress(f'note: {args.rounds} round(s) per case; the README and docs tables use 3 or '
                  'more')
    cols = report.columns(settings)
    print(report.table_header(cols), flush=True)
    rows: list[dict[str, Any]] = []
    for case in case_names:
        _, batch, _, dtype = parse_case(case)
        flops = run_worker('flops', case)['flops']
        for row in rounds.summarize_case(case, batch, dtype, impls,
                                         run_case(case, workers, args), args.target,
                                         info['amx']):
            row['jax']['gflops'] = flops / row['jax']['ms'] * 1e3 / 1e9 if flops else None
            if peak and row['jax']['gflops']:
                row['peak_fraction'] = row['jax']['gflops'] / 1e3 / peak[dtype]
            print(report.table_row(cols, row), flush=True)
            rows.append(row)
        if args.json:
            Path(args.json).write_text(json.dumps(report.document(
                info, settings, rows, time.perf_counter() - start, date), indent=1))
    print(f'wall time {time.perf_counter() - start:.0f} s', flush=True)


if __name__ == '__main__':
    main()
