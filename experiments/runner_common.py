"""What the results runner (results.py) and its cross-dataset tables (cross_dataset.py) share:
running a logged command, reading eval.py's scores and a run's recipe, formatting a score, and
copying figures beside a report. results.py imports cross_dataset.py, and both import this
module, so neither imports the other back (tests/test_experiments.py checks there is no cycle).
"""
from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent

PAPER_NOTE = ('The paper\'s numbers use an ImageNet-pretrained ResNet-34 encoder and 100 epochs on a '
              'GPU; ours start from random weights (ImageNet weights cannot be downloaded here).')
METRIC_NAMES = {'sen': 'Sen', 'acc': 'Acc', 'auc': 'AUC', 'v_rand': 'V_Rand', 'v_info': 'V_Info',
                'E_disc': 'disc E', 'dice_disc': 'disc Dice', 'E_cup': 'cup E', 'dice_cup': 'cup Dice',
                'cdr_error': 'CDR abs. error', 'cdr_expert_spread': "experts' CDR spread"}
# Scores where smaller is better (a paired comparison counts who is ahead by them).
LOWER_IS_BETTER = frozenset({'E_disc', 'E_cup', 'cdr_error'})
# Columns that describe the test images, not the model (the same for every run: never compared).
DATA_COLUMNS = frozenset({'cdr_expert_spread'})
# Per-image scores that describe the TTA uncertainty rather than the segmentation.
UNCERTAINTY_SCORES = ('uncertainty', 'uncertainty_auc')


def minutes_cell(minutes: float | None, estimated: bool = False) -> str:
    """Training minutes for a table cell; '≈' marks an estimate (a resumed run's timed part, scaled)."""
    return 'n/a' if minutes is None else ('≈' if estimated else '') + f'{minutes:.1f}'


def run_logged(command: list[str], log_path: Path) -> float:
    """Run `command` from the repository root with its output teed to `log_path`; seconds taken."""
    print('$', shlex.join(command), flush=True)
    start = time.perf_counter()
    with open(log_path, 'a') as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1, env={**os.environ, 'PYTHONUNBUFFERED': '1'})
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if 'step ' in line or 'error' in line.lower() or line.startswith(('model:', '|', 'split', 'dataset:', 'test:', 'FOV:')):
                print('   ', line.rstrip(), flush=True)
        if process.wait():
            raise SystemExit(f'command failed with exit status {process.returncode}: {shlex.join(command)}\n'
                             f'see {log_path}')
    return time.perf_counter() - start


def read_scores(metrics_path: Path) -> dict[str, Any]:
    """Per-image mean and std of the table metrics, the pooled scores, the paper rows, the std
    convention of eval.py's run (`std_ddof`: 1 = sample; 0 for metrics written before it said),
    and with TTA the uncertainty: pooled against the errors, and per image (mean ± std)."""
    summary = json.loads(metrics_path.read_text())
    aggregate = summary['aggregate']
    scores = {name: {'mean': values['mean'], 'std': values['std']}
              for name, values in aggregate.items() if name in METRIC_NAMES}
    scored = {'scores': scores, 'pooled': summary.get('pooled') or {}, 'paper': summary['paper'],
              'num_images': summary['num_images'], 'sweep': summary.get('threshold_sweep') or {},
              'std_ddof': summary.get('std_ddof', 0)}
    if summary.get('uncertainty'):
        scored['uncertainty'] = {**summary['uncertainty'], 'per_image': {
            name: {'mean': aggregate[name]['mean'], 'std': aggregate[name]['std']}
            for name in UNCERTAINTY_SCORES if name in aggregate}}
    return scored


def std_words(evals: Iterable[dict[str, Any]]) -> str:
    """What a report's per-image '± std' is: the sample std, unless some runs were scored by an
    eval.py that wrote the population std (their metrics.json has no `std_ddof`)."""
    ddofs = {scored.get('std_ddof', 0) for scored in evals}
    if ddofs == {1}:
        return 'sample std (n - 1)'
    if ddofs == {0}:
        return ('population std (n): these runs were scored before eval.py switched to the sample std '
                '(n - 1), which is larger by sqrt(n / (n - 1)), 1.026 for 20 images')
    return ('sample std (n - 1), except for runs scored before eval.py switched to it: population std (n), '
            'smaller by sqrt((n - 1) / n)')


def run_config_summary(workdir: Path) -> dict[str, Any]:
    """The recipe fields a reader checks first, from the run's own config.json."""
    config = json.loads((workdir / 'config.json').read_text())
    data, optim = config['data'], config['optim']
    return {'steps': config['num_train_steps'], 'batch': config['batch_size'],
            'image_size': data['image_size'], 'crop_size': data.get('crop_size'),
            'optimizer': f"{optim['name']} lr {optim['lr']} {optim['schedule']} warmup {optim['warmup_steps']}",
            'loss': config['loss']['kind'], 'architecture': config['model']['architecture'],
            'variant_fields': ({k: config['model'][k] for k in ('context', 'dac_atrous') if k in config['model']}
                               if config['model']['architecture'] == 'cenet' else {}),
            'seed': config['seed'], 'pretrained': bool(config['model'].get('pretrained'))}


def checkpoint_steps(workdir: Path) -> list[str]:
    """Names of the saved training checkpoints of a workdir (empty before the first)."""
    latest = workdir / 'checkpoints' / 'latest'
    return sorted(p.name for p in latest.iterdir()) if latest.is_dir() else []


def copy_pngs(sources: Sequence[Path], out: Path, prefix: str, max_width: int = 1600) -> list[str]:
    """Copy the PNGs that exist to <out>/<prefix>_<name> (shrunk to max_width); their names."""
    from PIL import Image
    written = []
    for source in sources:
        if not source.exists():
            continue
        target = out / f'{prefix}_{source.name}'
        with Image.open(source) as image:
            if image.width > max_width:
                image = image.resize((max_width, round(image.height * max_width / image.width)),
                                     Image.Resampling.LANCZOS)
            image.save(target, format='PNG', optimize=True)
        written.append(target.name)
    return written


def format_value(value: float | None, std: float | None = None) -> str:
    """'0.1234 ± 0.0056'; the mean alone without a std (None, or NaN: fewer than 2 values)."""
    if value is None:
        return 'n/a'
    spread = std is not None and not math.isnan(std)
    return f'{value:.4f}' + (f' ± {std:.4f}' if spread else '')
