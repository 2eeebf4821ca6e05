"""Scoring: per-image scores and pooled data-set accumulators of a task, from evaluation records
and their predicted probabilities (`evaluate_records` -> `EvalResult`).

`evaluate_records` turns evaluation records (see docs/architecture.md) and a
``predict_probs_fn(record) -> probs (H, W, K)`` at the record's own size into an
`EvalResult`: one row of scores per image, per-image mean ± std (sample std, ddof = 1, see
`cenet_jax.metrics.aggregate`) and pooled data-set scores (confusion counts summed over
all evaluated pixels, exact AUC over all pixels, OCT errors over all columns).

Which number the paper reports: its tables give mean ± std over test images (Tables I,
III, VI) and its DRIVE Table II values round to the Table VI means (0.9545 -> 0.955,
0.9779 -> 0.978); the authors' ``test_cenet.py`` prints the per-image mean (and
``np.std``, ddof = 0) of Acc, Sen and AUC. So the per-image mean is what we set beside the paper
(with the sample std, ddof = 1, as every spread of this project);
pooled scores are printed as well because DRIVE papers often pool over all FOV pixels.
The authors' script scores all pixels of the image, not the FOV; the DRIVE convention
(and our default, ``use_fov=True``) is the FOV.

TTA uncertainty: a record that carries ``'uncertainty'`` (the per-pixel std of the TTA views'
probabilities, see `evaluation.predict`) adds two per-image scores, ``uncertainty`` (its mean
over the scored pixels) and ``uncertainty_auc`` (how well it ranks the wrongly classified
pixels above the right ones: the AUC of std against error, NaN for an image without errors),
and the pooled `EvalResult.uncertainty`: that AUC over all scored pixels of the set, from a
2^16-bin histogram of the std (its largest possible deviation from the exact AUC is reported).
"""
from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from cenet_jax.disk import write_atomic
from cenet_jax.evaluation.tasks import TASKS
from cenet_jax.data.soft_labels import CUP
from cenet_jax.figures import save_disc_cup_figure, save_prediction_figure
from cenet_jax.losses import predict_classes
from cenet_jax.metrics import (ConfusionCounts, ScoreHistogram, ScoreSet,
                               Summary, auc, boundary_error_sums, boundary_positions, expert_spread,
                               mae_from_sums, overall_mae, rand_info_scores, summarize, vertical_cdr)

Record = Mapping[str, Any]

CELL_SCORE_NAMES = ('v_rand', 'v_info', 'rand_split', 'rand_merge', 'info_split', 'info_merge')
POOLED_AUC_MODES = ('exact', 'histogram', 'none')


@dataclasses.dataclass(frozen=True)
class PooledState:
    """Data-set accumulators that add exactly across images and hosts."""

    counts: ConfusionCounts = ConfusionCounts()
    scores: ScoreSet | None = None
    histogram: ScoreHistogram | None = None
    boundary_sums: np.ndarray | None = None      # (B,) float64 sum of |error|
    boundary_counts: np.ndarray | None = None    # (B,) int64 annotated columns
    uncertainty: ScoreHistogram | None = None    # TTA std / UNCERTAINTY_MAX, positives = errors

    def merge(self, other: PooledState) -> PooledState:
        """The sum of two states of the same task and settings."""
        def join(a, b, combine):
            return b if a is None else a if b is None else combine(a, b)
        return PooledState(
            counts=self.counts.merge(other.counts),
            scores=join(self.scores, other.scores, ScoreSet.merge),
            histogram=join(self.histogram, other.histogram, ScoreHistogram.merge),
            boundary_sums=join(self.boundary_sums, other.boundary_sums, np.add),
            boundary_counts=join(self.boundary_counts, other.boundary_counts, np.add),
            uncertainty=join(self.uncertainty, other.uncertainty, ScoreHistogram.merge))


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
        """Per-image mean, sample std and count of every score."""
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


    @property
    def uncertainty(self) -> dict[str, float]:
        """Pooled TTA uncertainty against errors, over every scored pixel: `pixel_auc` (AUC of
        the per-pixel std against the per-pixel error), its bound `pixel_auc_max_error`, the
        mean std of the wrong and of the right pixels, `wrong_in_top_5pct` (the share of the
        wrong pixels among the 5 % most uncertain ones), and the pixel counts; {} without it."""
        hist = self.state.uncertainty
        if hist is None:
            return {}
        centres = (np.arange(hist.positives.size) + 0.5) / hist.positives.size * UNCERTAINTY_MAX
        wrong, right = int(hist.positives.sum()), int(hist.negatives.sum())
        # The share of the wrong pixels among the most uncertain 5 % (from the top bin down).
        flagged = np.cumsum((hist.positives + hist.negatives)[::-1])
        top = int(np.searchsorted(flagged, TOP_FRACTION * (wrong + right)))
        caught = int(hist.positives[::-1][:top + 1].sum())
        return {'pixel_auc': hist.auc(), 'pixel_auc_max_error': hist.max_error(),
                'mean_std_wrong': float(centres @ hist.positives / wrong) if wrong else float('nan'),
                'mean_std_right': float(centres @ hist.negatives / right) if right else float('nan'),
                'wrong_in_top_5pct': caught / wrong if wrong else float('nan'),
                'wrong_pixels': wrong, 'pixels': wrong + right}


UNCERTAINTY_MAX = 0.5   # the largest std of values in [0, 1]: the histogram's range
TOP_FRACTION = 0.05     # `wrong_in_top_5pct`: the errors among this fraction of most uncertain pixels


def _uncertainty_row(std: np.ndarray, pred: np.ndarray, record: Record, mask: np.ndarray | None,
                     state: PooledState) -> tuple[dict[str, float], PooledState]:
    """Per-image TTA uncertainty scores and the pooled histogram with this image added."""
    std = np.asarray(std, np.float32)
    if std.shape != pred.shape:
        raise ValueError(f"record {record['id']!r}: 'uncertainty' must be (H, W) like the label, "
                         f'got {std.shape}')
    wrong = pred != np.asarray(record['label'])
    inside = np.ones(std.shape, bool) if mask is None else np.asarray(mask, bool)
    row = {'uncertainty': float(std[inside].mean()) if inside.any() else float('nan'),
           'uncertainty_auc': auc(std, wrong, inside)}
    scaled = np.clip(std / UNCERTAINTY_MAX, 0.0, 1.0)
    hist = (state.uncertainty or ScoreHistogram.empty()).add(scaled, wrong, inside)
    return row, dataclasses.replace(state, uncertainty=hist)


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


def on_full_image(pred: np.ndarray, record: Record) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, label) on the whole image: a record cut out of a larger image (the disc crop:
    'crop_box' and 'full_label') has its prediction pasted into an empty full-size map, so ground
    truth outside the crop counts as missed; any other record is returned as it is."""
    if 'full_label' not in record:
        return pred, np.asarray(record['label'])
    top, left, bottom, right = (int(v) for v in record['crop_box'])
    full_label = np.asarray(record['full_label'])
    canvas = np.zeros(full_label.shape, pred.dtype)
    canvas[top:bottom, left:right] = pred
    return canvas, full_label


def _binary_row(probs, pred, record, *, use_fov, with_auc, pooled_auc, state):
    record_id = record['id']
    if 'full_label' in record:   # a disc crop: overlap scores on the whole image (no AUC, no FOV)
        full_pred, full_label = on_full_image(pred, record)
        counts = ConfusionCounts.from_predictions(full_pred == 1, _check_labels(full_label, 2, record_id) == 1)
        return counts.scores(), dataclasses.replace(state, counts=state.counts.merge(counts))
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


def _disc_cup_row(probs, pred, record):
    """E and Dice of disc (rim + cup) and cup on the whole image, the predicted vertical CDR and,
    where the record has the experts' CDRs, its error against their mean and their own spread."""
    if probs.shape[-1] != 3:
        raise ValueError(f"record {record['id']!r}: the 'disc_cup' task needs a softmax model over "
                         f'background, rim and cup (K = 3), got K = {probs.shape[-1]}')
    full_pred, full_label = on_full_image(pred, record)
    full_label = _check_labels(full_label, 3, record['id'])
    row: dict[str, float] = {}
    for name, pred_mask, true_mask in (('disc', full_pred > 0, full_label > 0),
                                       ('cup', full_pred == CUP, full_label == CUP)):
        scores = ConfusionCounts.from_predictions(pred_mask, true_mask).scores()
        row[f'E_{name}'], row[f'dice_{name}'] = scores['E'], scores['dice']
    row['cdr'] = vertical_cdr(pred > 0, pred == CUP)
    experts = record.get('cdr_experts')
    nan = float('nan')
    row['cdr_experts'] = float(np.mean(experts)) if experts is not None else nan
    row['cdr_error'] = abs(row['cdr'] - row['cdr_experts']) if experts is not None else nan
    row['cdr_expert_spread'] = expert_spread(experts) if experts is not None else nan
    row['cdr_from_label'] = vertical_cdr(full_label > 0, full_label == CUP)
    return row


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
                     uncertainty_dir: str | Path | None = None,
                     extra_settings: Mapping[str, Any] | None = None) -> EvalResult:
    """Scores of every record and of the whole set for ``task`` (see module docstring).

    ``predict_probs_fn(record) -> probs (H, W, K)`` at the record's size; the class map is
    ``p > threshold`` (K = 1) or argmax. Binary tasks score inside ``record['fov']`` when
    ``use_fov``; 'vessel' adds AUC (its pooled form: 'exact', 'histogram' or 'none'). 'cell' scores
    label ``membrane_class`` as membrane and, given ``cell_thresholds``, also sweeps the
    membrane probability (challenge protocol). ``figure_dir``: one PNG per record (with an
    uncertainty panel when the record carries one); ``uncertainty_dir``: its map as ``<id>.npy``.
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
        elif spec.kind == 'disc_cup':
            row = _disc_cup_row(probs, pred, record)
        elif spec.kind == 'cell':
            row = _cell_row(probs, pred, record, membrane_class=membrane_class,
                            cell_thresholds=cell_thresholds)
        else:
            row, state = _oct_row_scores(probs, pred, record, state=state)
        std = record.get('uncertainty')
        if std is not None:
            mask = record.get('fov') if use_fov and spec.kind == 'binary' else None
            extra, state = _uncertainty_row(std, pred, record, mask, state)
            row = {**row, **extra}
        rows.append({'id': record_id, **row})
        if figure_dir is not None and spec.kind == 'disc_cup':
            save_disc_cup_figure(Path(figure_dir) / figure_file_name(record_id), record['image'],
                                 np.asarray(record['label']), pred, caption=_disc_cup_caption(row),
                                 uncertainty=std)
        elif figure_dir is not None:
            fov = record.get('fov') if use_fov else None
            save_prediction_figure(Path(figure_dir) / figure_file_name(record_id), record['image'],
                                   np.asarray(record['label']), pred, probs=probs, fov=fov,
                                   fov_derived=record.get('fov_source') == 'derived',
                                   uncertainty=std)
        if uncertainty_dir is not None and std is not None:
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(std, np.float32))
            write_atomic(Path(uncertainty_dir) / (figure_file_name(record_id)[:-4] + '.npy'),
                         buffer.getvalue())
    settings = {'threshold': threshold, 'use_fov': use_fov, 'pooled_auc': auc_mode,
                'membrane_class': membrane_class, 'cell_thresholds': list(cell_thresholds),
                **(extra_settings or {})}
    return EvalResult(task, paper_key, tuple(rows), state, settings)


def _disc_cup_caption(row: Mapping[str, float]) -> str:
    """The figure's caption: the image's disc and cup Dice and its CDR against the experts'."""
    caption = f"Dice disc {row['dice_disc']:.3f} cup {row['dice_cup']:.3f}; CDR {row['cdr']:.2f}"
    if not np.isnan(row['cdr_experts']):
        caption += f" / {row['cdr_experts']:.2f}"
    return caption


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
