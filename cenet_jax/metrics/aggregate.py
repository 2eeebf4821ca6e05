"""Per-image scores to data-set summaries: mean, standard deviation and count.

The standard deviation is the sample one (ddof = 1), the convention of every spread the
project reports (over images, seeds and folds alike); it is undefined (NaN) for fewer than
2 scores. The authors' evaluation script prints ``np.std`` (ddof = 0) and the paper does not
say which it uses: over the 20 DRIVE test images the two differ by a factor sqrt(20/19) =
1.026. NaN scores (undefined for that image, e.g. a sensitivity without positives) are left
out, and ``n`` says how many images entered each summary.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Mapping, Sequence

import numpy as np

STD_DDOF = 1   # sample standard deviation


@dataclasses.dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (NaN for n < 2) of one score over ``n`` images."""

    mean: float
    std: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        """{'mean', 'std', 'n'} for JSON."""
        return dataclasses.asdict(self)

    def format(self, digits: int = 4) -> str:
        """'mean±std' (just the mean when n < 2), 'n/a' when no image had the score."""
        if self.n == 0:
            return 'n/a'
        if self.n < 2:
            return f'{self.mean:.{digits}f}'
        return f'{self.mean:.{digits}f}±{self.std:.{digits}f}'


def summarize_values(values: Iterable[float]) -> Summary:
    """Summary of a sequence of scores, NaN skipped."""
    array = np.asarray([v for v in values if not math.isnan(v)], np.float64)
    if array.size == 0:
        return Summary(float('nan'), float('nan'), 0)
    std = float(array.std(ddof=STD_DDOF)) if array.size > STD_DDOF else float('nan')
    return Summary(float(array.mean()), std, int(array.size))


def summarize(rows: Sequence[Mapping[str, float]], keys: Sequence[str]) -> dict[str, Summary]:
    """{key: Summary} over the rows (per-image score dicts) for each key."""
    missing = [k for k in keys if any(k not in row for row in rows)]
    if missing:
        raise KeyError(f'scores {missing} are missing from some per-image rows')
    return {key: summarize_values(float(row[key]) for row in rows) for key in keys}
