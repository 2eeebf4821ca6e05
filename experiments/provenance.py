"""Where the numbers of a results report come from: the code (commit, and the uncommitted edits
as a saved diff) each run trained at and each report was written at, the commands that trained,
scored and chose a threshold for each run, and the machine.

A run's training is recorded in its workdir when train.py starts (`TRAINED_AT`, one entry per
start: an interrupted run resumed later has two), with the diff of a dirty tree beside it, and
read back for every report that uses the run. Runs trained before the runner recorded this get
it, where possible, from an earlier report in the same folder that trained them.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
from pathlib import Path
from typing import Any, Sequence

from cenet_jax.ops import onednn_loader

ROOT = Path(__file__).resolve().parent.parent
# Edits under docs/ (the reports, which running tables rewrite, and the pages that quote them)
# do not change a number, so they neither mark the tree dirty nor enter the saved diff.
CODE = ['--', '.', ':(exclude)docs']
TRAINED_AT = 'results_trained_at.json'
DIFFS = 'diffs'   # folder of saved diffs, named by their content's hash, in a workdir and beside reports

Row = dict[str, Any]


def _git(*args: str) -> str:
    return subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True).stdout


def git_commit() -> str:
    """HEAD's hash, with '+dirty' when tracked files outside docs/ differ from it."""
    head = _git('rev-parse', 'HEAD').strip()
    dirty = _git('status', '--porcelain', '--untracked-files=no', *CODE).strip()
    return (head or 'unknown') + ('+dirty' if dirty else '')


def git_diff() -> str:
    """The uncommitted edits of tracked files outside docs/ ('' for a clean tree)."""
    return _git('diff', 'HEAD', *CODE)


def save_diff(diff: str, folder: Path) -> str:
    """Write `diff` to <folder>/diffs/<hash>.diff (once per content); its path relative to
    `folder` ('' for no diff)."""
    if not diff:
        return ''
    name = f'{DIFFS}/{hashlib.sha256(diff.encode()).hexdigest()[:12]}.diff'
    target = folder / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(diff)
    return name


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')


def record_training(workdir: Path, command: Sequence[str], from_step: int) -> dict[str, Any]:
    """Append this start of train.py to the workdir's record: the commit, the saved diff of a
    dirty tree, the time, the step it starts from, the command and the oneDNN thread count it
    inherits (one thread and two are two different runs: docs/results/drive_threads.md); the entry."""
    entry = {'commit': git_commit(), 'diff': save_diff(git_diff(), workdir), 'started': now(),
             'from_step': from_step, 'command': shlex.join(command), 'onednn_threads': onednn_loader.num_threads(),
             'source': 'recorded in the workdir'}
    path = workdir / TRAINED_AT
    path.write_text(json.dumps(trained_at(workdir) + [entry], indent=1) + '\n')
    return entry


def trained_at(workdir: Path) -> list[dict[str, Any]]:
    """The workdir's record of train.py's starts (empty for runs trained before it was kept)."""
    path = workdir / TRAINED_AT
    return json.loads(path.read_text()) if path.exists() else []


def trainings_in_reports(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Workdir name -> its training record, from the reports in `out`: the record a report row
    carries, else the commit of the report whose invocation trained the run (not reused)."""
    known: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(out.glob('*.json')):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rows = report.get('rows') if isinstance(report, dict) else None
        for row in rows or ():
            name = Path(row.get('workdir') or '').name
            if not name or name in known:
                continue
            if row.get('trained_at'):
                known[name] = row['trained_at']
            elif row.get('reused') is False:
                known[name] = [{'commit': report.get('git_commit', 'unknown'), 'diff': '', 'from_step': None,
                                'started': None, 'source': f'from {path.name}: its invocation, finished '
                                f'{report.get("finished")}, trained the run or resumed it to the end; the runner '
                                'did not record training commits then'}]
    return known


def with_trainings(row: Row, known: dict[str, list[dict[str, Any]]]) -> Row:
    """`row` with its training record: its own, else what `known` (trainings_in_reports) says."""
    return {**row, 'trained_at': row.get('trained_at') or known.get(Path(row.get('workdir') or '').name, [])}


def copy_diffs(rows: Sequence[Row], out: Path) -> None:
    """Copy the saved diff of each dirty training from its workdir to <out>/diffs (same name)."""
    for row in rows:
        for entry in row.get('trained_at') or ():
            source = Path(row['workdir']) / entry['diff'] if entry.get('diff') else None
            if source is not None and source.exists():
                save_diff(source.read_text(), out)


def hardware() -> dict[str, Any]:
    """CPU model, core count, memory, and the versions that produce the numbers."""
    cpu = platform.processor()
    try:
        cpu = next(line.split(':', 1)[1].strip() for line in Path('/proc/cpuinfo').read_text().splitlines()
                   if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    memory_gb = None
    try:
        memory_gb = round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30, 1)
    except (ValueError, OSError):
        pass
    versions = {name: importlib.metadata.version(name) for name in ('jax', 'jaxlib', 'flax', 'optax')}
    return {'cpu': cpu, 'cores': os.cpu_count(), 'memory_gb': memory_gb, 'python': platform.python_version(),
            **versions}


def commit_words(commit: str, diff: str = '') -> str:
    """'`abc…`', with a link to the saved diff when the tree was dirty."""
    return f'`{commit}`' + (f' (uncommitted edits: [{diff}]({diff}))' if diff else '')


def training_words(entries: Sequence[dict[str, Any]]) -> str:
    """The commit(s) a run trained at, in words."""
    if not entries:
        return 'not recorded (trained before the runner recorded training commits, and no report here says)'
    parts = []
    for entry in entries:
        start = '' if entry.get('from_step') is None else f' from step {entry["from_step"]}'
        when = f' on {entry["started"]}' if entry.get('started') else ''
        threads = (f', oneDNN: {onednn_loader.threads_words(entry["onednn_threads"])}'
                   if entry.get('onednn_threads') else '')
        parts.append(f'{commit_words(entry["commit"], entry.get("diff", ""))}{start}{when}{threads}'
                     + ('' if entry.get('source') == 'recorded in the workdir' else f' ({entry["source"]})'))
    return '; then '.join(parts)


def run_lines(rows: Sequence[Row]) -> list[str]:
    """Markdown: per run, the commit it trained at and the commands that trained and scored it."""
    runs = [r for r in rows if r.get('workdir')]
    if not runs:
        return []
    lines = ['Provenance of each run (trained at: the commit train.py started from, recorded in the run\'s '
             'workdir; the commands that trained it, scored it and chose its threshold):', '']
    for row in runs:
        lines.append(f'- {row["label"]} (seed {row["seed"]}): trained at: '
                     f'{training_words(row.get("trained_at") or [])}')
        commands = [('train', row.get('train_command'))]
        commands += [(f'eval ({key})', command) for key, command in (row.get('eval_commands') or {}).items()]
        if row.get('threshold_command'):
            commands.append(('threshold', row['threshold_command']))
        lines += [f'  - {what}: `{command}`' for what, command in commands if command]
    return lines
