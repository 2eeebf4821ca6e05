"""bench/train.py's table and its JSON: the same rows print while the benchmark runs and again
from the JSON file (`--from-json`), so docs tables are regenerated from a saved run."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

SCHEMA = 1
Column = tuple[str, Callable[[Mapping[str, Any]], str]]


def _fmt(v: Any, spec: str) -> str:
    return '-' if v is None else format(v, spec)


def _field(*path: str, spec: str) -> Callable[[Mapping[str, Any]], str]:
    def get(row: Mapping[str, Any]) -> str:
        v: Any = row
        for key in path:
            v = v.get(key) if isinstance(v, Mapping) else None
        return _fmt(v, spec)
    return get


def _impl(row: Mapping[str, Any]) -> str:
    resolved = row.get('impl_resolved')
    return row['impl'] if resolved in (None, row['impl']) else f'{row["impl"]} ({resolved})'


def columns(settings: Mapping[str, Any]) -> list[Column]:
    """The table's columns for the frameworks the run compared."""
    cols: list[Column] = [
        ('case', lambda r: r['case']), ('impl', _impl),
        ('JAX compile (s)', _field('jax', 'compile_s', spec='.1f')),
        ('JAX ms', _field('jax', 'ms', spec='.0f')),
        ('JAX img/s', _field('jax', 'img_s', spec='.2f')),
        ('JAX peak MB', _field('jax', 'peak_mb', spec='.0f')),
        ('XLA buffers MB', _field('jax', 'xla_mb', spec='.0f')),
        ('JAX GFLOP/s', _field('jax', 'gflops', spec='.0f'))]
    if settings.get('vs_torch'):
        cols += [('torch ms', _field('torch', 'ms', spec='.0f')),
                 ('torch img/s', _field('torch', 'img_s', spec='.2f')),
                 ('torch peak MB', _field('torch', 'peak_mb', spec='.0f')),
                 ('JAX/torch median', _field('ratio_torch', 'median', spec='.2f')),
                 ('min', _field('ratio_torch', 'min', spec='.2f')),
                 ('max', _field('ratio_torch', 'max', spec='.2f')),
                 ('target', _field('target', spec='.2f')),
                 ('verdict', lambda r: r.get('verdict') or '-')]
    if settings.get('torch_compile'):
        cols += [('torch.compile ms', _field('torch_compile', 'ms', spec='.0f')),
                 ('JAX/compiled median', _field('ratio_torch_compile', 'median', spec='.2f')),
                 ('min', _field('ratio_torch_compile', 'min', spec='.2f')),
                 ('max', _field('ratio_torch_compile', 'max', spec='.2f'))]
    if settings.get('peak'):
        cols.append(('% of matmul rate', lambda r: _fmt(
            None if r.get('peak_fraction') is None else 100 * r['peak_fraction'], '.0f')))
    return cols


def table_header(cols: list[Column]) -> str:
    return ('| ' + ' | '.join(h for h, _ in cols) + ' |\n'
            + '|' + '---|' * len(cols))


def table_row(cols: list[Column], row: Mapping[str, Any]) -> str:
    return '| ' + ' | '.join(fn(row) for _, fn in cols) + ' |'


def preamble(machine: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """The lines above the table: the machine, the versions, and how the rows were measured."""
    v, onednn = machine.get('versions', {}), machine.get('onednn', {})
    cap = machine.get('isa_cap')
    kernels, rate = machine.get('onednn_kernels'), machine.get('matmul_tflops')
    lines = [
        f'CPU: {machine.get("cpu")}, {machine.get("cores")} cores; AMX: '
        f'{"yes" if machine.get("amx") else "no"}'
        + (f' (ONEDNN_MAX_CPU_ISA={cap}; the CPU has AMX: '
           f'{"yes" if machine.get("amx_cpu") else "no"})' if cap else ''),
        'versions: ' + ', '.join(f'{k} {val}' for k, val in v.items() if val)
        + ''.join(f'; oneDNN ({k}) {val}' for k, val in onednn.items() if val)]
    if kernels:
        lines.append("kernels of a 3x3 64-channel convolution in cenet-jax's oneDNN: "
                     + ', '.join(f'{k} {val}' for k, val in kernels.items()))
    if rate:
        lines.append('measured matmul rate (8192^3): '
                     + ', '.join(f'{d} {val:.0f} TFLOP/s' for d, val in rate.items()))
    lines.append(
        f'GLIBC_TUNABLES={machine.get("env", {}).get("GLIBC_TUNABLES") or "(unset)"}; '
        f'{settings["rounds"]} rounds per case, each a fresh process per framework in the order '
        f'{" ".join(settings["order"])} (repeated); each process times the median of '
        f'{settings["steps"]} steps after {settings["warmup"]} warm-up step(s); ratio = median '
        'of the per-round ratios, with their min and max; verdict: met = max <= target, '
        'missed = min > target, else not decided')
    return '\n'.join(lines)


def document(machine: Mapping[str, Any], settings: Mapping[str, Any],
             rows: list[Mapping[str, Any]], wall_s: float, date: str) -> dict[str, Any]:
    """The JSON written by --json: everything the table and its preamble print, plus every
    round's step times, the run's wall time and its start (`date`, ISO 8601)."""
    return {'schema': SCHEMA, 'date': date, 'wall_s': wall_s, 'machine': dict(machine),
            'settings': dict(settings), 'rows': list(rows)}


def render(doc: Mapping[str, Any]) -> str:
    """The preamble and table of a saved run (the --json file)."""
    if doc.get('schema') != SCHEMA:
        raise SystemExit(f'not a bench/train.py JSON of schema {SCHEMA} (it has schema '
                         f'{doc.get("schema")!r}); rerun bench/train.py --json to write one')
    cols = columns(doc['settings'])
    started = f'measured from {doc["date"]}, {doc["wall_s"]:.0f} s: {doc["settings"]["command"]}'
    return '\n'.join([started, preamble(doc['machine'], doc['settings']), '', table_header(cols),
                      *(table_row(cols, r) for r in doc['rows'])])
