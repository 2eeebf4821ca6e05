"""Input checks shared by the metrics: binary maps, matching shapes, optional masks."""
from __future__ import annotations

import numpy as np


def as_binary(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` as a bool array; raises if it holds values other than 0/1 (or bool)."""
    array = np.asarray(array)
    if array.dtype == bool:
        return array
    if not ((array == 0) | (array == 1)).all():
        raise ValueError(f'{name} must be binary (0/1 or bool), got values {np.unique(array)[:10]}')
    return array.astype(bool)


def check_same_shape(reference: np.ndarray, reference_name: str, **others: np.ndarray | None) -> None:
    """Raises naming the culprit when any non-None array in ``others`` differs in shape."""
    for name, array in others.items():
        if array is not None and np.shape(array) != np.shape(reference):
            raise ValueError(f'{name} has shape {np.shape(array)}, expected the shape of '
                             f'{reference_name} {np.shape(reference)}')


def optional_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """A bool mask of ``shape``: ``mask`` checked and converted, or all True when None."""
    if mask is None:
        return np.ones(shape, bool)
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f'mask has shape {mask.shape}, expected {shape}')
    return mask.astype(bool)
