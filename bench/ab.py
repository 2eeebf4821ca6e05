"""In-process A/B of two settings of the oneDNN path, for measuring one change on a busy machine.

Both variants of a case are built and compiled in ONE process, each with its own environment
variables applied while it is traced (the oneDNN path reads its settings then: thread count,
layout, kernel pre-packing, ...), then their timed calls alternate, A B, B A, A B, ... (the order
flips every pair, so a drift in the machine's speed does not favour one side). Reported: each
variant's median call, and the ratio B / A as the median of the per-pair ratios with its min
and max (below 1: B is faster). Settings that a library reads once per process (OpenMP's
GOMP_SPINCOUNT, OMP_WAIT_POLICY) cannot be compared this way: see `--processes`.

  python bench/ab.py --case train_b4_256_f32 --a CENET_JAX_ONEDNN_THREADS=1 \\
      --b CENET_JAX_ONEDNN_THREADS=2 --pairs 7
  python bench/ab.py --case tta_b4_256_bf16 --a CENET_JAX_ONEDNN_PREPACK=0 --b '' --pairs 7
  python bench/ab.py --case train_b4_256_f32 --processes --a GOMP_SPINCOUNT=300000 \\
      --b GOMP_SPINCOUNT=10000 --pairs 5 --steps 3

With `--processes` each pair runs two fresh worker processes instead (A then B, the order
flipping every pair), each compiling, warming up and timing the median of `--steps` calls.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cases import jax_case, run_worker  # noqa: E402
from bench.rounds import ratio_stats, spread  # noqa: E402


def parse_settings(text: str) -> dict[str, str]:
    """'NAME=VALUE NAME2=VALUE2' (or '' for none) -> {NAME: VALUE}."""
    settings = {}
    for item in text.split():
        name, sep, value = item.partition('=')
        if not sep or not name:
            raise SystemExit(f'bad setting {item!r}: expected NAME=VALUE')
        settings[name] = value
    return settings


@contextlib.contextmanager
def environment(settings: dict[str, str]) -> Iterator[None]:
    """The process environment with `settings` applied, restored afterwards."""
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1e3


def in_process(case: str, impl: str, variants: dict[str, dict[str, str]], pairs: int,
               warmup: int) -> dict[str, list[float]]:
    """ms per call of each variant, `pairs` calls each, alternating in one process."""
    runs = {}
    for name, settings in variants.items():
        with environment(settings):
            c = jax_case(case, impl)
            for _ in range(warmup + 1):  # the first call traces and compiles, under `settings`
                c.run()
        runs[name] = c.run
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(pairs):
        for name in (names if i % 2 == 0 else names[::-1]):
            times[name].append(_timed(runs[name]))
    return times


def worker(case: str, impl: str, steps: int, warmup: int) -> None:
    """One process's median call (the --processes mode's worker), as a JSON line."""
    c = jax_case(case, impl)
    for _ in range(warmup + 1):
        c.run()
    ms = statistics.median(_timed(c.run) for _ in range(steps))
    print(json.dumps({'ms': ms}))


def in_processes(case: str, impl: str, variants: dict[str, dict[str, str]], pairs: int,
                 steps: int, warmup: int) -> dict[str, list[float]]:
    """Median ms of each variant's worker processes, `pairs` processes each, alternating."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(pairs):
        for name in (names if i % 2 == 0 else names[::-1]):
            with environment(variants[name]):
                out = run_worker('bench/ab.py', ['--worker', '--case', case, '--impl', impl,
                                                 '--steps', str(steps), '--warmup', str(warmup)],
                                 f'{case} {name}')
            times[name].append(out['ms'])
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--case', required=True, help='e.g. train_b4_256_f32 (bench/cases.py)')
    p.add_argument('--impl', default='onednn', help="model.conv_impl (default 'onednn')")
    p.add_argument('--a', default='', help="variant A's settings, 'NAME=VALUE ...' ('' = none)")
    p.add_argument('--b', default='', help="variant B's settings")
    p.add_argument('--pairs', type=int, default=7, help='timed calls (or processes) per variant')
    p.add_argument('--warmup', type=int, default=1, help='untimed calls after the compile')
    p.add_argument('--processes', action='store_true',
                   help='a fresh process per timed run (settings read once per process)')
    p.add_argument('--steps', type=int, default=3, help='--processes: calls timed per process')
    p.add_argument('--json', help='append the result as one JSON line to this file')
    p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.case, args.impl, args.steps, args.warmup)
    variants = {'A': parse_settings(args.a), 'B': parse_settings(args.b)}
    start = time.time()
    if args.processes:
        times = in_processes(args.case, args.impl, variants, args.pairs, args.steps,
                             args.warmup)
    else:
        times = in_process(args.case, args.impl, variants, args.pairs, args.warmup)
    ratio = ratio_stats(times['B'], times['A'])
    load = os.getloadavg()[0]
    print(f"{args.case} ({args.impl}{', processes' if args.processes else ''}; load average "
          f"{load:.1f}; {time.time() - start:.0f} s)")
    for name in variants:
        s = spread(times[name])
        print(f"  {name} [{getattr(args, name.lower()) or 'defaults'}]: median {s['median']:.0f} "
              f"ms [{s['min']:.0f}, {s['max']:.0f}]")
    print(f"  B / A: median {ratio['median']:.3f} [{ratio['min']:.3f}, {ratio['max']:.3f}] "
          f"over {len(ratio['rounds'])} pairs")
    if args.json:
        with open(args.json, 'a') as f:
            f.write(json.dumps({'case': args.case, 'impl': args.impl, 'a': args.a, 'b': args.b,
                                'processes': args.processes, 'load_average': load,
                                'ms': times, 'ratio': ratio}) + '\n')


if __name__ == '__main__':
    main()
