"""Binary overlap and pixel scores from confusion counts (E, Dice, IoU, Acc, Sen, Spec).

`ConfusionCounts` holds the four pixel counts of a binary segmentation (inside an optional
mask such as the DRIVE field of view). Counts are exact integers that add over images,
batches and hosts (`add`, `merge`, `to_array` / `from_array` for an all-reduce), so a
sharded evaluation gives the single-host numbers exactly.

Conventions (S = predicted foreground, G = ground-truth foreground):
- ``iou = TP / (TP + FP + FN)``, ``E = 1 - iou`` (overlap error, Eq. 4),
  ``dice = 2 TP / (2 TP + FP + FN)``. When S and G are both empty the segmentations agree
  perfectly: iou = dice = 1, E = 0.
- ``acc = (TP + TN) / total`` (Eq. 6), ``sen = TP / (TP + FN)`` (Eq. 5),
  ``spec = TN / (TN + FP)``. A rate whose denominator is 0 (no pixel, no positive, no
  negative) is undefined and reported as NaN; aggregates skip NaN and report counts.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from cenet_jax.metrics.arrays import as_binary, check_same_shape, optional_mask

BINARY_SCORE_NAMES = ('E', 'dice', 'iou', 'acc', 'sen', 'spec')


def _rate(numerator: int, denominator: int, undefined: float) -> float:
    return numerator / denominator if denominator > 0 else undefined


@dataclasses.dataclass(frozen=True)
class ConfusionCounts:
    """Pixel counts of a binary segmentation: true/false positives/negatives."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @classmethod
    def from_predictions(cls, pred: np.ndarray, labels: np.ndarray,
                         mask: np.ndarray | None = None) -> ConfusionCounts:
        """Counts of binary ``pred`` against binary ``labels`` over the pixels inside ``mask``."""
        check_same_shape(labels, 'labels', pred=pred, mask=mask)
        inside = optional_mask(mask, np.shape(labels))
        pred = as_binary(pred, 'pred') & inside
        labels = as_binary(labels, 'labels') & inside
        tp = int(np.count_nonzero(pred & labels))
        fp = int(np.count_nonzero(pred)) - tp
        fn = int(np.count_nonzero(labels)) - tp
        tn = int(np.count_nonzero(inside)) - tp - fp - fn
        return cls(tp, fp, fn, tn)

    def add(self, pred: np.ndarray, labels: np.ndarray,
            mask: np.ndarray | None = None) -> ConfusionCounts:
        """New counts including one more prediction (an image or a batch)."""
        return self.merge(ConfusionCounts.from_predictions(pred, labels, mask))

    def merge(self, other: ConfusionCounts) -> ConfusionCounts:
        """The sum of two sets of counts (e.g. two hosts' shards)."""
        return ConfusionCounts(self.tp + other.tp, self.fp + other.fp,
                               self.fn + other.fn, self.tn + other.tn)

    def to_array(self) -> np.ndarray:
        """int64 (4,) [tp, fp, fn, tn], for summing across hosts."""
        return np.array([self.tp, self.fp, self.fn, self.tn], np.int64)

    @classmethod
    def from_array(cls, counts: np.ndarray) -> ConfusionCounts:
        """Inverse of `to_array` (accepts the sum of several hosts' arrays)."""
        tp, fp, fn, tn = (int(c) for c in np.asarray(counts).reshape(4))
        return cls(tp, fp, fn, tn)

    @property
    def total(self) -> int:
        """Number of counted pixels."""
        return self.tp + self.fp + self.fn + self.tn

    def scores(self) -> dict[str, float]:
        """E, dice, iou, acc, sen, spec with the module's empty-set conventions."""
        union = self.tp + self.fp + self.fn
        iou = _rate(self.tp, union, undefined=1.0)
        return {
            'E': 1.0 - iou,
            'dice': _rate(2 * self.tp, union + self.tp, undefined=1.0),
            'iou': iou,
            'acc': _rate(self.tp + self.tn, self.total, undefined=float('nan')),
            'sen': _rate(self.tp, self.tp + self.fn, undefined=float('nan')),
            'spec': _rate(self.tn, self.tn + self.fp, undefined=float('nan')),
        }


def binary_scores(pred: np.ndarray, labels: np.ndarray,
                  mask: np.ndarray | None = None) -> dict[str, float]:
    """E, dice, iou, acc, sen, spec of binary ``pred`` vs ``labels`` inside ``mask``."""
    return ConfusionCounts.from_predictions(pred, labels, mask).scores()
