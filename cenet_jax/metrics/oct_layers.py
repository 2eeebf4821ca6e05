"""Retinal OCT layer boundaries: positions from class maps and mean absolute errors.

Convention: an OCT B-scan of H rows has layers 0..K-1 from top (vitreous) to bottom
(choroid) and K-1 boundaries (10 for the paper's 11 classes). In column x, boundary k
(k = 1..K-1) lies at the first row r whose class is >= k:
``position_k(x) = min{r : class(r, x) >= k}``, and at H (just below the image) when no
row of that column reaches class k, so a missing layer costs its distance to the bottom
rather than being skipped. Positions are therefore non-decreasing in k, even for
predictions with islands out of order. A ground-truth class map made from boundary rows
b_k as ``class(r) = #{k : r >= b_k}`` gives back ``ceil(b_k)``, i.e. integer b_k exactly.

The error of boundary k is the mean of |predicted - ground truth| over the columns whose
ground-truth position is finite (NaN = not annotated, ignored), in pixels. The paper's
"Overall" is the mean of the per-boundary errors (checked against its Table V: CE-Net
w/ Dice 1.37 ... 1.74 average to 1.68). Over a data set, `boundary_error_sums` gives
sums and column counts that add up exactly (pooled over all columns of all B-scans).
"""
from __future__ import annotations

import numpy as np


def boundary_positions(classmap: np.ndarray, num_boundaries: int) -> np.ndarray:
    """float64 (num_boundaries, W): row of boundary k = first row with class >= k (H if none)."""
    classmap = np.asarray(classmap)
    if classmap.ndim != 2:
        raise ValueError(f'classmap must be (H, W), got shape {classmap.shape}')
    height = classmap.shape[0]
    levels = np.arange(1, num_boundaries + 1)[:, None, None]
    reached = classmap[None] >= levels  # (B, H, W)
    first = np.argmax(reached, axis=1).astype(np.float64)
    return np.where(reached.any(axis=1), first, float(height))


def _check_boundaries(classmap: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
    boundaries = np.asarray(boundaries, np.float64)
    if boundaries.ndim != 2 or boundaries.shape[1] != np.shape(classmap)[1]:
        raise ValueError(f'boundaries must be (num_boundaries, W) with W = {np.shape(classmap)[1]} '
                         f'columns of the class map {np.shape(classmap)}, got {boundaries.shape}')
    return boundaries


def boundary_error_sums(pred_classmap: np.ndarray,
                        boundaries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per boundary: sum of |error| (float64) and count of annotated columns (int64)."""
    boundaries = _check_boundaries(pred_classmap, boundaries)
    predicted = boundary_positions(pred_classmap, boundaries.shape[0])
    annotated = np.isfinite(boundaries)
    errors = np.where(annotated, np.abs(predicted - np.where(annotated, boundaries, 0.0)), 0.0)
    return errors.sum(axis=1), annotated.sum(axis=1).astype(np.int64)


def mae_from_sums(error_sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-boundary mean absolute error from sums and counts; NaN where nothing was annotated."""
    counts = np.asarray(counts)
    return np.where(counts > 0, np.asarray(error_sums) / np.maximum(counts, 1), np.nan)


def boundary_mae(pred_classmap: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
    """float64 (num_boundaries,): MAE in pixels of each boundary vs ground truth (num_boundaries, W)."""
    return mae_from_sums(*boundary_error_sums(pred_classmap, boundaries))


def overall_mae(per_boundary_mae: np.ndarray) -> float:
    """The paper's "Overall": the mean of the per-boundary MAEs (NaN entries skipped)."""
    values = np.asarray(per_boundary_mae, np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float('nan')
