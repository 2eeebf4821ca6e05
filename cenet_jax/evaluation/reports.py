"""Reports of an `EvalResult`: the paper-style markdown table beside the paper's numbers,
metrics.json and the per-image CSV. When the result's settings carry `provenance` (lines saying
which dataset, which images and which field of view were scored), the table starts with them.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from cenet_jax.evaluation.scoring import EvalResult, cell_threshold_sweep
from cenet_jax.evaluation.tasks import (OCT_BOUNDARY_NAMES, OCT_MAE_KEYS, TASKS, PaperTable,
                                        PaperValue)

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


def format_table(result: EvalResult, paper: PaperTable | None = None, digits: int = 4) -> str:
    """A markdown table in the paper's layout: the paper's rows, then ours (mean±std, pooled),
    under the provenance lines of the settings (what was scored), if any."""
    spec = TASKS[result.task]
    paper = spec.paper[result.paper_key] if paper is None else paper
    metrics = spec.table_metrics
    header = '| Method | ' + ' | '.join(METRIC_LABELS.get(m, m) for m in metrics) + ' |'
    provenance = [str(line) for line in result.settings.get('provenance', ())]
    lines = [f'{result.task}: {result.paper_key}, {len(result.rows)} images '
             f'(paper: Gu et al. 2019, {spec.source})', *provenance, *([''] if provenance else []),
             header, '|' + '---|' * (len(metrics) + 1)]
    for method, values in paper.items():
        lines.append(f'| {method} (paper) | '
                     + ' | '.join(_format_paper_value(values.get(m), digits) for m in metrics) + ' |')
    aggregate = result.aggregate
    lines.append('| ours (per-image mean±std) | ' + ' | '.join(
        aggregate[m].format(digits) if m in aggregate else '-' for m in metrics) + ' |')
    pooled = result.pooled
    if pooled:
        lines.append('| ours (pooled) | ' + ' | '.join(
            f'{pooled[m]:.{digits}f}' if m in pooled else '-' for m in metrics) + ' |')
    sweep = cell_threshold_sweep(result)
    if sweep:
        lines.append('| ours (best threshold, challenge protocol) | ' + ' | '.join(
            f'{sweep[m]:.{digits}f} @{sweep[m + "_threshold"]:g}' for m in metrics) + ' |')
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
        'pooled': result.pooled, 'threshold_sweep': cell_threshold_sweep(result),
        'paper': {method: {m: list(v) if isinstance(v, tuple) else v for m, v in values.items()}
                  for method, values in TASKS[result.task].paper[result.paper_key].items()},
    })


def write_metrics_json(result: EvalResult, path: str | Path) -> None:
    """Writes `result_summary` as JSON (NaN written as null)."""
    Path(path).write_text(json.dumps(result_summary(result), indent=2) + '\n')


def write_per_image_csv(result: EvalResult, path: str | Path) -> None:
    """Writes one CSV row per image: id and every score."""
    columns = ('id',) + result.metric_names
    with open(path, 'w', newline='') as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction='ignore')
        writer.writeheader()
        for row in result.rows:
            writer.writerow({k: ('' if isinstance(v, float) and math.isnan(v) else v)
                             for k, v in row.items()})
