"""Cup-to-disc ratio (CDR) from segmentation masks, and the experts' own spread.

The vertical CDR, the glaucoma reader's number, is the vertical diameter of the cup over that
of the disc. Each diameter is the row extent of the mask's largest connected region, so a few
stray pixels far from the disc do not stretch it. An empty disc has no CDR (NaN); an empty
cup inside a disc has CDR 0.

The human baseline beside a model's CDR error: for each expert, the absolute difference between
their CDR and the mean of the other experts' CDRs, averaged over the experts. It is the error an
expert makes against the others, comparable with the model's error against all of them.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def largest_region(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of a boolean (H, W) mask (all False if the mask is empty)."""
    mask = np.asarray(mask, bool)
    regions, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count <= 1:
        return mask
    sizes = np.bincount(regions.ravel())[1:]
    return regions == 1 + int(np.argmax(sizes))


def vertical_diameter(mask: np.ndarray) -> int:
    """Rows spanned by the largest region of a boolean (H, W) mask; 0 when it is empty."""
    rows = np.flatnonzero(largest_region(mask).any(axis=1))
    return int(rows[-1] - rows[0] + 1) if rows.size else 0


def vertical_cdr(disc: np.ndarray, cup: np.ndarray) -> float:
    """Vertical cup diameter / vertical disc diameter; NaN without a disc."""
    disc_rows = vertical_diameter(disc)
    return vertical_diameter(cup) / disc_rows if disc_rows else float('nan')


def expert_spread(values: np.ndarray) -> float:
    """Mean over experts of |expert's CDR - mean of the other experts' CDRs|; NaN for < 2 experts."""
    values = np.asarray(values, np.float64).ravel()
    if values.size < 2:
        return float('nan')
    others = (values.sum() - values) / (values.size - 1)
    return float(np.abs(values - others).mean())
