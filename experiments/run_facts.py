"""Facts of a run that a report states beside its scores, so that no page has to quote them from
the ignored runs/ folder: how fast it trained (from its own training log) and how well the TTA
uncertainty flags its errors (from eval.py's metrics.json, kept by runner_common.read_scores).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from cenet_jax.logging import read_metrics
from runner_common import format_value

Row = dict[str, Any]


def logged_speed(workdir: Path) -> dict[str, Any]:
    """train.py's logged running rate (images/s since its clock started, after the first step) at
    its first and last log line: a falling rate means the steps grew slower during the run."""
    logged = [r for r in read_metrics(workdir / 'metrics.jsonl')
              if 'images_per_sec' in r and math.isfinite(r['images_per_sec'])]
    if not logged:
        return {}
    return {'first': {'step': logged[0]['step'], 'images_per_sec': logged[0]['images_per_sec']},
            'last': {'step': logged[-1]['step'], 'images_per_sec': logged[-1]['images_per_sec']}}


def overall_speed(row: Row) -> float | None:
    """Images/s over a run's whole training: steps x batch / its recorded training time (start-up
    and compilation included), from the report row alone."""
    config, seconds = row.get('config') or {}, row.get('train_seconds')
    if not seconds or not config.get('steps') or not config.get('batch'):
        return None
    return config['steps'] * config['batch'] / seconds


def speed_lines(rows: Sequence[Row]) -> list[str]:
    """Markdown table of each run's training speed ([] when no run has one)."""
    runs = [r for r in rows if r.get('workdir') and (r.get('speed') or overall_speed(r))]
    if not runs:
        return []
    lines = ['Training speed (images/s; whole training: steps x batch / the recorded training time, start-up '
             'included; logged: train.py\'s running rate at its first and last log line):', '',
             '| run | seed | whole training | logged, first line | logged, last line |', '|---|---|---|---|---|']
    for row in runs:
        speed, overall = row.get('speed') or {}, overall_speed(row)
        cells = ['n/a' if overall is None else f'{overall:.1f}']
        cells += [f'{speed[k]["images_per_sec"]:.1f} (step {speed[k]["step"]})' if k in speed else 'n/a'
                  for k in ('first', 'last')]
        lines.append(f'| {row["label"]} | {row["seed"]} | ' + ' | '.join(cells) + ' |')
    return lines


def uncertainty_lines(rows: Sequence[Row], key: str) -> list[str]:
    """Markdown table: how well the per-pixel std of the TTA views flags the wrong pixels, per run
    scored with `key` ([] when no run kept the uncertainty)."""
    runs = [(r, r['evals'][key]['uncertainty']) for r in rows if r['evals'].get(key, {}).get('uncertainty')]
    if not runs:
        return []
    lines = [f'TTA uncertainty ({key}: the per-pixel std of the views\' probabilities against the per-pixel '
             'error at the scored threshold, inside the FOV where the set has one, else over the '
             'whole image the model saw: the disc crop for the disc sets):', '',
             '| run | seed | AUC of std vs error, pooled (bound) | the same AUC per image | mean std per image | '
             'mean std, wrong / right pixels | wrong pixels among the 5 % most uncertain | wrong / all pixels |',
             '|---|---|---|---|---|---|---|---|']
    for row, u in runs:
        per_image = u.get('per_image', {})

        def spread(name: str) -> str:
            s = per_image.get(name) or {}
            return format_value(s.get('mean'), s.get('std'))
        lines.append(f'| {row["label"]} | {row["seed"]} | {u["pixel_auc"]:.4f} (±{u["pixel_auc_max_error"]:.5f}) | '
                     f'{spread("uncertainty_auc")} | {spread("uncertainty")} | '
                     f'{u["mean_std_wrong"]:.4f} / {u["mean_std_right"]:.4f} | '
                     f'{100 * u["wrong_in_top_5pct"]:.1f} % | {u["wrong_pixels"]:,} / {u["pixels"]:,} |')
    return lines
