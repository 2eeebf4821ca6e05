"""What the results runner (experiments/results.py) reads from eval.py's per-image tables
(<workdir>/eval/<split>_<tta>/per_image.csv): all images of k folds as one row, the figures of
the worst and best image, and each run's change per image against a table's first run.

A table row is the runner's dict: it names its run's folder as 'workdir' (computed rows, such as
a mean over folds, have none).
"""
from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Any, Sequence

Row = dict[str, Any]


def folder(row: Row, split: str, tta: str) -> Path:
    """Where eval.py wrote the row's scores of `split` with `tta`."""
    return Path(row['workdir']) / 'eval' / f'{split}_{tta}'


def read_images(row: Row, split: str, tta: str) -> list[dict[str, str]]:
    """The rows of the run's per_image.csv (one per image, 'id' first, then the metrics)."""
    with open(folder(row, split, tta) / 'per_image.csv', newline='') as f:
        return list(csv.DictReader(f))


def pooled_row(rows: Sequence[Row], split: str, label: str, metrics: Sequence[str]) -> Row:
    """A row over every image the folds scored: per-image mean ± std of each of `metrics`, and the
    challenge's best threshold chosen once for all the images (not fold by fold)."""
    evals = {}
    for tta in rows[0]['evals']:
        images = [image for row in rows for image in read_images(row, split, tta)]
        scores = {m: {'mean': statistics.fmean(float(i[m]) for i in images),
                      'std': statistics.stdev(float(i[m]) for i in images)}
                  for m in metrics if m in images[0]}
        sweep = {}
        for m in ('v_rand', 'v_info'):
            thresholds = sorted(c.split('@')[1] for c in images[0] if c.startswith(m + '@'))
            if thresholds:
                best, at = max((statistics.fmean(float(i[f'{m}@{t}']) for i in images), t) for t in thresholds)
                sweep[m], sweep[m + '_threshold'] = best, float(at)
        evals[tta] = {'scores': scores, 'pooled': {}, 'sweep': sweep, 'paper': rows[0]['evals'][tta]['paper'],
                      'num_images': len(images)}
    seconds = [r['train_seconds'] for r in rows]
    return {'label': label, 'variant': rows[0]['variant'], 'seed': rows[0]['seed'], 'workdir': '',
            'train_seconds': None if None in seconds else sum(seconds), 'eval_seconds': {},
            'config': rows[0]['config'], 'evals': evals, 'train_command': ''}


def extreme_figures(rows: Sequence[Row], split: str, tta: str) -> list[Path]:
    """The prediction figures of the lowest- and highest-scoring image over all runs (by the first
    metric of per_image.csv), so a k-fold report shows where the model fails as well as where it works."""
    scored = []
    for row in rows:
        images = read_images(row, split, tta)
        metric = list(images[0])[1]
        scored += [(float(i[metric]), folder(row, split, tta) / 'figures' / f'{i["id"]}.png') for i in images]
    scored.sort(key=lambda item: item[0])
    return [scored[0][1], scored[-1][1]]


def changes_against_first(rows: Sequence[Row], split: str, tta: str, metrics: Sequence[str],
                          names: dict[str, str]) -> list[str]:
    """Markdown: each run's change per image against the first run, and on how many images it is
    better. With few scored images (a held-out split of 4) a mean gain carried by one image shows."""
    runs = [r for r in rows if r.get('workdir')]
    missing = [str(folder(r, split, tta) / 'per_image.csv') for r in runs
               if not (folder(r, split, tta) / 'per_image.csv').exists()]
    if missing:   # a report rewritten (--report-only) where the runs' folders are not
        return [f'Per image against the first run: not shown, {len(missing)} per-image tables are not on '
                f'this machine (first: {missing[0]}).']
    first = {i['id']: i for i in read_images(runs[0], split, tta)}
    ids = list(first)
    head = ['run'] + [f'{names[m]} change per image' for m in metrics] + [f'{names[m]} better on' for m in metrics]
    lines = [f'Per image against the first run ({tta}, threshold 0.5; images {", ".join(ids)}):', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for row in runs[1:]:
        images = {i['id']: i for i in read_images(row, split, tta)}
        changes = {m: [float(images[k][m]) - float(first[k][m]) for k in ids] for m in metrics}
        cells = [row['label']] + [', '.join(f'{d:+.4f}' for d in changes[m]) for m in metrics]
        cells += [f'{sum(d > 0 for d in changes[m])} of {len(ids)}' for m in metrics]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return lines
