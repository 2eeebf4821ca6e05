"""bench/train.py's alternating comparison: the round order, the per-round ratios, the verdicts
against a target, the machine description and the JSON / table, checked on made-up step times
(nothing is timed); one slow smoke run of the real workers on the smallest case."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import machine, report, rounds  # noqa: E402
from bench import train as bench_train  # noqa: E402


def test_rounds_alternate_the_frameworks() -> None:
    workers = rounds.frameworks(['onednn'], vs_torch=True, torch_compile=False)
    assert workers == ['jax:onednn', 'torch']
    assert rounds.schedule(workers, 3) == [(0, 'jax:onednn'), (0, 'torch'), (1, 'jax:onednn'),
                                           (1, 'torch'), (2, 'jax:onednn'), (2, 'torch')]
    workers = rounds.frameworks(['auto', 'xla'], vs_torch=True, torch_compile=True)
    assert [w for _, w in rounds.schedule(workers, 2)] == [
        'jax:auto', 'jax:xla', 'torch', 'torch_compile'] * 2
    with pytest.raises(ValueError, match='at least 1'):
        rounds.schedule(workers, 0)


def test_ratio_pairs_rounds_not_medians() -> None:
    # Medians 100 / 100 would give 1.0; the rounds' own ratios are 0.5, 1.2 and 0.9.
    stats = rounds.ratio_stats([100.0, 120.0, 90.0], [200.0, 100.0, 100.0])
    assert stats['rounds'] == pytest.approx([0.5, 1.2, 0.9])
    assert (stats['median'], stats['min'], stats['max']) == pytest.approx((0.9, 0.5, 1.2))
    with pytest.raises(ValueError, match='round by round'):
        rounds.ratio_stats([1.0, 2.0], [1.0])


@pytest.mark.parametrize('lo, hi, target, expected', [
    (0.60, 0.70, 0.75, 'met'),
    (0.60, 0.75, 0.75, 'met'),           # the worst round exactly at the target
    (0.76, 0.90, 0.75, 'missed'),
    (0.70, 0.80, 0.75, 'not decided'),   # the spread straddles the target
    (0.75, 0.80, 0.75, 'not decided'),   # the best round at the target, the worst above
    (0.70, 0.80, None, None),
])
def test_verdict(lo: float, hi: float, target: float | None, expected: str | None) -> None:
    assert rounds.verdict({'median': (lo + hi) / 2, 'min': lo, 'max': hi}, target) == expected


def test_targets_follow_dtype_amx_and_isa_cap() -> None:
    amx = {'avx512f', 'avx512_bf16', 'amx_tile', 'amx_bf16'}
    assert machine.amx_usable(amx, None)
    assert machine.amx_usable(amx, 'avx512_core_amx')
    assert not machine.amx_usable(amx, 'AVX512_CORE_BF16')
    assert not machine.amx_usable({'avx512f', 'avx512_bf16'}, None)
    assert machine.isa_cap({'DNNL_MAX_CPU_ISA': 'AVX2'}) == 'AVX2'
    assert machine.isa_cap({'ONEDNN_MAX_CPU_ISA': 'AVX512_CORE_BF16',
                            'DNNL_MAX_CPU_ISA': 'AVX2'}) == 'AVX512_CORE_BF16'
    assert rounds.builtin_target('f32', 'cpu', amx=True) == 0.75
    assert rounds.builtin_target('bf16', 'cpu', amx=True) == 0.6
    assert rounds.builtin_target('bf16', 'cpu', amx=False) == 0.85
    assert rounds.builtin_target('f32', 'gpu', amx=False) is None


def test_cpuinfo_reads_the_first_processor() -> None:
    text = ('processor\t: 0\nmodel name\t: Test CPU @ 2GHz\nflags\t\t: fpu avx512f amx_tile\n\n'
            'processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n')
    assert machine.cpuinfo(text) == ('Test CPU @ 2GHz', {'fpu', 'avx512f', 'amx_tile'})
    described = machine.describe()
    assert described['cores'] >= 1 and isinstance(described['amx'], bool)
    assert set(described['versions']) == set(machine.PACKAGES)


def _jax(ms: float, impl: str = 'onednn') -> dict[str, Any]:
    return {'jax_ms': ms, 'jax_compile_s': 3.0, 'jax_peak_mb': 900.0, 'jax_xla_mb': 120.0,
            'jax_impl': impl, 'platform': 'cpu', 'device': '1 x cpu'}


def _torch(ms: float, key: str = 'torch') -> dict[str, Any]:
    return {f'{key}_ms': ms, f'{key}_compile_s': 2.0, f'{key}_peak_mb': 800.0,
            'torch_version': '2.x', 'torch_onednn': '3.x'}


def test_case_summary_and_json_shape() -> None:
    results = [{'jax:auto': _jax(ms), 'torch': _torch(t)}
               for ms, t in ((70.0, 100.0), (80.0, 100.0), (60.0, 100.0))]
    [row] = rounds.summarize_case('train_b2_192_f32', 2, 'f32', ['auto'], results,
                                  target=None, amx=True)
    assert row['impl'] == 'auto' and row['impl_resolved'] == 'onednn'
    assert row['jax']['ms'] == 70.0 and row['jax']['img_s'] == pytest.approx(2 / 0.070)
    assert row['jax']['rounds_ms'] == [70.0, 80.0, 60.0]
    assert row['ratio_torch']['rounds'] == pytest.approx([0.7, 0.8, 0.6])
    assert row['target'] == 0.75 and row['verdict'] == 'not decided'
    [bf16] = rounds.summarize_case('train_b2_192_bf16', 2, 'bf16', ['auto'], results,
                                   target=None, amx=False)
    assert bf16['target'] == 0.85 and bf16['verdict'] == 'met'
    [given] = rounds.summarize_case('train_b2_192_f32', 2, 'f32', ['auto'], results,
                                    target=0.5, amx=True)
    assert given['target'] == 0.5 and given['verdict'] == 'missed'

    settings = {'cases': ['train_b2_192_f32'], 'impls': ['auto'], 'vs_torch': True,
                'torch_compile': False, 'peak': False, 'rounds': 3, 'steps': 2, 'warmup': 1,
                'target': None, 'order': ['jax:auto', 'torch'], 'command': 'python bench/train.py'}
    doc = json.loads(json.dumps(report.document(machine.describe(), settings, [row], 12.0,
                                                '2026-12-07T00:00:00+00:00')))
    assert set(doc) == {'schema', 'date', 'wall_s', 'machine', 'settings', 'rows'}
    assert {'cpu', 'cores', 'amx', 'isa_cap', 'versions', 'env'} <= set(doc['machine'])
    assert {'median', 'min', 'max', 'rounds'} == set(doc['rows'][0]['ratio_torch'])
    table = report.render(doc)
    assert '| JAX/torch median | min | max | target | verdict |' in table
    assert '| train_b2_192_f32 | auto (onednn) |' in table
    assert '| 0.70 | 0.60 | 0.80 | 0.75 | not decided |' in table
    with pytest.raises(SystemExit, match='schema'):
        report.render({**doc, 'schema': 0})


def test_driver_runs_rounds_in_alternation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    """main() with workers replaced by made-up results: the order it starts them in, the
    table it prints, and the JSON that --from-json prints again."""
    calls: list[str] = []
    torch_ms = iter([100.0, 200.0, 100.0])
    jax_ms = iter([70.0, 80.0, 90.0])

    def fake_worker(worker: str, case: str, steps: int = 1, warmup: int = 1) -> dict[str, Any]:
        calls.append(worker)
        assert (steps, warmup) in ((1, 1), (2, 1)) and case == 'train_b2_192_f32'
        return {'onednn': {'onednn': '3.2.0 avx512_core', 'onednn_kernels': {'f32': 'k'}},
                'torch_onednn': {'torch_onednn': '3.x'}, 'flops': {'flops': 1e9},
                'jax:auto': _jax(next(jax_ms)) if worker == 'jax:auto' else None,
                'torch': _torch(next(torch_ms)) if worker == 'torch' else None}[worker]

    monkeypatch.setattr(bench_train, 'run_worker', fake_worker)
    out = tmp_path / 'bench.json'
    monkeypatch.setattr(sys, 'argv', ['bench/train.py', '--vs-torch', '--impls', 'auto',
                                      '--cases', 'train_b2_192_f32', '--steps', '2',
                                      '--target', '0.75', '--json', str(out)])
    bench_train.main()
    assert calls == ['onednn', 'torch_onednn', 'flops'] + ['jax:auto', 'torch'] * 3
    printed = capsys.readouterr().out
    # rounds 0.7, 0.4, 0.9: median 0.7, spread 0.4-0.9 straddles 0.75
    assert '| 0.70 | 0.40 | 0.90 | 0.75 | not decided |' in printed
    doc = json.loads(out.read_text())
    assert doc['settings']['rounds'] == 3 and doc['rows'][0]['torch']['rounds_ms'] == [
        100.0, 200.0, 100.0]
    monkeypatch.setattr(sys, 'argv', ['bench/train.py', '--from-json', str(out)])
    bench_train.main()
    again = capsys.readouterr().out
    assert [ln for ln in again.splitlines() if ln.startswith('|')] == [
        ln for ln in printed.splitlines() if ln.startswith('|')]


@pytest.mark.slow
@pytest.mark.parametrize('vs_torch', [False, True], ids=['jax', 'jax_vs_torch'])
def test_alternating_smoke_run(vs_torch: bool, tmp_path: Path) -> None:
    """The real workers, 2 rounds of the smallest case PyTorch's CE-Net accepts (its RMP block
    pools the 1/32 map with 6x6 windows: 192 px), 1 timed step each. About half a minute per
    framework on 2 idle cores."""
    if vs_torch and importlib.util.find_spec('torch') is None:
        pytest.skip('PyTorch is not installed (pip install -e .[torch]): no PyTorch side to run')
    out = tmp_path / 'smoke.json'
    cmd = [sys.executable, 'bench/train.py', '--cases', 'fwd_b1_192_f32', '--impls', 'auto',
           '--rounds', '2', '--steps', '1', '--json', str(out)] + (['--vs-torch'] * vs_torch)
    env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [row] = json.loads(out.read_text())['rows']
    assert len(row['jax']['rounds_ms']) == 2 and row['impl_resolved'] in ('onednn', 'matmul')
    if vs_torch:
        assert len(row['ratio_torch']['rounds']) == 2
        assert row['verdict'] in ('met', 'missed', 'not decided')
        assert 'verdict |' in proc.stdout


def test_ab_settings_alternation_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/ab.py: each variant is built (traced) under its own settings, which are restored
    after; timed calls alternate A B, B A, ...; a malformed setting is an error."""
    from bench import ab

    assert ab.parse_settings('') == {}
    assert ab.parse_settings('X_A=1 X_B=') == {'X_A': '1', 'X_B': ''}
    with pytest.raises(SystemExit, match='NAME=VALUE'):
        ab.parse_settings('X_A')
    monkeypatch.setenv('CENET_AB_TEST', 'outer')
    calls: list[str] = []

    class Case:
        def __init__(self) -> None:
            self.setting = os.environ.get('CENET_AB_TEST')

        def run(self) -> None:
            calls.append(self.setting)

    monkeypatch.setattr(ab, 'jax_case', lambda case, impl: Case())
    times = ab.in_process('train_b1_64_f32', 'onednn', {'A': {'CENET_AB_TEST': 'a'},
                                                         'B': {'CENET_AB_TEST': 'b'}},
                          pairs=3, warmup=1)
    assert os.environ['CENET_AB_TEST'] == 'outer'
    assert calls == ['a', 'a', 'b', 'b'] + ['a', 'b', 'b', 'a', 'a', 'b']
    assert [len(t) for t in times.values()] == [3, 3]
