"""The alternating side-by-side comparison: which worker runs when, and what the rounds add up to.

A noisy machine changes speed within minutes, so one JAX run followed by one PyTorch run can
flip a verdict. bench/train.py therefore runs every case in rounds, each framework once per
round in a fresh process (A B A B ...), pairs the frameworks round by round, and reports the
ratio's median with its min and max; a target the spread straddles is 'not decided'. Pure
functions (no timing, no processes), so the tests check them directly.
"""
from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

TORCH = 'torch'
TORCH_COMPILE = 'torch_compile'
MET, MISSED, NOT_DECIDED = 'met', 'missed', 'not decided'
# Issue 27 item 5: JAX / PyTorch eager (bf16: against autocast), on a CPU.
F32_TARGET, BF16_TARGET_AMX, BF16_TARGET_NO_AMX = 0.75, 0.6, 0.85


def jax_worker_name(impl: str) -> str:
    """The worker that times cenet-jax with `model.conv_impl=impl`."""
    return f'jax:{impl}'


def frameworks(impls: Sequence[str], vs_torch: bool, torch_compile: bool) -> list[str]:
    """The workers of one round, in the order they run: every JAX formulation, then PyTorch
    eager, then torch.compile."""
    return ([jax_worker_name(i) for i in impls] + ([TORCH] if vs_torch else [])
            + ([TORCH_COMPILE] if torch_compile else []))


def schedule(workers: Sequence[str], rounds: int) -> list[tuple[int, str]]:
    """(round, worker) in running order: each round runs every worker once, so the frameworks
    alternate A B A B ... and a round's runs are minutes apart at most."""
    if rounds < 1:
        raise ValueError(f'--rounds must be at least 1, got {rounds}')
    return [(r, w) for r in range(rounds) for w in workers]


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of per-round values."""
    if not values:
        raise ValueError('no rounds to summarise')
    return {'median': statistics.median(values), 'min': min(values), 'max': max(values)}


def ratio_stats(numerator_ms: Sequence[float], denominator_ms: Sequence[float]
                ) -> dict[str, Any]:
    """The per-round ratios (round i: numerator_ms[i] / denominator_ms[i]) with their median,
    min and max: each ratio compares runs made minutes apart, not the medians of all rounds."""
    if len(numerator_ms) != len(denominator_ms):
        raise ValueError(f'{len(numerator_ms)} rounds against {len(denominator_ms)}: the ratio '
                         'pairs the frameworks round by round')
    ratios = [a / b for a, b in zip(numerator_ms, denominator_ms)]
    return {**spread(ratios), 'rounds': ratios}


def verdict(ratio: Mapping[str, float], target: float | None) -> str | None:
    """'met' when even the worst round is within the target (max <= target), 'missed' when even
    the best round is not (min > target), 'not decided' when [min, max] straddles it; None
    without a target."""
    if target is None:
        return None
    if ratio['max'] <= target:
        return MET
    if ratio['min'] > target:
        return MISSED
    return NOT_DECIDED


def builtin_target(dtype: str, platform: str, amx: bool) -> float | None:
    """Issue 27's target for a case's dtype ('f32' / 'bf16') on a CPU; None elsewhere (the
    targets were set for CPUs only)."""
    if platform != 'cpu':
        return None
    if dtype == 'f32':
        return F32_TARGET
    return BF16_TARGET_AMX if amx else BF16_TARGET_NO_AMX


def _framework_summary(runs: Sequence[Mapping[str, Any]], prefix: str, batch: int
                       ) -> dict[str, Any]:
    """One framework's fields over its runs (one per round): median step (ms) and images/s
    from it, median compile / first-call time, the highest peak memory, every round's step."""
    ms = [r[f'{prefix}_ms'] for r in runs]
    return {'ms': statistics.median(ms), 'img_s': batch / statistics.median(ms) * 1e3,
            'compile_s': statistics.median([r[f'{prefix}_compile_s'] for r in runs]),
            'peak_mb': max(r[f'{prefix}_peak_mb'] for r in runs), 'rounds_ms': ms}


def summarize_case(case: str, batch: int, dtype: str, impls: Sequence[str],
                   results: Sequence[Mapping[str, Mapping[str, Any]]], target: float | None,
                   amx: bool) -> list[dict[str, Any]]:
    """One row per JAX formulation from `results` (one dict per round: worker -> the worker's
    JSON fields). `target` overrides the built-in target of the case's dtype."""
    rows = []
    for impl in impls:
        jax_rounds = [r[jax_worker_name(impl)] for r in results]
        first = jax_rounds[0]
        row: dict[str, Any] = {
            'case': case, 'impl': impl, 'impl_resolved': first.get('jax_impl', impl),
            'device': first.get('device'), 'jax': _framework_summary(jax_rounds, 'jax', batch)}
        row['jax']['xla_mb'] = first.get('jax_xla_mb')
        for worker, prefix in ((TORCH, 'torch'), (TORCH_COMPILE, 'torchc')):
            if worker in results[0]:
                row[worker] = _framework_summary([r[worker] for r in results], prefix, batch)
                row[f'ratio_{worker}'] = ratio_stats(row['jax']['rounds_ms'],
                                                     row[worker]['rounds_ms'])
        if 'ratio_torch' in row:
            tgt = target if target is not None else builtin_target(
                dtype, first.get('platform', 'cpu'), amx)
            row['target'], row['verdict'] = tgt, verdict(row['ratio_torch'], tgt)
        rows.append(row)
    return rows
