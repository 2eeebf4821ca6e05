"""Cross-dataset results tables: finished runs of another table, one per seed, scored on a dataset
they never saw, and the mean ± std over the seeds.

  python experiments/results.py drive_on_chase_db1 --data /data/CHASE_DB1 [--run WORKDIR ...]
  python experiments/results.py drive_on_stare     --data /data/STARE     [--run WORKDIR ...]
  python experiments/results.py drishti_on_folder  --data /data/ONH_CROPS [--class-values 255,128,0]

Nothing is trained. The runs (by default the source table's CE-Net runs at seeds 0, 1 and 2 under
--runs: the `ablation` table's for the vessel sets, the `drishti` table's for the disc; they must
be finished, e.g. `python experiments/results.py ablation --data DRIVE`) are each scored with the
real eval.py, `--config.data.name=<dataset> --config.data.root=<--data>`, their last checkpoint,
with and without 8-fold TTA. One run says little on a new set (issue 26: two trainings of one
DRIVE recipe at one seed scored Sen 0.87 and 0.75 on the same 28-image vessel set), so the report
leads with the mean ± sample std over the seeds of each run's per-image mean, then each seed's row.

eval.py's dataset switch takes the set's presets: the whole set is the test split (no official
split); CHASE_DB1 and STARE: the FOV derived from each image (neither ships FOV masks), the first
observer / Hoover labels (`--annotator 2`: the second / Kouznetsova); `drishti_on_folder`: a
`folder` set (images/ + masks/) of images already cropped around the optic disc, scored as they
are (no disc crop, the log and the report say so), masks holding class ids 0 / 1 / 2 (background,
rim, cup) or, with `--class-values 255,128,0`, those raw values in that order (REFUGE's). The
report, `<out>/<table>.{json,md}`, says which images and which FOV were scored, the commit each
run trained at and the eval commands, and sets the runs' own test scores beside the new ones.
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
import seed_stats
from runner_common import (METRIC_NAMES, PAPER_NOTE as RUN_PAPER_NOTE, checkpoint_steps, copy_pngs, format_value,
                           read_scores, run_config_summary, std_words)


@dataclasses.dataclass(frozen=True)
class CrossTable:
    """The `source_label` runs of `source_table` (one per seed) scored on dataset `dataset` (a
    `data.name`), named `label` in the report; `metrics` are the per-image means shown."""
    title: str
    dataset: str
    label: str
    source_table: str = 'ablation'
    source_label: str = 'CE-Net'
    own_label: str = 'DRIVE test'
    metrics: tuple[str, ...] = ('sen', 'acc', 'auc')
    pooled_auc: bool = True   # also the AUC over all pixels of the set pooled
    tta: tuple[str, ...] = ('d8', 'none')
    paper_note: str = 'The CE-Net paper reports no CHASE_DB1 or STARE numbers.'


CROSS_TABLES = {
    'drive_on_chase_db1': CrossTable('DRIVE CE-Net on CHASE_DB1 (cross-dataset), 3 seeds', 'chase_db1', 'CHASE_DB1'),
    'drive_on_stare': CrossTable('DRIVE CE-Net on STARE (cross-dataset), 3 seeds', 'stare', 'STARE'),
    'drishti_on_folder': CrossTable(
        'Drishti-GS1 CE-Net on images already cropped around the optic disc (cross-dataset, no disc crop), 3 seeds',
        'folder', 'ONH crops', source_table='drishti', own_label='Drishti-GS1 test',
        metrics=('E_disc', 'dice_disc', 'E_cup', 'dice_cup'), pooled_auc=False,
        paper_note='The CE-Net paper reports no optic-cup numbers and none on this set.'),
}
OWN_NOTE = 'The "{}" rows are the same runs on their own test split (scored by the `{}` table).'


def eval_command(workdir: Path, table: CrossTable, data: str, tta: str, annotator: int = 1,
                 class_values: Sequence[int] = ()) -> list[str]:
    """eval.py on the run's last checkpoint, switched to the table's dataset."""
    command = [sys.executable, 'eval.py', f'--workdir={workdir}', '--checkpoint=latest', f'--tta={tta}',
               f'--output_dir={output_dir(workdir, table, tta, annotator)}',
               f'--config.data.name={table.dataset}', f'--config.data.root={data}']
    if annotator != 1:
        command.append(f'--config.data.annotator={annotator}')
    if class_values:
        command.append(f'--config.data.class_values={tuple(int(v) for v in class_values)}')
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


def check_finished(runs: Sequence[Path], table: CrossTable) -> None:
    """SystemExit naming the runs that hold no checkpoint, and how to train them."""
    unfinished = [str(run) for run in runs if not checkpoint_steps(run)]
    if unfinished:
        verb = 'holds' if len(unfinished) == 1 else 'hold'
        raise SystemExit(f'error: {", ".join(unfinished)} {verb} no finished run; train the '
                         f'{table.source_label} runs first with `python experiments/results.py {table.source_table} '
                         f'--data ...` or pass --run WORKDIR (once per run)')


def score_run(run: Path, table: CrossTable, data: str, fresh: bool, annotator: int,
              class_values: Sequence[int]) -> dict[str, Any]:
    """One run scored on the table's dataset (eval.py, unless scored already and not `fresh`),
    with its own test scores, recipe, training commit and eval commands: a report row."""
    evals, seconds, commands = {}, {}, {}
    for tta in table.tta:
        metrics = output_dir(run, table, tta, annotator) / 'metrics.json'
        command = eval_command(run, table, data, tta, annotator, class_values)
        commands[tta] = shlex.join(command)
        if fresh or not metrics.exists():
            seconds[tta] = runner_common.run_logged(command, run / 'results_log.txt')
        evals[tta] = read_scored(metrics)
    own = {tta: read_scores(run / 'eval' / f'test_{tta}' / 'metrics.json') for tta in table.tta
           if (run / 'eval' / f'test_{tta}' / 'metrics.json').exists()}
    config = run_config_summary(run)
    return {'label': table.source_label, 'seed': config['seed'], 'workdir': str(run), 'config': config,
            'trained_at': provenance.trained_at(run), 'evals': evals, 'own': own, 'eval_seconds': seconds,
            'eval_commands': commands}


def over_seeds(rows: Sequence[dict[str, Any]], table: CrossTable, field: str) -> dict[str, Any]:
    """{tta: {metric: mean, sample std (None for one seed) and values over the runs}} of each run's
    per-image mean in `field` ('evals': the new set; 'own': the runs' own test split)."""
    summary = {}
    for tta in table.tta:
        scored = [{**row, 'evals': row[field]} for row in rows if tta in row[field]]
        if not scored:
            continue
        entry = seed_stats.seed_summary(scored, tta, table.metrics)[0]
        pooled = [r['evals'][tta]['pooled'].get('auc') for r in scored]
        if table.pooled_auc and None not in pooled:
            entry['metrics']['pooled_auc'] = seed_stats.mean_std(pooled)
        entry['num_images'] = sorted({r['evals'][tta]['num_images'] for r in scored})
        summary[tta] = entry
    return summary


def run_cross(name: str, data: str, out: Path, runs: Sequence[Path], fresh: bool, argv: Sequence[str],
              annotator: int = 1, class_values: Sequence[int] = ()) -> dict[str, Any]:
    """Score every run of `runs` on the table's dataset; write <out>/<report>.json and .md (report =
    `name`, with `_annotator2` for the second observer); the result."""
    table = CROSS_TABLES[name]
    report = report_name(name, annotator)
    check_finished(runs, table)
    commit, diff, start = provenance.git_commit(), provenance.git_diff(), time.perf_counter()
    rows = [score_run(run, table, data, fresh, annotator, class_values) for run in runs]
    out.mkdir(parents=True, exist_ok=True)
    result = {'table': name, 'title': table.title, 'command': shlex.join(['python', *argv]),
              'git_commit': commit, 'git_diff': provenance.save_diff(diff, out), 'hardware': provenance.hardware(),
              'data': data, 'annotator': annotator, 'class_values': list(class_values), 'finished': provenance.now(),
              'wall_minutes': (time.perf_counter() - start) / 60, 'rows': rows,
              'over_seeds': over_seeds(rows, table, 'evals'), 'own_over_seeds': over_seeds(rows, table, 'own')}
    provenance.copy_diffs(rows, out)
    figures = sorted((output_dir(runs[0], table, table.tta[0], annotator) / 'figures').glob('*.png'))[:2]
    result['figures'] = copy_pngs(figures, out, report)
    (out / f'{report}.json').write_text(json.dumps(result, indent=2) + '\n')
    text = markdown(table, result)
    (out / f'{report}.md').write_text(text)
    print(text, flush=True)
    return result


def _mean_std(entry: dict[str, Any], metric: str) -> str:
    m = entry['metrics'].get(metric)
    return 'n/a' if m is None else format_value(m['mean'], m['std'])


def markdown(table: CrossTable, result: dict[str, Any]) -> str:
    """The report: provenance (what was scored, each run's training commit and eval commands), the
    mean ± std over seeds on the new set and on the runs' own test split, then each seed's row."""
    rows = result['rows']
    metrics = list(table.metrics)
    names = [METRIC_NAMES[m] for m in metrics] + (['AUC (pooled pixels)'] if table.pooled_auc else [])
    hw = result['hardware']
    first = rows[0]['evals'][table.tta[0]]
    lines = [f'### {table.title}', '',
             f'- command: `{result["command"]}`',
             f'- git commit: {provenance.commit_words(result["git_commit"], result.get("git_diff", ""))}; '
             f'finished {result["finished"]}',
             f'- hardware: {hw["cpu"]}, {hw["cores"]} cores, {hw["memory_gb"]} GiB; jax {hw["jax"]}, '
             f'flax {hw["flax"]}; wall time {result["wall_minutes"]:.1f} min',
             f'- models: the last checkpoints of the `{table.source_table}` table\'s {table.source_label} runs, seeds '
             f'{", ".join(str(r["seed"]) for r in rows)} (recipe of the first: {json.dumps(rows[0]["config"])})',
             *[f'- {line}' for line in first.get('provenance', [])], '',
             '#### Mean ± std over seeds', '',
             '| scored on | TTA | seeds | images | ' + ' | '.join(names) + ' |', '|' + '---|' * (len(names) + 4)]
    own_label = f'{table.own_label} ({table.source_table} table)'
    for label, summary in ((table.label, result['over_seeds']), (own_label, result.get('own_over_seeds') or {})):
        for tta, entry in summary.items():
            cells = [label, tta, ','.join(map(str, entry['seeds'])), '/'.join(map(str, entry['num_images']))]
            cells += [_mean_std(entry, m) for m in metrics] + (
                [_mean_std(entry, 'pooled_auc')] if table.pooled_auc else [])
            lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', 'Mean ± sample std (n - 1) over seeds of each run\'s per-image mean.', '',
              '#### Each seed', '',
              '| seed | scored on | TTA | images | ' + ' | '.join(names) + ' |', '|' + '---|' * (len(names) + 4)]
    per_image = []
    for row in rows:
        for label, scores in ((table.label, row['evals']), (own_label, row['own'])):
            for tta, scored in scores.items():
                per_image.append(scored)
                cells = [str(row['seed']), label, tta, str(scored['num_images'])]
                cells += [format_value(scored['scores'][m]['mean'], scored['scores'][m]['std'])
                          if m in scored['scores'] else 'n/a' for m in metrics]
                if table.pooled_auc:
                    cells.append(format_value(scored['pooled'].get('auc')))
                lines.append('| ' + ' | '.join(cells) + ' |')
    own = f' {OWN_NOTE.format(own_label, table.source_table)}' if any(r['own'] for r in rows) else ''
    lines += ['', f'Per seed: per-image mean ± {std_words(per_image)}. {table.paper_note}{own} {RUN_PAPER_NOTE}',
              '', *provenance.run_lines(rows)]
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
