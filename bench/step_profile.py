"""Where the time of one CE-Net step goes, in cenet-jax and in PyTorch, on the same case.

The JAX side comes from a `jax.profiler` trace (XLA:CPU records one event per executed HLO
instruction), each instruction sorted into a part of the step by what it computes and by the
name scope JAX gives it (`jvp(CENet)/encoder/...`, `transpose(...)` for gradients, the `loss`
and `optimizer` scopes of `train_step`). With `model.conv_impl='onednn'` the extension's own
timers split each call into its reorders (layout changes) and the kernel. The PyTorch side
comes from `torch.profiler`: each operator's self time, the backward ones tied to their forward
operator by autograd's sequence numbers. PyTorch computes a convolution's input and weight
gradients in one operator, so its row holds both.

  GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736:glibc.malloc.arena_max=1 \\
    python bench/step_profile.py --case train_b4_256_f32 --impls matmul,onednn

Times are ms per step (the median step's wall time, and op times summed over the profiled steps
divided by their number). XLA may run two independent operations at once, so the JAX parts can
add up to a little more than the wall time; 'not in any op' is wall time no operation covered
(dispatch, waiting).
"""
from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cases import jax_case, parse_case, run_worker, torch_case  # noqa: E402

PARTS = ('convolution forward', 'convolution input gradient', 'convolution weight gradient',
         'convolution gradients (input + weight)', 'transposed convolutions (fwd + grads)',
         'oneDNN reorders (layout changes in the calls)', 'BatchNorm, ReLU, adds, pooling',
         'loss (fwd + grad)', 'optimizer update', 'copies, casts, layout changes', 'other')
CONV_OPS = {0: 'convolution forward', 1: 'convolution input gradient',
            2: 'convolution weight gradient'}
TRANSPOSED = 'transposed convolutions (fwd + grads)'
ELEMENTWISE = 'BatchNorm, ReLU, adds, pooling'


def onednn_part(key: list[int]) -> str:
    """The part of a oneDNN call, from its plan key (cenet_jax/ops/onednn_schema.py)."""
    from cenet_jax.ops import onednn_schema
    operation, fields = onednn_schema.unpack(key)
    if operation != 'conv':  # batch norm, pooling
        return ELEMENTWISE
    if fields['transposed']:
        return TRANSPOSED
    # Inference's kernel pack and packed forward count as the forward (the pack's time is the
    # extension's reorder phase of the forward, moved to the reorders by jax_profile).
    op = onednn_schema.ENUMS['conv_op'][fields['op']]
    return CONV_OPS[0 if op in ('pack_kernel', 'forward_packed') else fields['op']]


def label_part(label: str) -> str:
    """The part of a timing label of the extension (onednn_loader.LABELS)."""
    if 'conv' not in label:
        return ELEMENTWISE
    if 'transposed' in label:
        return TRANSPOSED
    return {'forward': CONV_OPS[0], 'data gradient': CONV_OPS[1],
            'weight gradient': CONV_OPS[2]}[label.split('conv ', 1)[1]]


# ---------------------------------------------------------------------------------------------
# JAX: HLO instructions -> parts

_INSTRUCTION = re.compile(r'^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*')


def _split_shape(rest: str) -> tuple[str, str]:
    """'(f32[2]{0}, u8[4]{0}) custom-call(...' -> (shape text, text after it)."""
    if rest.startswith('('):
        depth = 0
        for i, ch in enumerate(rest):
            depth += ch == '('
            depth -= ch == ')'
            if depth == 0:
                return rest[:i + 1], rest[i + 1:].lstrip()
    shape, _, tail = rest.partition(' ')
    return shape, tail


def parse_hlo(text: str) -> dict[str, dict[str, Any]]:
    """{instruction name: {opcode, shape, op_name, target, config, calls, computation}} for
    every instruction of every computation of an HLO module's text."""
    out: dict[str, dict[str, Any]] = {}
    computation = ''
    for line in text.splitlines():
        if not line.startswith(' ') and '{' in line and '=' not in line.split('{')[0]:
            computation = line.split()[0].lstrip('%') if line.split() else ''
            if computation == 'ENTRY':
                computation = line.split()[1].lstrip('%')
            continue
        m = _INSTRUCTION.match(line)
        if not m:
            continue
        shape, tail = _split_shape(line[m.end():])
        opcode = tail.split('(', 1)[0].strip()
        op_name = re.search(r'op_name="([^"]*)"', line)
        target = re.search(r'custom_call_target="([^"]*)"', line)
        calls = re.search(r'calls=%?([\w.\-]+)', line)
        out[m.group(1)] = dict(
            opcode=opcode, shape=shape, op_name=op_name.group(1) if op_name else '',
            target=target.group(1) if target else '', config=line.split('backend_config=')[-1]
            if 'backend_config=' in line else '', calls=calls.group(1) if calls else '',
            computation=computation)
    return out


def _numel(shape: str) -> int:
    dims = re.match(r'\w+\[([\d,]*)\]', shape)
    if not dims:
        return -1
    n = 1
    for d in filter(None, dims.group(1).split(',')):
        n *= int(d)
    return n


def jax_part(ins: dict[str, Any], opcodes_inside: set[str], kernel_sizes: set[int]) -> str:
    """The part of the step one executed instruction belongs to."""
    name = ins['op_name']
    if ins['target'] == 'cenet_onednn':
        key = re.search(r'key = dense<\[([\d, -]+)\]>', ins['config']).group(1)
        return onednn_part([int(v) for v in key.split(',')])
    if 'optimizer' in name.split('/'):
        return 'optimizer update'
    if '(loss)' in name or '/loss/' in name:
        return 'loss (fwd + grad)'
    if opcodes_inside & {'convolution', 'dot'}:
        if 'deconv' in name:
            return 'transposed convolutions (fwd + grads)'
        if 'transpose(' not in name:
            return 'convolution forward'
        return ('convolution weight gradient' if _numel(ins['shape']) in kernel_sizes
                else 'convolution input gradient')
    if opcodes_inside and opcodes_inside <= {'copy', 'transpose', 'bitcast', 'parameter',
                                             'convert', 'reshape', 'slice', 'pad', 'concatenate',
                                             'broadcast', 'constant', 'tuple',
                                             'get-tuple-element', 'dynamic-slice',
                                             'dynamic-update-slice'}:
        return 'copies, casts, layout changes'
    if 'CENet' in name:
        return 'BatchNorm, ReLU, adds, pooling'
    return 'other'


def jax_profile(case: str, impl: str, steps: int) -> dict[str, Any]:
    """Per-part ms of one step of the case in cenet-jax, from a jax.profiler trace."""
    import jax

    from cenet_jax.ops import onednn_loader

    c = jax_case(case, impl)
    c.fn = c.fn.lower(*c.args).compile()
    hlo = parse_hlo(c.fn.as_text())
    by_computation: dict[str, set[str]] = collections.defaultdict(set)
    for ins in hlo.values():
        by_computation[ins['computation']].add(ins['opcode'])

    def inside(ins: dict[str, Any]) -> set[str]:
        return by_computation.get(ins['calls'], set()) | {ins['opcode']} \
            if ins['opcode'] == 'fusion' else {ins['opcode']}

    params = c.args[0].params if c.kind == 'train' else c.args[0]['params']
    kernel_sizes = {int(a.size) for a in jax.tree.leaves(params) if a.ndim == 4}
    for _ in range(2):
        c.run()
    timing = impl == 'onednn'
    if timing:
        onednn_loader.start_call_timing()
    walls = []
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
        for _ in range(steps):
            t0 = time.perf_counter()
            c.run()
            walls.append(time.perf_counter() - t0)
        jax.profiler.stop_trace()
        trace = json.load(gzip.open(next(Path(trace_dir).rglob('*.trace.json.gz'))))
    parts: dict[str, float] = collections.defaultdict(float)
    top: dict[tuple[str, str], float] = collections.defaultdict(float)
    for e in trace['traceEvents']:
        ins = hlo.get(e.get('name', ''))
        if e.get('ph') != 'X' or ins is None or ins['opcode'] in ('while', 'call', 'conditional'):
            continue
        part = jax_part(ins, inside(ins), kernel_sizes)
        parts[part] += e['dur'] / 1e3 / steps
        top[(part, f"{e['name']} {ins['shape'][:40]} {ins['op_name'][-70:]}")] += \
            e['dur'] / 1e3 / steps
    if timing:
        for label, t in onednn_loader.read_call_timing().items():
            reorder = (t['reorder_in'] + t['reorder_out']) * 1e3 / steps
            parts[label_part(label)] -= reorder
            parts['oneDNN reorders (layout changes in the calls)'] += reorder
    return {'wall_ms': 1e3 * statistics.median(walls), 'parts': dict(parts),
            'top': [[p, name, ms] for (p, name), ms in
                    sorted(top.items(), key=lambda kv: -kv[1])[:3000]]}


# ---------------------------------------------------------------------------------------------
# PyTorch: operators -> parts

_TORCH_FORWARD = {'aten::conv2d': 'convolution forward',
                  'aten::conv_transpose2d': 'transposed convolutions (fwd + grads)'}
_TORCH_COPIES = ('aten::copy_', 'aten::_to_copy', 'aten::clone', 'aten::contiguous',
                 'aten::to_dense', 'aten::to_mkldnn')


def torch_profile(case: str, steps: int) -> dict[str, Any]:
    """Per-part ms of one step of the case in PyTorch, from torch.profiler."""
    import torch

    torch.set_num_threads(2)
    c = torch_case(case)
    for _ in range(2):
        c.run()
    walls = []
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            t0 = time.perf_counter()
            c.run()
            walls.append(time.perf_counter() - t0)
    events = prof.events()

    def forward_part(e: Any) -> str | None:
        """The part a forward operator (or one nested in it) belongs to, from its ancestors."""
        while e is not None:
            if e.name.startswith('Optimizer.'):
                return 'optimizer update'
            if e.name == 'loss':
                return 'loss (fwd + grad)'
            if e.name in _TORCH_FORWARD:
                return _TORCH_FORWARD[e.name]
            e = e.cpu_parent
        return None

    # Backward nodes carry the sequence number of the forward operator that made them.
    seq_part: dict[int, str] = {}
    for e in events:
        if e.sequence_nr >= 0 and not e.name.startswith('autograd::'):
            part = forward_part(e)
            if part and e.sequence_nr not in seq_part:
                seq_part[e.sequence_nr] = part

    def part_of(e: Any) -> str:
        if e.name in _TORCH_COPIES:
            return 'copies, casts, layout changes'
        node = e
        while node is not None:
            if node.name.startswith('autograd::engine::evaluate_function'):
                part = seq_part.get(node.sequence_nr)
                if part == 'convolution forward':
                    return 'convolution gradients (input + weight)'
                if 'AccumulateGrad' in node.name:
                    return 'optimizer update'
                return part or 'BatchNorm, ReLU, adds, pooling'
            node = node.cpu_parent
        return forward_part(e) or ('BatchNorm, ReLU, adds, pooling' if e.name.startswith('aten::')
                                   else 'other')

    parts: dict[str, float] = collections.defaultdict(float)
    for e in events:
        parts[part_of(e)] += e.self_cpu_time_total / 1e3 / steps
    return {'wall_ms': 1e3 * statistics.median(walls), 'parts': dict(parts)}


# ---------------------------------------------------------------------------------------------
# Driver

def _worker(worker: str, case: str, steps: int) -> dict[str, Any]:
    return run_worker('bench/step_profile.py', ['--worker', worker, '--case', case,
                                                '--steps', str(steps)], f'{worker} {case}')


def table(case: str, columns: dict[str, dict[str, Any]]) -> str:
    """Markdown table: one row per part, ms and % of the wall time per column."""
    names = list(columns)
    lines = [f'{case}: ms per step (% of the step\'s wall time)',
             '| part | ' + ' | '.join(names) + ' |', '|---' * (len(names) + 1) + '|']
    for part in PARTS:
        if not any(abs(col['parts'].get(part, 0.0)) >= 0.05 for col in columns.values()):
            continue
        cells = []
        for col in columns.values():
            v = col['parts'].get(part)
            cells.append('-' if v is None else f'{v:.0f} ({100 * v / col["wall_ms"]:.0f} %)')
        lines.append(f'| {part} | ' + ' | '.join(cells) + ' |')
    lines.append('| sum of operations | ' + ' | '.join(
        f'{sum(c["parts"].values()):.0f}' for c in columns.values()) + ' |')
    lines.append('| not in any operation | ' + ' | '.join(
        f'{max(0.0, c["wall_ms"] - sum(c["parts"].values())):.0f}' for c in columns.values())
        + ' |')
    lines.append('| step wall time (median) | ' + ' | '.join(
        f'{c["wall_ms"]:.0f}' for c in columns.values()) + ' |')
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--case', default='train_b4_256_f32')
    parser.add_argument('--impls', default='onednn', help='model.conv_impl values to profile')
    parser.add_argument('--no-torch', action='store_true')
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--json', help='write {column: {wall_ms, parts}} to this file')
    parser.add_argument('--top', type=int, default=0,
                        help='also list the N most expensive JAX instructions with their part')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args()
    parse_case(args.case)
    if args.worker:
        result = (torch_profile(args.case, args.steps) if args.worker == 'torch'
                  else jax_profile(args.case, args.worker[4:], args.steps))
        print(json.dumps(result), flush=True)
        return
    columns = {f'JAX {impl}': _worker(f'jax:{impl}', args.case, args.steps)
               for impl in args.impls.split(',') if impl}
    if not args.no_torch:
        columns['PyTorch'] = _worker('torch', args.case, args.steps)
    print(table(args.case, columns), flush=True)
    for name, col in columns.items():
        if args.top and 'top' in col:
            print(f'\n{name}: the {args.top} most expensive instructions (ms per step)')
            for part, ins, ms in col['top'][:args.top]:
                print(f'{ms:8.1f}  {part:40s} {ins}')
    if args.json:
        Path(args.json).write_text(json.dumps(columns, indent=1))


if __name__ == '__main__':
    main()
