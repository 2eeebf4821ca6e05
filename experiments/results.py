"""One command per results table: train, score the last checkpoint with eval.py (8-fold TTA and
without), and write the numbers beside the paper's with the exact command, git commit, config,
wall time and hardware.

  python experiments/results.py drive    --data ../shared/datasets/DRIVE
  python experiments/results.py isbi     --data ../shared/datasets/ISBI2012_EM [--folds 5]
  python experiments/results.py ablation --data ../shared/datasets/DRIVE [--spread-seeds 3,4]
  python experiments/results.py levers   --data ../shared/datasets/DRIVE   (recipe choices, on held-out
                                                                            training images)
  python experiments/results.py paper_level --data ../shared/datasets/DRIVE   (the levers' choice,
                                                                            scored on the test images)
  python experiments/results.py paper_level_seeds --data ../shared/datasets/DRIVE   (its CE-Net
                                                                            recipe at 3 seeds)
  python experiments/results.py repro    --data ../shared/datasets/DRIVE
  python experiments/results.py precision --data ../shared/datasets/DRIVE   (float32 vs bfloat16)
  python experiments/results.py drive_on_chase_db1 --data /data/CHASE_DB1   (score the ablation's
  python experiments/results.py drive_on_stare     --data /data/STARE        CE-Net seeds; see
  python experiments/results.py drishti_on_folder  --data /data/ONH_CROPS    cross_dataset.py; the
                                                                            drishti table's seeds)

Every run goes through the real `train.py` and `eval.py` (one process each). Training never sees
the test split (the CPU configs train on all training images with validation off), and the
*last* checkpoint is scored. Tables with seeds add the mean ± std over seeds and the paired
per-seed comparison (seed_stats.py); tables with `threshold_split` also score at the accuracy
threshold chosen on training or validation images (threshold.py). A run's workdir is named after what defines it (config, variant,
seed, steps, overrides), so tables that share a run share its workdir, and an interrupted table
resumes where it stopped: finished runs are neither retrained nor rescored (`--fresh` retrains).
Results go to --out (default docs/results):
`<table>.json`, `<table>.md`, training curves and a few prediction figures as PNGs. Each report
records, per run, the commit it trained at (recorded in its workdir when train.py starts) and the
train, eval and threshold commands; uncommitted edits (of the runs and of the invocation) are
saved as diffs beside the report (provenance.py). Spreads are sample std (n - 1) throughout.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cenet_jax import figures  # noqa: E402  (after the path set-up, like bench/)
from cenet_jax.evaluation.tasks import TASKS  # noqa: E402
from cenet_jax.logging import read_metrics  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cross_dataset  # noqa: E402  (experiments/ is not a package)
import paper_gap  # noqa: E402
import per_image  # noqa: E402
import provenance  # noqa: E402
import run_facts  # noqa: E402
import seed_stats  # noqa: E402
from runner_common import (DATA_COLUMNS, LOWER_IS_BETTER, METRIC_NAMES, PAPER_NOTE,  # noqa: E402
                           checkpoint_steps, copy_pngs, format_value, minutes_cell, read_scores, run_config_summary,
                           run_logged, std_words)


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run of a table: a row label, the config's variant, seed and extra overrides."""
    label: str
    variant: str = 'cenet'
    seed: int = 0
    overrides: tuple[str, ...] = ()
    repeat: int = 0          # > 0: a separate workdir for the same run (reproducibility check)
    steps: int = 0           # > 0: this run's num_train_steps (over the table's)


@dataclasses.dataclass(frozen=True)
class Table:
    """A results table: its config, runs, the TTA modes scored and the paper rows shown beside."""
    title: str
    config: str
    runs: tuple[Run, ...]
    tta: tuple[str, ...] = ('d8', 'none')
    steps: int = 0           # > 0: overrides the config's num_train_steps for every run
    paper_rows: tuple[str, ...] = ()
    paper_table: tuple[str, str] = ('vessel', 'DRIVE')   # (task, paper key) of evaluation.tasks.TASKS
    versus_paper: str = ''   # a paper row every run is set against metric by metric (ours - paper)
    split: str = 'test'      # the split eval.py scores ('val': runs trained with data.val_fraction > 0)
    threshold_split: str = ''   # 'train' / 'val': also score at the accuracy threshold chosen there
    per_image_changes: bool = False   # report each run's change per image against the first run


# Run order: the comparisons the ablation is about first (CE-Net against Backbone and U-Net).
ABLATION_VARIANTS = (('CE-Net', 'cenet'), ('Backbone', 'backbone'), ('U-Net', 'unet'),
                     ('Backbone+DAC', 'backbone_dac'), ('Backbone+RMP', 'backbone_rmp'))
ABLATION_SEEDS = (0, 1, 2)   # seed-major: every variant at seed 0 first, so pairs grow seed by seed
SHORT_BUDGET = 300           # steps of every repro run
# Equal wall time: a U-Net step costs 2.4x a CE-Net step on this CPU (bf16, seed 0, 1000 steps:
# 812 s against 335 s of training), so U-Net trained for CE-Net's 1000-step time gets 410 steps
# (its warmup and poly decay run over those 410).
UNET_EQUAL_WALL_STEPS = 410
# bf16 compute with float32 parameters, optimizer state, BatchNorm statistics and loss: 2x faster
# on this CPU and within 0.003 AUC of float32 on DRIVE (the 'precision' table).
BF16 = ('model.dtype=bfloat16',)
# The recipe levers are chosen on 4 of the 20 DRIVE training images (a seeded 20 % holdout); the
# model trains on the other 16, and the accuracy threshold is chosen on those 16.
LEVER_BASE = BF16 + ('data.val_fraction=0.2',)
# The levers that each raised CE-Net's held-out AUC on their own (lr 2e-3, 768 px, 3000 steps; the
# loss and 256 px patches did not), validated together as the last lever run and then trained on
# all 20 training images for the test images in the paper_level table.
LR_2E3, RES_768 = ('optim.lr=0.002',), ('data.image_size=(768, 768)',)
CHOSEN_LEVERS = LR_2E3 + RES_768
CHOSEN_STEPS = 3000
CHOSEN_CENET = Run('CE-Net, the chosen levers: lr 2e-3, 768 px, 3000 steps', overrides=BF16 + CHOSEN_LEVERS,
                   steps=CHOSEN_STEPS)
LEVERS = (Run('CPU recipe: Dice + CE, 1000 steps, 192 px patches of 576 px, lr 1e-3', overrides=LEVER_BASE),
          Run('architecture: U-Net', 'unet', overrides=LEVER_BASE),
          Run('loss: Dice (the paper\'s)', overrides=LEVER_BASE + ('loss.kind=dice',)),
          Run('loss: cross-entropy', overrides=LEVER_BASE + ('loss.kind=ce',)),
          Run('lr 2e-3', overrides=LEVER_BASE + LR_2E3),
          Run('resolution 768 px (patches 192)', overrides=LEVER_BASE + RES_768),
          Run('patches 256 px', overrides=LEVER_BASE + ('data.crop_size=(256, 256)',)),
          Run('3000 steps', overrides=LEVER_BASE, steps=CHOSEN_STEPS),
          Run('combined: lr 2e-3, 768 px, 3000 steps', overrides=LEVER_BASE + CHOSEN_LEVERS, steps=CHOSEN_STEPS))

# Drishti-GS1 optic disc and cup: the CPU recipe on the 800 px disc crop at 256 px, bf16. The
# recipe is chosen on 10 of the 50 training images (a seeded 20 % holdout; `disc_levers`, from the
# paper's 100 epochs: 625 steps of 8 of the 50 images), never on the 51 test images. Chosen there:
# 1250 steps (200 epochs), the one lever that brought the CDR error under 0.08 (0.063 against
# 0.107) with disc Dice better on 9 of the 10 images; 384 px, the Dice loss alone and U-Net did not.
DISC_CONFIG = 'configs/drishti_cpu.py'
DISC_LEVER_STEPS = 625   # the levers' starting point: 100 epochs
DISC_STEPS = 2 * DISC_LEVER_STEPS   # the chosen recipe: 200 epochs
DISC_VARIANTS = ABLATION_VARIANTS[:3]   # CE-Net, Backbone, U-Net
DISC_PAPER_ROWS = ('U-Net', 'M-Net', 'DeepDisc', 'CE-Net')
DISC_LEVERS = (Run('CPU recipe: Dice + CE, 256 px of the 800 px crop, lr 1e-3, 625 steps (100 epochs)',
                   overrides=LEVER_BASE),
               Run('architecture: U-Net', 'unet', overrides=LEVER_BASE),
               Run('loss: Dice (the paper\'s)', overrides=LEVER_BASE + ('loss.kind=dice',)),
               Run('resolution 384 px', overrides=LEVER_BASE + ('data.image_size=(384, 384)',
                                                                'data.crop_size=(384, 384)')),
               Run('1250 steps', overrides=LEVER_BASE, steps=2 * DISC_LEVER_STEPS))

TABLES = {
    'drive': Table('DRIVE retinal vessels (paper Table II)', 'configs/drive_cpu.py',
                   (Run('CE-Net'),), paper_rows=('CE-Net', 'Backbone', 'U-Net'), versus_paper='CE-Net'),
    'isbi': Table('ISBI 2012 EM membranes (paper Table IV), bf16 compute', 'configs/isbi_cpu.py',
                  (Run('CE-Net', overrides=BF16),), paper_rows=('CE-Net', 'Backbone', 'U-Net'),
                  paper_table=('cell', 'ISBI2012')),
    'ablation': Table('Table VI ablation on DRIVE at the CPU recipe (1000 steps, bf16 compute), 3 seeds, '
                      'and U-Net at CE-Net\'s wall time',
                      'configs/drive_cpu.py',
                      tuple(Run(label, variant, seed, BF16) for seed in ABLATION_SEEDS
                            for label, variant in ABLATION_VARIANTS)
                      + tuple(Run(f'U-Net, equal wall time ({UNET_EQUAL_WALL_STEPS} steps)', 'unet', seed, BF16,
                                  steps=UNET_EQUAL_WALL_STEPS) for seed in ABLATION_SEEDS),
                      tta=('d8',),
                      paper_rows=('U-Net', 'Backbone', 'Backbone + DAC with atrous', 'Backbone + RMP', 'CE-Net'),
                      paper_table=('vessel', 'DRIVE-ablation')),
    'paper_level': Table('DRIVE at paper level from scratch: the CPU recipe with the architecture and the '
                         'accuracy threshold chosen on training images (bf16 compute)', 'configs/drive_cpu.py',
                         (Run('U-Net', 'unet', overrides=BF16), Run('CE-Net', overrides=BF16), CHOSEN_CENET),
                         tta=('d8',), threshold_split='train',
                         paper_rows=('CE-Net', 'Backbone', 'U-Net'), versus_paper='CE-Net'),
    # paper_level's CE-Net run at the ablation's 3 seeds (seed 0 is paper_level's run: the same workdir)
    'paper_level_seeds': Table('DRIVE at paper level from scratch: CE-Net with the levers chosen on held-out '
                               'training images (lr 2e-3, 768 px, 3000 steps, bf16 compute), 3 seeds, the '
                               'accuracy threshold chosen on training images', 'configs/drive_cpu.py',
                               tuple(dataclasses.replace(CHOSEN_CENET, seed=seed) for seed in ABLATION_SEEDS),
                               tta=('d8',), threshold_split='train', paper_rows=('CE-Net',),
                               versus_paper='CE-Net'),
    'disc_levers': Table('Drishti-GS1 recipe levers, one at a time from the CPU recipe, scored on 10 held-out '
                         'training images (bf16 compute)', DISC_CONFIG, DISC_LEVERS, tta=('d8',), steps=DISC_LEVER_STEPS,
                         split='val', per_image_changes=True, paper_table=('disc_cup', 'ORIGA')),
    'drishti': Table('Drishti-GS1 optic disc and cup, official 51 test images: CE-Net, Backbone and U-Net from '
                     'random weights, 3 seeds (CPU recipe, 1250 steps chosen on held-out images, bf16 compute)', DISC_CONFIG,
                     tuple(Run(label, variant, seed, BF16) for seed in ABLATION_SEEDS
                           for label, variant in DISC_VARIANTS),
                     tta=('d8', 'none'), steps=DISC_STEPS, paper_rows=DISC_PAPER_ROWS,
                     paper_table=('disc_cup', 'ORIGA')),
    'ablation_disc': Table('Table VI on the optic disc (Drishti-GS1 test images, disc E), 3 seeds (CPU recipe, '
                           '1250 steps, bf16 compute)', DISC_CONFIG,
                           tuple(Run(label, variant, seed, BF16) for seed in ABLATION_SEEDS
                                 for label, variant in ABLATION_VARIANTS),
                           tta=('d8',), steps=DISC_STEPS,
                           paper_rows=('U-Net', 'Backbone', 'Backbone + DAC with atrous', 'Backbone + RMP', 'CE-Net'),
                           paper_table=('disc_cup', 'ORIGA-ablation')),
    'levers': Table('DRIVE recipe levers, one at a time from the CPU recipe, scored on 4 held-out '
                    'training images (bf16 compute)', 'configs/drive_cpu.py',
                    LEVERS,
                    tta=('d8',), split='val', threshold_split='train', per_image_changes=True),
    'repro': Table('Same recipe, same seed, twice', 'configs/drive_cpu.py',
                   (Run('CE-Net, first run'), Run('CE-Net, second run', repeat=1)),
                   tta=('d8',), steps=SHORT_BUDGET),
    'precision': Table('float32 against bfloat16 compute, DRIVE CPU recipe, same seed',
                       'configs/drive_cpu.py', (
                           Run('float32'),
                           Run('bfloat16 (float32 parameters, statistics and loss)',
                               overrides=('model.dtype=bfloat16',)),
                       ), tta=('d8',)),
}


def slug(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9.]+', '-', text).strip('-').lower()


def run_steps(table: Table, run: Run) -> int:
    """A run's training steps: its own, else the table's (0: the config's)."""
    return run.steps or table.steps


def workdir_name(table: Table, run: Run, steps: int) -> str:
    """Workdir name from what defines a run, so identical runs of different tables share it.
    `steps`: the table's budget (a run's own `steps` wins)."""
    steps = run.steps or steps
    parts = [Path(table.config).stem, run.variant, f's{run.seed}', f'{steps or "default"}steps']
    parts += [slug(o) for o in run.overrides]
    if run.repeat:
        parts.append(f'repeat{run.repeat}')
    return '-'.join(parts)


def train_command(table: Table, run: Run, workdir: Path, data: str, steps: int) -> list[str]:
    """train.py's command line for `run` (`steps`: the table's budget; a run's own wins)."""
    steps = run.steps or steps
    command = [sys.executable, 'train.py', f'--config={table.config}:variant={run.variant}',
               f'--workdir={workdir}', f'--config.data.root={data}', f'--config.seed={run.seed}']
    if steps:
        command.append(f'--config.num_train_steps={steps}')
    return command + [f'--config.{o}' for o in run.overrides]


def eval_command(workdir: Path, tta: str, split: str = 'test', threshold: float | None = None) -> list[str]:
    """eval.py's command line: the last checkpoint on `split`, at `threshold` (None: the config's)."""
    folder = f'{split}_{tta}' + ('' if threshold is None else f'_t{threshold:.2f}')
    command = [sys.executable, 'eval.py', f'--workdir={workdir}', '--checkpoint=latest', f'--tta={tta}',
               f'--output_dir={workdir / "eval" / folder}']
    if split != 'test':
        command.append(f'--split={split}')
    if threshold is not None:
        command.append(f'--config.eval.threshold={threshold:.2f}')
    return command + ([] if tta == 'd8' and threshold is None else ['--config.eval.figures=False'])


def threshold_command(workdir: Path, split: str, tta: str) -> list[str]:
    """experiments/threshold.py's command line: the accuracy threshold chosen on `split`."""
    return [sys.executable, 'experiments/threshold.py', f'--workdir={workdir}', f'--split={split}',
            f'--tta={tta}']


def copy_figures(workdir: Path, out: Path, prefix: str, count: int = 2, max_width: int = 1600) -> list[str]:
    """Copy the run's curves and the first `count` d8 prediction figures (shrunk to max_width)."""
    sources = [workdir / 'curves.png'] + sorted((workdir / 'eval' / 'test_d8' / 'figures').glob('*.png'))[:count]
    return copy_pngs(sources, out, prefix, max_width)


def save_loss_curves(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """One PNG with the training loss of every run of a table."""
    series = {}
    for row in rows:
        records = [r for r in read_metrics(Path(row['workdir']) / 'metrics.jsonl') if 'train_loss' in r]
        if records:
            series[row['label'][:28]] = ([r['step'] for r in records], [r['train_loss'] for r in records])
    if series:
        figures.save_curve_png(path, [], series, size=(900, 520), title='training loss (Dice + CE or Dice)')


def wall_time_line(result: dict[str, Any]) -> str:
    """This invocation's wall time, and the training time of every run (runs trained by an earlier
    invocation and reused keep the time recorded when they trained)."""
    runs = [r for r in result['rows'] if r['workdir']]
    seconds = [r['train_seconds'] for r in runs if r['train_seconds'] is not None]
    reused = sum(bool(r.get('reused')) for r in runs)
    estimated = sum(bool(r.get('train_seconds_estimated')) for r in runs)
    line = f'- wall time of this invocation: {result["wall_minutes"]:.1f} min'
    if seconds:
        line += f'; training of its {len(runs)} runs: {sum(seconds) / 60:.1f} min'
    if reused:
        line += f' ({reused} trained by an earlier invocation and reused)'
    if estimated:
        line += (f'; {estimated} of the times (marked ≈) are estimates: the run resumed after an interrupted, '
                 'untimed invocation, and its timed part is scaled to all its steps')
    return line


def train_minutes_cell(row: dict[str, Any]) -> str:
    """A run's training minutes for a table cell: '≈' marks an estimate (see record_train_segment)."""
    seconds = row['train_seconds']
    return minutes_cell(None if seconds is None else seconds / 60, row.get('train_seconds_estimated', False))


def runs_evals(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every scoring of the table's own runs (not of rows computed over them)."""
    return [scored for row in rows if row.get('workdir') for scored in row['evals'].values()]


def seed_keys(table: Table) -> list[tuple[str, seed_stats.Key]]:
    """(title, evals key) of each scoring that statistics over seeds summarise: the first TTA mode at
    0.5, and at each run's own threshold chosen on `threshold_split` (a key per run)."""
    tta = table.tta[0]
    keys: list[tuple[str, seed_stats.Key]] = [(tta, tta)]
    if table.threshold_split:
        def chosen(row: dict[str, Any]) -> str:
            return threshold_key(tta, row['threshold']['chosen_threshold'], table.threshold_split) \
                if row.get('threshold') else ''
        keys.append((f'{tta}, each run\'s threshold chosen on {table.threshold_split}', chosen))
    return keys


def markdown(name: str, table: Table, result: dict[str, Any]) -> str:
    """The table's report: provenance, our rows (per TTA mode), the paper's rows, figures."""
    metrics = [m for m in METRIC_NAMES if any(m in scored.get('scores', {})
                                              for r in result['rows'] for scored in r['evals'].values())]
    head = ['run', 'seed', 'TTA'] + [METRIC_NAMES[m] for m in metrics]
    pooled = 'auc' in metrics
    if pooled:
        head.append('AUC (pooled pixels)')
    sweep = any(scored.get('sweep') for r in result['rows'] for scored in r['evals'].values())
    if sweep:
        head += ['V_Rand, best threshold', 'V_Info, best threshold']
    head += ['train (min)']
    lines = [f'### {table.title}', '',
             f'- command: `{result["command"]}`',
             f'- git commit of this invocation: '
             f'{provenance.commit_words(result["git_commit"], result.get("git_diff", ""))}; finished '
             f'{result["finished"]} (each run\'s training commit: "Provenance of each run" below)',
             f'- hardware: {result["hardware"]["cpu"]}, {result["hardware"]["cores"]} cores, '
             f'{result["hardware"]["memory_gb"]} GiB; jax {result["hardware"]["jax"]}, '
             f'flax {result["hardware"]["flax"]}',
             wall_time_line(result),
             f'- config: `{table.config}`' + (f' with {table.steps} steps' if table.steps else '')
             + '; each run\'s full config is its workdir\'s config.json',
             f'- scored: the last checkpoint, on the {result["rows"][0]["evals"][table.tta[0]]["num_images"]} '
             f'{table.split} images; per-image mean ± {std_words(runs_evals(result["rows"]))}; '
             'from random weights', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in result['rows']:
        for tta, scored in row['evals'].items():
            cells = [row['label'], str(row['seed']), tta]
            cells += [format_value(scored['scores'][m]['mean'], scored['scores'][m]['std']) for m in metrics]
            if pooled:
                cells.append(format_value(scored['pooled'].get('auc')))
            if sweep:
                best = scored.get('sweep') or {}
                cells += [format_value(best.get(m), best.get(m + '_std')) + (f' (t={best[m + "_threshold"]})'
                                                                          if m + '_threshold' in best else '')
                          for m in ('v_rand', 'v_info')]
            cells.append(train_minutes_cell(row))
            lines.append('| ' + ' | '.join(cells) + ' |')
    task, key = table.paper_table
    paper = TASKS[task].paper[key]
    for method in table.paper_rows:
        if method in paper:
            values = paper[method]
            cells = [f'paper: {method}', '', '']
            for m in metrics:
                value = values.get(m)
                cells.append(format_value(*value) if isinstance(value, tuple) else format_value(value))
            cells += [''] * (len(head) - len(cells))
            lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', f'Paper rows: {TASKS[task].source}, key {key!r}. {PAPER_NOTE}']
    chosen = [r for r in result['rows'] if r.get('threshold')]
    if chosen:
        lines += ['', 'Accuracy thresholds (experiments/threshold.py: the highest per-image mean Acc on '
                  'images the model may look at, never the test images):', '']
        lines += [f'- {r["label"]} (seed {r["seed"]}): t = {r["threshold"]["chosen_threshold"]:.2f} on '
                  f'{r["threshold"]["num_images"]} {r["threshold"]["split"]} images ({r["threshold"]["tta"]}), '
                  f'Acc there {r["threshold"]["mean_acc_at_chosen"]:.4f} against '
                  f'{r["threshold"]["mean_acc_at_0.5"]:.4f} at 0.5' for r in chosen]
    if seed_stats.has_seed_repeats(result['rows']):
        for title, key in seed_keys(table):
            lines += [''] + seed_stats.markdown(result['rows'], key, metrics, METRIC_NAMES,
                                                result['rows'][0]['label'], title, LOWER_IS_BETTER, DATA_COLUMNS)
    if table.per_image_changes and len(result['rows']) > 1:
        compared = [m for m in ('auc', 'acc', 'dice_disc', 'dice_cup') if m in metrics]
        lines += [''] + per_image.changes_against_first(result['rows'], table.split, table.tta[0], compared,
                                                        METRIC_NAMES)
    if table.versus_paper in paper:
        lines += [''] + paper_gap.markdown(result['rows'], table.versus_paper, paper[table.versus_paper], metrics,
                                           METRIC_NAMES, seed_keys(table))
    for facts in (run_facts.uncertainty_lines(result['rows'], table.tta[0]), run_facts.speed_lines(result['rows'])):
        lines += [''] + facts if facts else []
    config_lines = [f'- {row["label"]}: {json.dumps(row["config"])}' for row in result['rows']
                    if row['workdir']]   # summary rows (over folds) have no run of their own
    lines += ['', 'Recipe of each run (from its config.json):', ''] + config_lines
    lines += [''] + provenance.run_lines(result['rows'])
    if result.get('figures'):
        lines += [''] + [f'![{f}]({f})' for f in result['figures']]
    return '\n'.join(lines) + '\n'


def fold_runs(runs: Sequence[Run], folds: int) -> list[Run]:
    """Each run once per fold of k-fold cross-validation (single-pool datasets such as ISBI)."""
    if folds < 2:
        raise SystemExit(f'error: --folds must be at least 2, got {folds}')
    return [dataclasses.replace(run, label=f'{run.label}, fold {fold + 1}/{folds}',
                                overrides=run.overrides + (f'data.num_folds={folds}', f'data.fold={fold}'))
            for run in runs for fold in range(folds)]


def mean_row(rows: Sequence[dict[str, Any]], label: str) -> dict[str, Any]:
    """A row holding the mean over `rows` of each per-image mean (std = the sample std over rows;
    the best-threshold scores of the challenge protocol get theirs as '<metric>_std')."""
    import statistics
    evals = {}
    for tta in rows[0]['evals']:
        scored = [r['evals'][tta] for r in rows]
        scores = {}
        for metric in scored[0]['scores']:
            values = [s['scores'][metric]['mean'] for s in scored]
            scores[metric] = {'mean': statistics.fmean(values), 'std': statistics.stdev(values)}
        pooled = {k: statistics.fmean(s['pooled'][k] for s in scored)
                  for k in scored[0]['pooled'] if all(s['pooled'].get(k) is not None for s in scored)}
        sweep = {}
        for k in ('v_rand', 'v_info'):
            if all(k in (s.get('sweep') or {}) for s in scored):
                sweep[k] = statistics.fmean(s['sweep'][k] for s in scored)
                sweep[k + '_std'] = statistics.stdev(s['sweep'][k] for s in scored)
        evals[tta] = {'scores': scores, 'pooled': pooled, 'sweep': sweep, 'paper': scored[0]['paper'],
                      'num_images': sum(s['num_images'] for s in scored)}
    seconds = [r['train_seconds'] for r in rows]
    return {'label': label, 'variant': rows[0]['variant'], 'seed': rows[0]['seed'], 'workdir': '',
            'train_seconds': None if None in seconds else sum(seconds), 'eval_seconds': {},
            'config': rows[0]['config'], 'evals': evals, 'train_command': ''}


def report_text(name: str, table: Table, result: dict[str, Any]) -> str:
    """The markdown report, marked when partial, with the verdict of the reproducibility table."""
    text = markdown(name, table, result)
    if 'partial' in result:
        text = f'**Partial: {result["partial"]} done so far.**\n\n' + text
    if 'identical' in result:
        text += f'\nBoth runs give identical scores: **{result["identical"]}**.\n'
    return text


def run_table(name: str, data: str, out: Path, runs_dir: Path, fresh: bool, steps: int | None,
              spread_seeds: Sequence[int], argv: Sequence[str], folds: int = 0,
              spread_variants: Sequence[str] = ('cenet',), first: int = 0,
              finished_only: bool = False) -> dict[str, Any]:
    """Train and score every run of table `name`; write <out>/<report>.json and .md (report: `name`,
    or `name`_<folds>fold with folds); the result. `spread_seeds`: the seed-0 runs of
    `spread_variants` again with each of these seeds (after the table's own runs; runs the
    table already has are not repeated). `first` > 0: only the first `first` runs this time (the
    report stays partial; a later invocation without it trains the rest and reuses these).
    `finished_only`: score only the runs whose training has finished, and train none."""
    table = TABLES[name]
    if steps is not None:
        table = dataclasses.replace(table, steps=steps)
    runs = list(table.runs)
    for seed in spread_seeds:
        for run in table.runs:
            extra = dataclasses.replace(run, seed=seed)
            if run.seed == 0 and run.variant in spread_variants and not run.repeat and extra not in runs:
                runs.append(extra)
    if folds:
        runs = fold_runs(runs, folds)
        name = report_name(name, folds)
    out.mkdir(parents=True, exist_ok=True)
    runs_dir.mkdir(parents=True, exist_ok=True)
    commit = provenance.git_commit()   # the code the runs start from ('+dirty': tracked files were edited)
    diff = provenance.save_diff(provenance.git_diff(), out)   # ... and those edits
    trainings = provenance.trainings_in_reports(out)   # of runs trained before the runner recorded it
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    previous = out / f'{name}.json'   # training times of runs an earlier invocation trained
    known = {r['workdir']: r['train_seconds'] for r in json.loads(previous.read_text())['rows']} \
        if previous.exists() and not fresh else {}
    todo = runs[:first] if first else runs
    if finished_only:   # runs trained side by side (--train-only): score those that are done, train nothing
        todo = [run for run in todo if finished_training(runs_dir / workdir_name(table, run, table.steps))]
        if not todo:
            raise SystemExit(f'error: no run of {name} has finished training under {runs_dir}')
        first = len(todo)
    for index, run in enumerate(todo):
        workdir = runs_dir / workdir_name(table, run, table.steps)
        rows.append(provenance.with_trainings(
            train_and_score(table, run, workdir, data, fresh, known.get(str(workdir))), trainings))
        if index + 1 < len(runs):   # a partial report after every run, so an interrupted table shows something
            write_report(name, table, rows, out, commit, argv, start, partial=f'{index + 1} of {len(runs)} runs',
                         diff=diff)
    if len(todo) < len(runs):
        return write_report(name, table, rows, out, commit, argv, start,
                            partial=f'{len(todo)} of {len(runs)} runs ('
                                    + ('the finished ones, --finished-only' if finished_only else f'--first {first}')
                                    + ')', diff=diff)
    if folds:
        folded = list(rows)
        rows.append(mean_row(folded, f'mean of {folds} folds (± spread over folds)'))
        rows.append(per_image.pooled_row(folded, table.split, f'all {folds} folds pooled (± spread over images; '
                                                              'best threshold: one for all images)', list(METRIC_NAMES)))
        figures = per_image.extreme_figures(folded, table.split, table.tta[0])
        return write_report(name, table, rows, out, commit, argv, start, figures=figures, diff=diff)
    return write_report(name, table, rows, out, commit, argv, start, diff=diff)


def report_name(table: str, folds: int = 0) -> str:
    """The report's file stem: the table's name, with `_<k>fold` for k-fold cross-validation."""
    return f'{table}_{folds}fold' if folds else table


def finished_training(workdir: Path) -> bool:
    """Whether the workdir's newest checkpoint is its config's last step (train.py would only
    restore it and stop, which costs a process start and a restore)."""
    config = workdir / 'config.json'
    steps = [int(s) for s in checkpoint_steps(workdir) if s.isdigit()]
    return config.exists() and bool(steps) and max(steps) == json.loads(config.read_text()).get('num_train_steps')


def train_run(table: Table, run: Run, workdir: Path, data: str, fresh: bool) -> tuple[float, bool]:
    """Train one run with train.py in `workdir` (resuming its checkpoints; recording the commit and,
    for a run trained from its start, the training seconds in results_train.json); (seconds,
    whether it was already complete)."""
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    before = checkpoint_steps(workdir)
    if finished_training(workdir):
        return 0.0, True
    command = train_command(table, run, workdir, data, table.steps)
    from_step = max((int(s) for s in before if s.isdigit()), default=0)
    provenance.record_training(workdir, command, from_step)
    seconds = run_logged(command, workdir / 'results_log.txt')
    record_train_segment(workdir, from_step, seconds)
    return seconds, bool(before) and checkpoint_steps(workdir) == before   # train.py had nothing to do


def record_train_segment(workdir: Path, from_step: int, seconds: float) -> dict[str, Any]:
    """Add one finished train.py invocation (from `from_step` to the run's last step) to the run's
    results_train.json: `train_seconds` is the sum when the timed invocations cover the run from step
    0, else an estimate from the timed steps (a run resumed after an untimed, interrupted invocation),
    flagged `train_seconds_estimated`."""
    path = workdir / 'results_train.json'
    recorded = json.loads(path.read_text()) if path.exists() else {}
    total = json.loads((workdir / 'config.json').read_text())['num_train_steps']
    segments = recorded.get('segments') or ([{'from_step': 0, 'to_step': total, 'seconds': recorded['train_seconds']}]
                                            if 'train_seconds' in recorded else [])
    segments.append({'from_step': from_step, 'to_step': total, 'seconds': seconds})
    first = min(s['from_step'] for s in segments)
    result = {'train_seconds': sum(s['seconds'] for s in segments) * total / (total - first), 'segments': segments}
    if first:
        result['train_seconds_estimated'] = True
    path.write_text(json.dumps(result) + '\n')
    return result


def train_and_score(table: Table, run: Run, workdir: Path, data: str, fresh: bool,
                    known_seconds: float | None = None) -> dict[str, Any]:
    """Train one run with train.py (resuming a workdir that has checkpoints) and score it with
    eval.py. A run that was already complete and scored is not scored again; its training time
    is the one recorded when it trained (results_train.json, else `known_seconds`)."""
    _, complete_before = train_run(table, run, workdir, data, fresh)
    command = train_command(table, run, workdir, data, table.steps)
    log_path, timing = workdir / 'results_log.txt', workdir / 'results_train.json'
    evals, eval_seconds, commands = {}, {}, {}

    def score(key: str, command: list[str], metrics: Path) -> None:
        commands[key] = shlex.join(command)
        if not (complete_before and metrics.exists()):
            eval_seconds[key] = run_logged(command, log_path)
        evals[key] = read_scores(metrics)

    for tta in table.tta:
        score(tta, eval_command(workdir, tta, table.split),
              workdir / 'eval' / f'{table.split}_{tta}' / 'metrics.json')
    threshold = None
    if table.threshold_split:
        tta = table.tta[0]
        chosen = workdir / 'eval' / f'threshold_{table.threshold_split}_{tta}.json'
        choose = threshold_command(workdir, table.threshold_split, tta)
        if not (complete_before and chosen.exists()):
            eval_seconds['threshold'] = run_logged(choose, log_path)
        threshold = json.loads(chosen.read_text())
        value = threshold['chosen_threshold']
        score(threshold_key(tta, value, table.threshold_split), eval_command(workdir, tta, table.split, value),
              workdir / 'eval' / f'{table.split}_{tta}_t{value:.2f}' / 'metrics.json')
    timed = json.loads(timing.read_text()) if timing.exists() else {'train_seconds': known_seconds}
    row = {'label': run.label, 'variant': run.variant, 'seed': run.seed, 'workdir': str(workdir),
           'train_seconds': timed['train_seconds'], 'train_seconds_estimated': timed.get('train_seconds_estimated', False),
           'reused': complete_before, 'eval_seconds': eval_seconds,
           'config': run_config_summary(workdir), 'evals': evals, 'train_command': shlex.join(command),
           'trained_at': provenance.trained_at(workdir), 'eval_commands': commands,
           'speed': run_facts.logged_speed(workdir)}
    if threshold is not None:
        row['threshold'] = {k: threshold[k] for k in ('split', 'tta', 'num_images', 'chosen_threshold',
                                                      'mean_acc_at_chosen', 'mean_acc_at_0.5')}
        row['threshold_command'] = shlex.join(choose)
    return row


def threshold_key(tta: str, threshold: float, split: str) -> str:
    """The evals key (and TTA cell) of a score at a threshold chosen on `split`."""
    return f'{tta}, t={threshold:.2f} (chosen on {split})'


def write_report(name: str, table: Table, rows: list[dict[str, Any]], out: Path, commit: str,
                 argv: Sequence[str], start: float, partial: str = '',
                 figures: Sequence[Path] = (), diff: str = '') -> dict[str, Any]:
    """Write <out>/<name>.json and .md (and the PNGs once the table is complete, with `figures`
    copied beside them), with the saved diffs of the runs' trainings (`diff`: this invocation's,
    already saved in `out`); the result."""
    result = {'table': name, 'title': table.title, 'command': shlex.join(['python', *argv]),
              'git_commit': commit, 'git_diff': diff, 'hardware': provenance.hardware(),
              'finished': provenance.now(),
              'wall_minutes': (time.perf_counter() - start) / 60, 'rows': rows, 'figures': []}
    provenance.copy_diffs(rows, out)
    if partial:
        result['partial'] = partial
    elif len(rows) > 1:
        save_loss_curves([r for r in rows if r['workdir']], out / f'{name}_loss.png')
        result['figures'].append(f'{name}_loss.png')
        result['figures'] += copy_pngs(figures, out, name)
    else:
        result['figures'] += copy_figures(Path(rows[0]['workdir']), out, name)
    if name == 'repro' and len(rows) == 2:
        first, second = (r['evals'][table.tta[0]] for r in rows)
        result['identical'] = first['scores'] == second['scores'] and first['pooled'] == second['pooled']
    (out / f'{name}.json').write_text(json.dumps(result, indent=2) + '\n')
    text = report_text(name, table, result)
    (out / f'{name}.md').write_text(text)
    print(text, flush=True)
    return result


def rewrite_report(name: str, out: Path, folds: int = 0) -> None:
    """<out>/<report>.md again from its .json (after a change to the report's layout)."""
    table = TABLES[name]
    name = report_name(name, folds)
    path = out / f'{name}.json'
    if not path.exists():
        raise SystemExit(f'error: {path} not found; run the table first (without --report-only)')
    result = json.loads(path.read_text())
    trainings = provenance.trainings_in_reports(out)   # runs from before the runner recorded it
    result['rows'] = [provenance.with_trainings(row, trainings) if row.get('workdir') else row
                      for row in result['rows']]
    given = re.search(r'--steps[ =](\d+)', result['command'])
    if given:
        table = dataclasses.replace(table, steps=int(given.group(1)))
    text = report_text(name, table, result)
    (out / f'{name}.md').write_text(text)
    print(text)


def default_cross_runs(cross: cross_dataset.CrossTable, runs_dir: Path) -> list[Path]:
    """The workdirs of the source table's `source_label` runs, one per seed (where
    `results.py <source_table>` trains them)."""
    source = TABLES[cross.source_table]
    return [runs_dir / workdir_name(source, run, source.steps) for run in source.runs
            if run.label == cross.source_label]


def class_values_arg(text: str) -> tuple[int, ...]:
    """--class-values: comma-separated integers (argparse reports anything else)."""
    return tuple(int(value) for value in text.split(',') if value.strip())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('table', choices=sorted(TABLES) + sorted(cross_dataset.CROSS_TABLES))
    parser.add_argument('--data', required=True, help='dataset folder (DRIVE, ISBI2012_EM or Drishti-GS1; the '
                        'CHASE_DB1, STARE or optic-disc-crop folder of a cross-dataset table)')
    parser.add_argument('--run', action='append', default=None, help='cross-dataset tables: a finished '
                        'workdir to score, once per run (default: the source table\'s CE-Net runs at seeds 0, 1, 2 '
                        'under --runs)')
    parser.add_argument('--class-values', type=class_values_arg, default=(),
                        help='drishti_on_folder: the masks\' raw values of background, rim and cup, '
                        'comma-separated (e.g. 255,128,0; default: class ids 0,1,2)')
    parser.add_argument('--annotator', type=int, default=1, help='cross-dataset tables: whose labels '
                        '(CHASE_DB1: 1 = 1stHO, 2 = 2ndHO; STARE: 1 = Hoover, 2 = Kouznetsova)')
    parser.add_argument('--out', default='docs/results', help='where the .json, .md and PNGs go')
    parser.add_argument('--runs', default='runs/results', help='parent folder of the runs\' workdirs')
    parser.add_argument('--steps', type=int, default=None, help='override every run\'s training steps')
    parser.add_argument('--spread-seeds', default='', help='extra seeds (comma-separated) of the '
                        '--spread-variants runs, to measure the seed spread, e.g. 1,2')
    parser.add_argument('--spread-variants', default='cenet', help='which variants get the extra seeds '
                        '(comma-separated, e.g. cenet,backbone)')
    parser.add_argument('--folds', type=int, default=0, help='k-fold cross-validation: every run once '
                        'per fold (single-pool datasets: isbi), plus the mean over folds')
    parser.add_argument('--first', type=int, default=0, help='train and score only the table\'s first '
                        'N runs this time (a partial report; a later invocation reuses them)')
    parser.add_argument('--train-only', type=int, default=None, metavar='INDEX',
                        help='train the table\'s run INDEX (0-based) in its workdir and stop: several runs can '
                             'train side by side, each in its own process; a later invocation scores them')
    parser.add_argument('--finished-only', action='store_true', help='score only the runs whose training '
                        'has finished (e.g. with --train-only) and train none; the report says which')
    parser.add_argument('--report-only', action='store_true', help='rewrite <table>.md from the '
                        '<table>.json an earlier run of this command wrote (no training or evaluation)')
    parser.add_argument('--fresh', action='store_true', help='delete existing workdirs first (cross-dataset '
                        'tables: score the run again; it is kept)')
    args = parser.parse_args(argv)
    cross = cross_dataset.CROSS_TABLES.get(args.table)
    if args.report_only:
        if cross:
            cross_dataset.rewrite_report(args.table, Path(args.out), args.annotator)
        else:
            rewrite_report(args.table, Path(args.out), args.folds)
        return
    if not Path(args.data).is_dir():
        raise SystemExit(f'error: --data {args.data!r} is not a folder; pass the dataset root '
                         '(e.g. ../shared/datasets/DRIVE)')
    if cross:
        runs = ([Path(run).resolve() for run in args.run] if args.run
                else default_cross_runs(cross, Path(args.runs).resolve()))
        cross_dataset.run_cross(args.table, str(Path(args.data).resolve()), Path(args.out), runs, args.fresh,
                                ['experiments/results.py', *(sys.argv[1:] if argv is None else argv)],
                                args.annotator, args.class_values)
        return
    seeds = [int(s) for s in args.spread_seeds.split(',') if s.strip()]
    if args.train_only is not None:
        table = TABLES[args.table] if args.steps is None else dataclasses.replace(TABLES[args.table], steps=args.steps)
        if not 0 <= args.train_only < len(table.runs):
            raise SystemExit(f'error: --train-only takes a run index 0..{len(table.runs) - 1} of {args.table}')
        run = table.runs[args.train_only]
        runs_dir = Path(args.runs).resolve()
        train_run(table, run, runs_dir / workdir_name(table, run, table.steps), args.data, args.fresh)
        return
    run_table(args.table, args.data, Path(args.out), Path(args.runs).resolve(), args.fresh, args.steps,
              seeds, ['experiments/results.py', *(sys.argv[1:] if argv is None else argv)], args.folds,
              tuple(v for v in args.spread_variants.split(',') if v), args.first, args.finished_only)


if __name__ == '__main__':
    main()
