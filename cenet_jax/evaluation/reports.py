"""Reports of an `EvalResult`: the paper-style markdown table beside the paper's numbers (and a
line on the TTA uncertainty when kept), metrics.json and the per-image CSV, each written whole or
not at all (`disk.write_atomic`); the browsable page is `evaluation.html_report`. When the
result's settings carry `provenance` (lines saying which dataset, which images and which field of
view were scored), the table starts with them.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from cenet_jax.disk import write_atomic
from cenet_jax.evaluation.scoring import EvalResult, cell_threshold_sweep
from cenet_jax.evaluation.tasks import (OCT_BOUNDARY_NAMES, OCT_MAE_KEYS, TASKS, PaperTable,
                                        PaperValue)
from cenet_jax.metrics import STD_DDOF

METRIC_LABELS = {
    'E': 'E', 'dice': 'Dice', 'iou': 'IoU', 'acc': 'Acc', 'sen': 'Sen', 'spec': 'Spec',
    'auc': 'AUC', 'v_rand': 'V_Rand', 'v_info': 'V_Info',
    **{key: name for key, name in zip(OCT_MAE_KEYS, OCT_BOUNDARY_NAMES + ('Overall',))},
}


def _format_paper_value(value: PaperValue | None, digits: int) -> str:
    if value is None:
        return '-'
    if isinstance(value, tuple):
        return f'{value[0]:.{digits}f}±{value[1]:.{digits}f}'
    return f'{value:.{digits}f}'


def table_cells(result: EvalResult, paper: PaperTable | None = None, digits: int = 4
                ) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the paper-style table: the paper's rows, then ours (per-image
    mean±std, pooled, best cell threshold); every cell a string ('-' where none)."""
    spec = TASKS[result.task]
    paper = spec.paper[result.paper_key] if paper is None else paper
    metrics = spec.table_metrics
    header = ['Method'] + [METRIC_LABELS.get(m, m) for m in metrics]
    rows = [[f'{method} (paper)'] + [_format_paper_value(values.get(m), digits) for m in metrics]
            for method, values in paper.items()]
    aggregate = result.aggregate
    rows.append(['ours (per-image mean±std)'] + [
        aggregate[m].format(digits) if m in aggregate else '-' for m in metrics])
    pooled = result.pooled
    if pooled:
        rows.append(['ours (pooled)'] + [f'{pooled[m]:.{digits}f}' if m in pooled else '-'
                                         for m in metrics])
    sweep = cell_threshold_sweep(result)
    if sweep:
        rows.append(['ours (best threshold, challenge protocol)'] + [
            f'{sweep[m]:.{digits}f} @{sweep[m + "_threshold"]:g}' for m in metrics])
    return header, rows


def uncertainty_line(result: EvalResult) -> str:
    """One sentence on the TTA uncertainty of a result ('' without it): its mean, and how well
    it flags the wrong pixels (pooled AUC of the per-pixel std against the per-pixel error)."""
    pooled = result.uncertainty
    if not pooled:
        return ''
    mean = result.aggregate.get('uncertainty')
    views = result.settings.get('tta_views')
    return (f'TTA uncertainty (per-pixel std of the {views or "TTA"} views\' probabilities): '
            f'mean {mean.mean:.4f} per image; as a detector of the wrong pixels it has AUC '
            f'{pooled["pixel_auc"]:.4f} (pooled over {pooled["pixels"]:,} pixels, '
            f'{pooled["wrong_pixels"]:,} wrong; mean std {pooled["mean_std_wrong"]:.4f} on wrong '
            f'pixels, {pooled["mean_std_right"]:.4f} on right ones); the 5% most uncertain pixels '
            f'hold {100 * pooled["wrong_in_top_5pct"]:.1f}% of the wrong ones')


def format_table(result: EvalResult, paper: PaperTable | None = None, digits: int = 4) -> str:
    """A markdown table in the paper's layout: the paper's rows, then ours (mean±std, pooled),
    under the provenance lines of the settings (what was scored), if any; with TTA uncertainty,
    a line on it below."""
    spec = TASKS[result.task]
    header, rows = table_cells(result, paper, digits)
    provenance = [str(line) for line in result.settings.get('provenance', ())]
    lines = [f'{result.task}: {result.paper_key}, {len(result.rows)} images '
             f'(paper: Gu et al. 2019, {spec.source})', *provenance, *([''] if provenance else []),
             '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    if result.uncertainty:
        lines.append(uncertainty_line(result))
    return '\n'.join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def result_summary(result: EvalResult) -> dict[str, Any]:
    """Everything a report needs, JSON-ready: settings, aggregate, pooled, sweep, paper numbers."""
    return _json_safe({
        'task': result.task, 'paper_key': result.paper_key, 'num_images': len(result.rows),
        'settings': dict(result.settings),
        'aggregate': {k: s.as_dict() for k, s in result.aggregate.items()},
        'std_ddof': STD_DDOF,   # the aggregate's std: sample (1); reports before it was written: 0
        'pooled': result.pooled, 'threshold_sweep': cell_threshold_sweep(result),
        'uncertainty': result.uncertainty,
        'paper': {method: {m: list(v) if isinstance(v, tuple) else v for m, v in values.items()}
                  for method, values in TASKS[result.task].paper[result.paper_key].items()},
    })


def write_metrics_json(result: EvalResult, path: str | Path) -> None:
    """Writes `result_summary` as JSON (NaN written as null), whole or not at all."""
    write_atomic(path, json.dumps(result_summary(result), indent=2) + '\n')


def write_per_image_csv(result: EvalResult, path: str | Path) -> None:
    """Writes one CSV row per image: id and every score (with TTA uncertainty: its mean
    `uncertainty` and `uncertainty_auc`, see evaluation.scoring), whole or not at all."""
    columns = ('id',) + result.metric_names
    handle = io.StringIO(newline='')
    writer = csv.DictWriter(handle, fieldnames=columns, extrasaction='ignore')
    writer.writeheader()
    for row in result.rows:
        writer.writerow({k: ('' if isinstance(v, float) and math.isnan(v) else v)
                         for k, v in row.items()})
    write_atomic(path, handle.getvalue())
