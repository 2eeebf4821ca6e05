"""Cross-dataset results tables: a finished run of another table scored on a dataset it never saw.

  python experiments/results.py drive_on_chase_db1 --data /data/CHASE_DB1 [--run WORKDIR]
  python experiments/results.py drive_on_stare     --data /data/STARE     [--run WORKDIR]

Nothing is trained. The run (by default the `drive` table's workdir under --runs, which
results.py finds; it must be finished: `python experiments/results.py drive --data DRIVE`) is
scored with the real eval.py, `--config.data.name=<dataset> --config.data.root=<--data>`, its
last checkpoint, with and without 8-fold TTA. eval.py's dataset switch takes the set's presets:
the whole set is the test split (no official split), the FOV is derived from each image (neither
set ships FOV masks), CHASE_DB1's first observer / STARE's Hoover labels (`--annotator 2`: the
second observer / Kouznetsova). The report, `<out>/<table>.{json,md}` beside the DRIVE one, says
which images and which FOV were scored, the commit the run trained at and the eval commands, and
sets the run's own DRIVE test scores beside the new ones.
"""
from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import provenance
import runner_common   # run_logged through the module: the tests replace it there
from runner_common import (METRIC_NAMES, PAPER_NOTE as RUN_PAPER_NOTE, checkpoint_steps, copy_pngs, format_value,
                           read_scores, run_config_summary, std_words)


@dataclasses.dataclass(frozen=True)
class CrossTable:
    """A finished run of `source_table` scored on dataset `dataset` (a `data.name`)."""
    title: str
    dataset: str
    label: str
    source_table: str = 'drive'
    tta: tuple[str, ...] = ('d8', 'none')


CROSS_TABLES = {
    'drive_on_chase_db1': CrossTable('DRIVE model on CHASE_DB1 (cross-dataset)', 'chase_db1', 'CHASE_DB1'),
    'drive_on_stare': CrossTable('DRIVE model on STARE (cross-dataset)', 'stare', 'STARE'),
}
PAPER_NOTE = 'The CE-Net paper reports no CHASE_DB1 or STARE numbers.'
OWN_NOTE = 'The DRIVE rows are the same model on its own test split (scored by the `{}` table).'


def eval_command(workdir: Path, table: CrossTable, data: str, tta: str, annotator: int = 1) -> list[str]:
    """eval.py on the run's last checkpoint, switched to the table's dataset."""
    command = [sys.executable, 'eval.py', f'--workdir={workdir}', '--checkpoint=latest', f'--tta={tta}',
               f'--output_dir={output_dir(workdir, table, tta, annotator)}',
               f'--config.data.name={table.dataset}', f'--config.data.root={data}']
    if annotator != 1:
        command.append(f'--config.data.annotator={annotator}')
    return command + ([] if tta == 'd8' else ['--config.eval.figures=False'])


def output_dir(workdir: Path, table: CrossTable, tta: str, annotator: int = 1) -> Path:
    """Where eval.py writes the scores of the run on the table's dataset (inside the run)."""
    observer = '' if annotator == 1 else f'_annotator{annotator}'
    return workdir / 'eval' / f'{table.dataset}{observer}_{tta}'


def read_scored(metrics_path: Path) -> dict[str, Any]:
    """`read_scores` plus what eval.py says was scored (split source, FOV, provenance)."""
    scored = read_scores(metrics_path)
    settings = json.loads(metrics_path.read_text()).get('settings', {})
    scored['provenance'] = settings.get('provenance', [])
    return scored


def run_cross(name: str, data: str, out: Path, run: Path, fresh: bool, argv: Sequence[str],
              annotator: int = 1) -> dict[str, Any]:
    """Score `run` on the table's dataset; write <out>/<report>.json and .md (report = `name`, with
    `_annotator2` for the second observer); the result."""
    table = CROSS_TABLES[name]
    report = report_name(name, annotator)
    if not checkpoint_steps(run):
        raise SystemExit(f'error: {run} holds no finished run; train it first with '
                         f'`python experiments/results.py {table.source_table} --data ...` or pass --run WORKDIR')
    commit, diff, start = provenance.git_commit(), provenance.git_diff(), time.perf_counter()
    evals, seconds, commands = {}, {}, {}
    for tta in table.tta:
        metrics = output_dir(run, table, tta, annotator) / 'metrics.json'
        command = eval_command(run, table, data, tta, annotator)
        commands[tta] = shlex.join(command)
        if fresh or not metrics.exists():
            seconds[tta] = runner_common.run_logged(command, run / 'results_log.txt')
        evals[tta] = read_scored(metrics)
    own = {tta: read_scores(run / 'eval' / f'test_{tta}' / 'metrics.json') for tta in table.tta
           if (run / 'eval' / f'test_{tta}' / 'metrics.json').exists()}
    out.mkdir(parents=True, exist_ok=True)
    result = {'table': name, 'title': table.title, 'command': shlex.join(['python', *argv]),
              'git_commit': commit, 'git_diff': provenance.save_diff(diff, out), 'hardware': provenance.hardware(),
              'workdir': str(run), 'data': data, 'annotator': annotator, 'finished': provenance.now(),
              'wall_minutes': (time.perf_counter() - start) / 60, 'eval_seconds': seconds,
              'eval_commands': commands, 'trained_at': provenance.trained_at(run),
              'config': run_config_summary(run), 'evals': evals, 'own': own, 'figures': []}
    provenance.copy_diffs([{'workdir': str(run), 'trained_at': result['trained_at']}], out)
    figures = sorted((output_dir(run, table, table.tta[0], annotator) / 'figures').glob('*.png'))[:2]
    result['figures'] = copy_pngs(figures, out, report)
    (out / f'{report}.json').write_text(json.dumps(result, indent=2) + '\n')
    text = markdown(table, result)
    (out / f'{report}.md').write_text(text)
    print(text, flush=True)
    return result


def markdown(table: CrossTable, result: dict[str, Any]) -> str:
    """The report: provenance (what was scored), our rows on the new set and on DRIVE's test split."""
    first = result['evals'][table.tta[0]]
    metrics = [m for m in ('sen', 'acc', 'auc') if m in first['scores']]
    head = ['scored on', 'images', 'TTA'] + [METRIC_NAMES[m] for m in metrics] + ['AUC (pooled pixels)']
    hw = result['hardware']
    lines = [f'### {table.title}', '',
             f'- command: `{result["command"]}`',
             f'- git commit: {provenance.commit_words(result["git_commit"], result.get("git_diff", ""))}; '
             f'finished {result["finished"]}',
             f'- hardware: {hw["cpu"]}, {hw["cores"]} cores, {hw["memory_gb"]} GiB; jax {hw["jax"]}, '
             f'flax {hw["flax"]}; wall time {result["wall_minutes"]:.1f} min',
             f'- model: the last checkpoint of `{result["workdir"]}` (the `{table.source_table}` table\'s run; '
             f'recipe: {json.dumps(result["config"])}); trained at '
             f'{provenance.training_words(result.get("trained_at") or [])}',
             *[f'- eval command ({tta}): `{command}`' for tta, command in (result.get('eval_commands') or {}).items()],
             *[f'- {line}' for line in first.get('provenance', [])], '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    rows = [(table.label, tta, result['evals'][tta]) for tta in table.tta]
    rows += [(f'DRIVE test ({table.source_table} table)', tta, scored) for tta, scored in result['own'].items()]
    for label, tta, scored in rows:
        cells = [label, str(scored['num_images']), tta]
        cells += [format_value(scored['scores'][m]['mean'], scored['scores'][m]['std'])
                  if m in scored['scores'] else 'n/a' for m in metrics]
        cells.append(format_value(scored['pooled'].get('auc')))
        lines.append('| ' + ' | '.join(cells) + ' |')
    own = f' {OWN_NOTE.format(table.source_table)}' if result['own'] else ''
    std = std_words([scored for _, _, scored in rows])
    lines += ['', f'Per-image mean ± {std}. {PAPER_NOTE}{own} {RUN_PAPER_NOTE}']
    if result.get('figures'):
        lines += [''] + [f'![{f}]({f})' for f in result['figures']]
    return '\n'.join(lines) + '\n'


def report_name(name: str, annotator: int = 1) -> str:
    """File name (no suffix) of a cross-dataset report: the table, and the observer if not the first."""
    return name if annotator == 1 else f'{name}_annotator{annotator}'


def rewrite_report(name: str, out: Path, annotator: int = 1) -> None:
    """<out>/<report>.md again from <out>/<report>.json."""
    path = out / f'{report_name(name, annotator)}.json'
    if not path.exists():
        raise SystemExit(f'error: {path} not found; run the table first (without --report-only)')
    text = markdown(CROSS_TABLES[name], json.loads(path.read_text()))
    path.with_suffix('.md').write_text(text)
    print(text)
