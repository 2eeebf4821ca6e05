"""Evaluation core: per-image and data-set scores of a task, the paper's numbers, tables and files.

`evaluate_records` turns evaluation records (see docs/architecture.md) and a
``predict_probs_fn(record) -> probs (H, W, K)`` at the record's own size into an
`EvalResult`: one row of scores per image, per-image mean ± std (population std, see
`cenet_jax.metrics.aggregate`) and pooled data-set scores (confusion counts summed over
all evaluated pixels, exact AUC over all pixels, OCT errors over all columns).

Which number the paper reports: its tables give mean ± std over test images (Tables I,
III, VI) and its DRIVE Table II values round to the Table VI means (0.9545 -> 0.955,
0.9779 -> 0.978); the authors' ``test_cenet.py`` prints the per-image mean (and
``np.std``) of Acc, Sen and AUC. So the per-image mean is what we set beside the paper;
pooled scores are printed as well because DRIVE papers often pool over all FOV pixels.
The authors' script scores all pixels of the image, not the FOV; the DRIVE convention
(and our default, ``use_fov=True``) is the FOV.

Tasks (`TASKS`): 'vessel' (DRIVE: Sen, Acc, AUC), 'disc' (ORIGA / Messidor / RIM-ONE-R1:
E), 'lung' (E, Acc, Sen), 'cell' (ISBI 2012: V_Rand, V_Info, membrane = label
``membrane_class``), 'oct' (MAE of 10 boundaries and overall, see
`cenet_jax.metrics.oct_layers`). Paper numbers are transcribed from Gu et al., IEEE TMI
2019 (Tables I-VI); a value is a mean or a (mean, std) pair.

Several hosts: each evaluates its records; `gather_result` (or `merge_results` on
results brought together otherwise) gives exactly the single-host result.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import jax
import numpy as np

from cenet_jax.figures import save_prediction_figure
from cenet_jax.losses import predict_classes
from cenet_jax.metrics import (ConfusionCounts, ScoreHistogram, ScoreSet,
                               Summary, auc, boundary_error_sums, boundary_positions, mae_from_sums,
                               overall_mae, rand_info_scores, summarize)

PaperValue = Union[float, tuple[float, float]]
PaperTable = Mapping[str, Mapping[str, PaperValue]]
Record = Mapping[str, Any]

OCT_BOUNDARY_NAMES = ('ILM', 'NFL/GCL', 'IPL/INL', 'INL/OPL', 'OPL/ONL', 'ELM', 'Up IS/OS',
                      'Low IS/OS', 'OS/RPE', 'BM/Choroid')
OCT_MAE_KEYS = tuple(f'mae_{k}' for k in range(1, 11)) + ('mae_overall',)
CELL_SCORE_NAMES = ('v_rand', 'v_info', 'rand_split', 'rand_merge', 'info_split', 'info_merge')
POOLED_AUC_MODES = ('exact', 'histogram', 'none')

METRIC_LABELS = {
    'E': 'E', 'dice': 'Dice', 'iou': 'IoU', 'acc': 'Acc', 'sen': 'Sen', 'spec': 'Spec',
    'auc': 'AUC', 'v_rand': 'V_Rand', 'v_info': 'V_Info',
    **{key: name for key, name in zip(OCT_MAE_KEYS, OCT_BOUNDARY_NAMES + ('Overall',))},
}


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a task measures, how, and what the paper reported."""

    name: str
    kind: str  # 'binary', 'cell' or 'oct'
    table_metrics: tuple[str, ...]
    paper: Mapping[str, PaperTable]
    default_paper_key: str
    source: str  # where in the paper the numbers are


def _oct_paper_row(values: Sequence[float | None]) -> dict[str, float]:
    return {key: v for key, v in zip(OCT_MAE_KEYS, values) if v is not None}


TASKS: dict[str, TaskSpec] = {
    'vessel': TaskSpec(
        name='vessel', kind='binary', table_metrics=('sen', 'acc', 'auc'),
        default_paper_key='DRIVE', source='Table II (DRIVE-ablation: Table VI, mean±std)',
        paper={
            'DRIVE': {
                'U-Net': {'sen': 0.7537, 'acc': 0.9531, 'auc': 0.9601},
                'DeepVessel': {'sen': 0.7603, 'acc': 0.9523, 'auc': 0.9752},
                'Backbone': {'sen': 0.7781, 'acc': 0.9477, 'auc': 0.9705},
                'CE-Net': {'sen': 0.8309, 'acc': 0.9545, 'auc': 0.9779},
            },
            'DRIVE-ablation': {
                'U-Net': {'acc': (0.939, 0.006), 'auc': (0.960, 0.006)},
                'Backbone': {'acc': (0.943, 0.004), 'auc': (0.971, 0.005)},
                'Backbone + Inception-block': {'acc': (0.950, 0.004), 'auc': (0.972, 0.005)},
                'Backbone + DAC w/o atrous': {'acc': (0.952, 0.004), 'auc': (0.970, 0.005)},
                'Backbone + DAC with atrous': {'acc': (0.953, 0.004), 'auc': (0.977, 0.006)},
                'Backbone + RMP': {'acc': (0.952, 0.004), 'auc': (0.974, 0.005)},
                'Backbone + Inception-ResNet-block': {'acc': (0.951, 0.004), 'auc': (0.974, 0.005)},
                'CE-Net': {'acc': (0.955, 0.003), 'auc': (0.978, 0.006)},
            },
        }),
    'disc': TaskSpec(
        name='disc', kind='binary', table_metrics=('E',), default_paper_key='ORIGA',
        source='Table I (ORIGA-ablation: Table VI)',
        paper={
            'ORIGA': {
                'Superpixel': {'E': (0.102, 0.104)}, 'U-Net': {'E': (0.115, 0.068)},
                'M-Net': {'E': (0.071, 0.047)}, 'Faster RCNN': {'E': (0.069, 0.056)},
                'DeepDisc': {'E': (0.069, 0.040)}, 'CE-Net': {'E': (0.058, 0.032)},
            },
            'ORIGA-ablation': {
                'U-Net': {'E': (0.115, 0.068)}, 'Backbone': {'E': (0.075, 0.068)},
                'Backbone + Inception-block': {'E': (0.068, 0.059)},
                'Backbone + DAC w/o atrous': {'E': (0.073, 0.050)},
                'Backbone + DAC with atrous': {'E': (0.061, 0.043)},
                'Backbone + RMP': {'E': (0.061, 0.044)},
                'Backbone + Inception-ResNet-block': {'E': (0.065, 0.042)},
                'CE-Net': {'E': (0.058, 0.032)},
            },
            'Messidor': {
                'Superpixel': {'E': (0.125, 0.113)}, 'U-Net': {'E': (0.069, 0.121)},
                'M-Net': {'E': (0.113, 0.089)}, 'Faster RCNN': {'E': (0.079, 0.058)},
                'DeepDisc': {'E': (0.064, 0.039)}, 'CE-Net': {'E': (0.051, 0.033)},
            },
            'RIM-ONE-R1': {
                'Superpixel': {'E': (0.203, 0.104)}, 'U-Net': {'E': (0.152, 0.107)},
                'M-Net': {'E': (0.135, 0.098)}, 'Faster RCNN': {'E': (0.133, 0.107)},
                'DeepDisc': {'E': (0.097, 0.045)}, 'CE-Net': {'E': (0.087, 0.039)},
            },
            **{f'RIM-ONE-R1-expert{expert + 1}': {
                method: {'E': values[expert]} for method, values in {
                    'Superpixel': (0.178, 0.229, 0.243, 0.183, 0.181),
                    'U-Net': (0.137, 0.149, 0.156, 0.171, 0.149),
                    'M-Net': (0.128, 0.135, 0.153, 0.142, 0.117),
                    'Faster RCNN': (0.101, 0.152, 0.161, 0.149, 0.104),
                    'DeepDisc': (0.077, 0.107, 0.119, 0.101, 0.079),
                    'CE-Net': (0.058, 0.112, 0.125, 0.080, 0.059),
                }.items()} for expert in range(5)},
        }),
    'lung': TaskSpec(
        name='lung', kind='binary', table_metrics=('E', 'acc', 'sen'), default_paper_key='LUNA',
        source='Table III',
        paper={'LUNA': {
            'U-Net': {'E': (0.087, 0.090), 'acc': (0.975, 0.032), 'sen': 0.938},
            'Backbone': {'E': (0.044, 0.063), 'acc': (0.988, 0.024), 'sen': 0.967},
            'CE-Net': {'E': (0.038, 0.061), 'acc': (0.990, 0.023), 'sen': 0.980},
        }}),
    'cell': TaskSpec(
        name='cell', kind='cell', table_metrics=('v_rand', 'v_info'), default_paper_key='ISBI2012',
        source='Table IV (challenge test set, scored by the organisers)',
        paper={'ISBI2012': {
            'U-Net': {'v_rand': 0.9432, 'v_info': 0.9562},
            'Backbone': {'v_rand': 0.9569, 'v_info': 0.9716},
            'CE-Net': {'v_rand': 0.9743, 'v_info': 0.9878},
        }}),
    'oct': TaskSpec(
        name='oct', kind='oct', table_metrics=OCT_MAE_KEYS, default_paper_key='Topcon',
        source='Table V (Topcon set, MAE in pixels)',
        paper={'Topcon': {
            'Topcon': _oct_paper_row((1.61, 2.09, 2.10, 2.27, None, 2.17, 1.82, None, 1.65, 1.80, None)),
            'SRR': _oct_paper_row((1.61, 2.02, 2.02, 1.91, None, 1.86, 1.63, None, 1.62, 1.80, None)),
            'FCN': _oct_paper_row((2.10, 4.41, 3.77, 4.54, 4.78, 4.52, 3.84, 4.36, 5.06, 7.88, 4.53)),
            'U-Net': _oct_paper_row((1.38, 3.05, 2.70, 2.77, 3.30, 2.34, 1.86, 2.00, 2.42, 2.65, 2.45)),
            'Backbone': _oct_paper_row((2.13, 2.70, 2.52, 2.20, 2.79, 1.91, 1.26, 1.60, 2.02, 2.70, 2.18)),
            'CE-Net w/ CE': _oct_paper_row((1.45, 2.48, 2.20, 2.08, 2.55, 1.66, 1.19, 1.04, 1.52, 1.82, 1.80)),
            'CE-Net w/ Dice': _oct_paper_row((1.37, 2.02, 2.08, 1.80, 2.47, 1.48, 1.10, 1.26, 1.48, 1.74, 1.68)),
        }}),
}


@dataclasses.dataclass(frozen=True)
class PooledState:
    """Data-set accumulators that add exactly across images and hosts."""

    counts: ConfusionCounts = ConfusionCounts()
    scores: ScoreSet | None = None
    histogram: ScoreHistogram | None = None
    boundary_sums: np.ndarray | None = None      # (B,) float64 sum of |error|
    boundary_counts: np.ndarray | None = None    # (B,) int64 annotated columns

    def merge(self, other: PooledState) -> PooledState:
        """The sum of two states of the same task and settings."""
        def join(a, b, combine):
            return b if a is None else a if b is None else combine(a, b)
        return PooledState(
            counts=self.counts.merge(other.counts),
            scores=join(self.scores, other.scores, ScoreSet.merge),
            histogram=join(self.histogram, other.histogram, ScoreHistogram.merge),
            boundary_sums=join(self.boundary_sums, other.boundary_sums, np.add),
            boundary_counts=join(self.boundary_counts, other.boundary_counts, np.add))


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """Per-image rows, data-set accumulators and the settings of one evaluation."""

    task: str
    paper_key: str
    rows: tuple[dict[str, Any], ...]
    state: PooledState
    settings: Mapping[str, Any]

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The numeric score keys of the rows, in row order."""
        if not self.rows:
            return ()
        return tuple(k for k, v in self.rows[0].items() if k != 'id' and isinstance(v, (int, float)))

    @property
    def aggregate(self) -> dict[str, Summary]:
        """Per-image mean, population std and count of every score."""
        return summarize(self.rows, self.metric_names)

    @property
    def pooled(self) -> dict[str, float]:
        """Scores over all evaluated pixels (binary), columns (oct); empty for 'cell'."""
        kind = TASKS[self.task].kind
        if kind == 'binary':
            pooled = self.state.counts.scores()
            if self.state.scores is not None:
                pooled['auc'] = self.state.scores.auc()
            if self.state.histogram is not None:
                pooled['auc'] = self.state.histogram.auc()
                pooled['auc_histogram_max_error'] = self.state.histogram.max_error()
            return pooled
        if kind == 'oct' and self.state.boundary_sums is not None:
            return _boundary_scores(mae_from_sums(self.state.boundary_sums, self.state.boundary_counts))
        return {}


def _foreground_probability(probs: np.ndarray, record_id: str) -> np.ndarray:
    if probs.shape[-1] == 1:
        return probs[..., 0]
    if probs.shape[-1] == 2:
        return probs[..., 1]
    raise ValueError(f'record {record_id!r}: a binary task needs K = 1 (sigmoid) or 2 (softmax) '
                     f'probability channels, got {probs.shape[-1]}')


def _check_labels(label: np.ndarray, num_classes: int, record_id: str) -> np.ndarray:
    label = np.asarray(label)
    if label.ndim != 2 or not np.issubdtype(label.dtype, np.integer):
        raise ValueError(f'record {record_id!r}: label must be an integer (H, W) class map, '
                         f'got {label.dtype} {label.shape}')
    if label.size and (label.min() < 0 or label.max() >= num_classes):
        raise ValueError(f'record {record_id!r}: label values must be in [0, {num_classes}), got '
                         f'[{label.min()}, {label.max()}]; binary labels are 0/1 (map 255 to 1)')
    return label


def _binary_row(probs, pred, record, *, use_fov, with_auc, pooled_auc, state):
    record_id = record['id']
    label = _check_labels(record['label'], 2, record_id) == 1
    fov = record.get('fov') if use_fov else None
    counts = ConfusionCounts.from_predictions(pred == 1, label, fov)
    row = counts.scores()
    new_state = dataclasses.replace(state, counts=state.counts.merge(counts))
    if with_auc:
        foreground = _foreground_probability(probs, record_id)
        row['auc'] = auc(foreground, label, fov)
        if pooled_auc == 'exact':
            new_state = dataclasses.replace(new_state, scores=(new_state.scores or ScoreSet()).add(
                foreground.astype(np.float32), label, fov))
        elif pooled_auc == 'histogram':
            new_state = dataclasses.replace(new_state, histogram=(
                new_state.histogram or ScoreHistogram.empty()).add(foreground, label, fov))
    return row, new_state


def _cell_row(probs, pred, record, *, membrane_class, cell_thresholds):
    num_classes = max(2, probs.shape[-1])
    if not 0 <= membrane_class < num_classes:
        raise ValueError(f'membrane_class must be a class of the model (0..{num_classes - 1}), '
                         f'got {membrane_class}')
    label = _check_labels(record['label'], num_classes, record['id'])
    scores = rand_info_scores(pred == membrane_class, label == membrane_class)
    row = {key: scores[key] for key in CELL_SCORE_NAMES}
    if cell_thresholds:
        membrane_prob = probs[..., membrane_class] if probs.shape[-1] > 1 else (
            probs[..., 0] if membrane_class == 1 else 1.0 - probs[..., 0])
        for threshold in cell_thresholds:
            swept = rand_info_scores(membrane_prob > threshold, label == membrane_class)
            row[f'v_rand@{threshold:g}'] = swept['v_rand']
            row[f'v_info@{threshold:g}'] = swept['v_info']
    return row


def _boundary_scores(mae: np.ndarray) -> dict[str, float]:
    """{'mae_1': ..., 'mae_B': ..., 'mae_overall': ...} from per-boundary MAEs."""
    return {**{f'mae_{k}': value for k, value in enumerate(mae.tolist(), start=1)},
            'mae_overall': overall_mae(mae)}


def _oct_row_scores(probs, pred, record, *, state):
    num_classes = probs.shape[-1]
    if num_classes < 2:
        raise ValueError(f"record {record['id']!r}: the 'oct' task needs a softmax model over the "
                         f'layers (K >= 2 channels), got K = {num_classes}')
    label = _check_labels(record['label'], num_classes, record['id'])
    boundaries = record.get('boundaries')
    if boundaries is None:
        boundaries = boundary_positions(label, num_classes - 1)
    sums, counts = boundary_error_sums(pred, boundaries)
    row = _boundary_scores(mae_from_sums(sums, counts))
    merged = (sums, counts) if state.boundary_sums is None else (
        state.boundary_sums + sums, state.boundary_counts + counts)
    return row, dataclasses.replace(state, boundary_sums=merged[0], boundary_counts=merged[1])


def figure_file_name(record_id: str) -> str:
    """A safe PNG file name for a record id ('img/01' -> 'img_01.png')."""
    return re.sub(r'[^A-Za-z0-9._-]+', '_', record_id) + '.png'


def evaluate_records(records: Iterable[Record], predict_probs_fn: Callable[[Record], np.ndarray], *,
                     task: str, paper_key: str | None = None, threshold: float = 0.5,
                     use_fov: bool = True, pooled_auc: str = 'exact', membrane_class: int = 1,
                     cell_thresholds: Sequence[float] = (),
                     figure_dir: str | Path | None = None,
                     extra_settings: Mapping[str, Any] | None = None) -> EvalResult:
    """Scores of every record and of the whole set for ``task`` (see module docstring).

    ``predict_probs_fn(record) -> probs (H, W, K)`` at the record's size; the class map is
    ``p > threshold`` (K = 1) or argmax. Binary tasks score inside ``record['fov']`` when
    ``use_fov``; 'vessel' adds AUC (its pooled form: 'exact', 'histogram' or 'none'). 'cell' scores
    label ``membrane_class`` as membrane and, given ``cell_thresholds``, also sweeps the
    membrane probability (challenge protocol). ``figure_dir``: one PNG per record.
    ``extra_settings`` (JSON-able, e.g. the TTA mode or checkpoint step) are kept with the result.
    """
    if task not in TASKS:
        raise ValueError(f'unknown task {task!r}; known: {sorted(TASKS)}')
    if pooled_auc not in POOLED_AUC_MODES:
        raise ValueError(f'pooled_auc must be one of {POOLED_AUC_MODES}, got {pooled_auc!r}')
    spec = TASKS[task]
    paper_key = paper_key or spec.default_paper_key  # None or '' = the task's default table
    if paper_key not in spec.paper:
        raise ValueError(f'no paper numbers {paper_key!r} for task {task!r}; known: {sorted(spec.paper)}')
    auc_mode = pooled_auc if task == 'vessel' else 'none'
    rows, state = [], PooledState()
    for record in records:
        record_id = str(record['id'])
        probs = np.asarray(predict_probs_fn(record), np.float32)
        label_shape = np.shape(record['label'])
        if probs.ndim != 3 or probs.shape[:2] != label_shape:
            raise ValueError(f'record {record_id!r}: predict_probs_fn must return (H, W, K) probabilities '
                             f'at the label size {label_shape}, got {probs.shape}')
        pred = np.asarray(predict_classes(probs, threshold=threshold))
        if spec.kind == 'binary':
            row, state = _binary_row(probs, pred, record, use_fov=use_fov, with_auc=task == 'vessel',
                                     pooled_auc=auc_mode, state=state)
        elif spec.kind == 'cell':
            row = _cell_row(probs, pred, record, membrane_class=membrane_class,
                            cell_thresholds=cell_thresholds)
        else:
            row, state = _oct_row_scores(probs, pred, record, state=state)
        rows.append({'id': record_id, **row})
        if figure_dir is not None:
            Path(figure_dir).mkdir(parents=True, exist_ok=True)
            fov = record.get('fov') if use_fov else None
            save_prediction_figure(Path(figure_dir) / figure_file_name(record_id), record['image'],
                                   np.asarray(record['label']), pred, probs=probs, fov=fov)
    settings = {'threshold': threshold, 'use_fov': use_fov, 'pooled_auc': auc_mode,
                'membrane_class': membrane_class, 'cell_thresholds': list(cell_thresholds),
                **(extra_settings or {})}
    return EvalResult(task, paper_key, tuple(rows), state, settings)


def merge_results(results: Sequence[EvalResult]) -> EvalResult:
    """One result from several (e.g. per-host) results of the same task and settings."""
    if not results:
        raise ValueError('merge_results needs at least one result')
    first = results[0]
    for other in results[1:]:
        if (other.task, other.paper_key, dict(other.settings)) != (first.task, first.paper_key,
                                                                   dict(first.settings)):
            raise ValueError(f'cannot merge results of different tasks or settings: '
                             f'{first.task}/{dict(first.settings)} vs {other.task}/{dict(other.settings)}')
    state, rows = first.state, list(first.rows)
    for other in results[1:]:
        state, rows = state.merge(other.state), rows + list(other.rows)
    return EvalResult(first.task, first.paper_key, tuple(rows), state, first.settings)


def cell_threshold_sweep(result: EvalResult) -> dict[str, float]:
    """Challenge protocol on a 'cell' result with ``cell_thresholds``: max over thresholds of the image means."""
    thresholds = result.settings.get('cell_thresholds') or []
    if result.task != 'cell' or not thresholds:
        return {}
    aggregate = result.aggregate
    best = {}
    for name in ('v_rand', 'v_info'):
        means = [aggregate[f'{name}@{t:g}'].mean for t in thresholds]
        index = int(np.nanargmax(means))
        best[name] = means[index]
        best[f'{name}_threshold'] = float(thresholds[index])
    return best


def _format_paper_value(value: PaperValue | None, digits: int) -> str:
    if value is None:
        return '-'
    if isinstance(value, tuple):
        return f'{value[0]:.{digits}f}±{value[1]:.{digits}f}'
    return f'{value:.{digits}f}'


def format_table(result: EvalResult, paper: PaperTable | None = None, digits: int = 4) -> str:
    """A markdown table in the paper's layout: the paper's rows, then ours (mean±std, pooled)."""
    spec = TASKS[result.task]
    paper = spec.paper[result.paper_key] if paper is None else paper
    metrics = spec.table_metrics
    header = '| Method | ' + ' | '.join(METRIC_LABELS.get(m, m) for m in metrics) + ' |'
    lines = [f'{result.task}: {result.paper_key}, {len(result.rows)} images '
             f'(paper: Gu et al. 2019, {spec.source})',
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


def result_to_bytes(result: EvalResult) -> bytes:
    """A self-contained binary form of a result (npz), e.g. to send to another host."""
    arrays: dict[str, np.ndarray] = {
        'meta': np.frombuffer(json.dumps({
            'task': result.task, 'paper_key': result.paper_key, 'settings': dict(result.settings),
            'rows': list(result.rows)}).encode(), np.uint8),
        'counts': result.state.counts.to_array(),
    }
    if result.state.scores is not None:
        arrays['scores'], arrays['score_labels'] = result.state.scores.arrays()
    if result.state.histogram is not None:
        arrays['hist_pos'], arrays['hist_neg'] = result.state.histogram.positives, result.state.histogram.negatives
    if result.state.boundary_sums is not None:
        arrays['boundary_sums'], arrays['boundary_counts'] = (result.state.boundary_sums,
                                                              result.state.boundary_counts)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def result_from_bytes(data: bytes) -> EvalResult:
    """Inverse of `result_to_bytes`."""
    with np.load(io.BytesIO(data)) as arrays:
        meta = json.loads(arrays['meta'].tobytes().decode())
        state = PooledState(
            counts=ConfusionCounts.from_array(arrays['counts']),
            scores=ScoreSet.from_arrays(arrays['scores'], arrays['score_labels'])
            if 'scores' in arrays else None,
            histogram=ScoreHistogram(arrays['hist_pos'], arrays['hist_neg']) if 'hist_pos' in arrays else None,
            boundary_sums=arrays['boundary_sums'] if 'boundary_sums' in arrays else None,
            boundary_counts=arrays['boundary_counts'] if 'boundary_counts' in arrays else None)
    return EvalResult(meta['task'], meta['paper_key'], tuple(meta['rows']), state, meta['settings'])


def gather_host_arrays(local: np.ndarray) -> list[np.ndarray]:
    """Every host's 1-D array (lengths may differ), in process order; [local] on one host."""
    local = np.asarray(local).reshape(-1)
    if jax.process_count() == 1:
        return [local]
    from jax.experimental import multihost_utils
    lengths = np.asarray(multihost_utils.process_allgather(np.int64(local.size)))
    padded = np.zeros(int(lengths.max()), local.dtype)
    padded[:local.size] = local
    gathered = np.asarray(multihost_utils.process_allgather(padded))
    return [gathered[i, :n] for i, n in enumerate(lengths.tolist())]


def gather_result(result: EvalResult) -> EvalResult:
    """The merge of every host's result (each host evaluated its own records), on every host."""
    if jax.process_count() == 1:
        return result
    parts = gather_host_arrays(np.frombuffer(result_to_bytes(result), np.uint8))
    return merge_results([result_from_bytes(part.tobytes()) for part in parts])
