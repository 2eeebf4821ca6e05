"""Label conventions: raw label pixels -> integer class maps, and OCT boundaries -> class maps.

Binary tasks (num_classes == 2) give {0, 1} maps: a pixel is foreground when it equals
`foreground_value`, or (when that is -1) when it is >= `threshold`; `invert` swaps the two
(e.g. ISBI 2012, whose label files mark membranes with 0). Multi-class tasks read class ids
directly, or map the raw values listed in `class_values` to 0..K-1 in that order.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from cenet_jax.data.errors import DataError


@dataclasses.dataclass(frozen=True)
class LabelSpec:
    """How to turn raw label pixels into class ids; plain values so it pickles into workers."""
    num_classes: int = 2
    foreground_value: int = -1
    threshold: int = 128
    invert: bool = False
    class_values: tuple[int, ...] = ()

    def __post_init__(self):
        if self.num_classes < 2:
            raise DataError(f'num_classes must be >= 2 (2 = binary), got {self.num_classes}')
        if self.class_values and len(self.class_values) != self.num_classes:
            raise DataError(f'class_values {self.class_values} must list exactly num_classes='
                            f'{self.num_classes} raw values (one per class)')

    @property
    def binary(self) -> bool:
        """True for two-class tasks, whose labels are thresholded / matched rather than read as ids."""
        return self.num_classes == 2 and not self.class_values


def to_class_map(raw: np.ndarray, spec: LabelSpec, where: str) -> np.ndarray:
    """Apply the label convention of `spec` to a raw (H, W) label; `where` names the file in errors."""
    if spec.binary:
        return _binary_class_map(raw, spec, where)
    if spec.class_values:
        lookup = {value: index for index, value in enumerate(spec.class_values)}
        present = np.unique(raw)
        unknown = [int(v) for v in present if int(v) not in lookup]
        if unknown:
            raise DataError(f'{where}: label values {unknown[:10]} are not in class_values '
                            f'{list(spec.class_values)}')
        classes = np.zeros(raw.shape, np.int32)
        for value in present:
            classes[raw == value] = lookup[int(value)]
        return classes
    if not np.issubdtype(raw.dtype, np.integer) and not np.all(np.equal(np.mod(raw, 1), 0)):
        raise DataError(f'{where}: multi-class label must hold integer class ids, got non-integer '
                        f'values of dtype {raw.dtype}')
    low, high = int(raw.min()), int(raw.max())
    if low < 0 or high >= spec.num_classes:
        raise DataError(f'{where}: label values span [{low}, {high}], expected class ids in '
                        f'[0, {spec.num_classes - 1}] (num_classes={spec.num_classes}); set '
                        f'--config.data.num_classes or --config.data.class_values')
    classes = raw.astype(np.int32)
    if spec.invert:
        classes = (spec.num_classes - 1) - classes
    return classes


def _binary_class_map(raw: np.ndarray, spec: LabelSpec, where: str) -> np.ndarray:
    """Binary branch of `to_class_map`, with a hint when a {0, 1} mask meets the default threshold."""
    if spec.foreground_value >= 0:
        foreground = raw == spec.foreground_value
    else:
        foreground = raw >= spec.threshold
        if not foreground.any() and raw.max() > 0 and np.unique(raw).size <= 2:
            raise DataError(f'{where}: binary label has values {np.unique(raw).tolist()} but '
                            f'label_threshold={spec.threshold} marks nothing as foreground; set '
                            f'--config.data.label_threshold={int(raw.max())} (or foreground_value)')
    if spec.invert:
        foreground = ~foreground
    return foreground.astype(np.int32)


def boundaries_to_class_map(boundaries: np.ndarray, height: int) -> np.ndarray:
    """OCT layer map from boundary rows: class k lies between boundary k and k+1 (1-based).

    `boundaries` is (num_boundaries, W), the row of each boundary in each column; row r of
    column c gets class = number of boundaries with position <= r, so class 0 is above the
    first boundary and class num_boundaries below the last. NaN boundaries count as absent.
    """
    rows = np.arange(height, dtype=np.float32)[None, :, None]
    positions = np.asarray(boundaries, np.float32)[:, None, :]
    with np.errstate(invalid='ignore'):
        return (rows >= positions).sum(axis=0, dtype=np.int32)


def valid_boundary_columns(boundaries: np.ndarray) -> np.ndarray:
    """(W,) bool: columns where every boundary is annotated (finite); others are left out of FOV."""
    return np.isfinite(np.asarray(boundaries, np.float32)).all(axis=0)
