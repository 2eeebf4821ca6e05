"""ISBI 2012 cell-contour scores: V_Rand and V_Info after border thinning.

Definitions (Arganda-Carreras et al., Front. Neuroanat. 2015) as computed by the
challenge's evaluation (Fiji, Trainable Weka Segmentation ``RandError`` /
``VariationOfInformation.getMaximal*AfterThinning``, "N^2 normalization"):

1. Ground truth cells: 4-connected components of the non-membrane pixels; membrane
   pixels of the ground truth are left out of every count (foreground restriction).
2. Predicted cells after border thinning: the predicted membrane is flooded from the
   predicted cells (4-connected components of the non-membrane pixels) by the classic
   Vincent-Soille watershed with 4-connectivity, FIFO order and the scan order of
   ``WatershedTransform2D`` (columns outer, rows inner; neighbours left, up, right,
   down). Each membrane pixel joins the cell that reaches it first; where two cells meet
   a 1-pixel watershed line (label 0) remains. Membrane components that touch no cell
   become cells of their own (an all-membrane prediction is one cell).
3. Contingency table n_ij over the ground-truth foreground pixels (n of them) between
   ground-truth cell i and predicted cell j; every watershed-line pixel inside the
   ground-truth foreground is a predicted segment of its own (a singleton).
4. With t_i, s_j the row / column sums (T = ground truth, S = prediction):
   ``V_Rand = 2 sum n_ij^2 / (sum t_i^2 + sum s_j^2)``, with ``rand_split =
   sum n_ij^2 / sum t_i^2`` and ``rand_merge = sum n_ij^2 / sum s_j^2``; pairs are
   counted with self-pairs (n^2 normalisation). ``V_Info = 2 I(S;T) / (H(S) + H(T))``,
   ``info_split = I / H(S)``, ``info_merge = I / H(T)``, entropies in nats.

Where this differs from the challenge: (a) the challenge thresholds a probability map at
0.0, 0.1, ..., 1.0 and reports the maximum over thresholds of the slice-averaged score;
`rand_info_scores` scores one binary map and `rand_info_over_thresholds` reproduces the
sweep on membrane probabilities (membrane where p > t, t = 0.1 ... 0.9 by default; Fiji's
proposal is a cell probability, cell where p_cell > t, so its t is our 1 - t up to
equality at the cut, and its end points 0.0 / 1.0 are left out). (b) When either entropy
is 0 Fiji returns V_Info = 0; here two single-segment maps (both entropies 0) score 1.0,
one zero entropy still scores 0. (c) An empty ground truth foreground (all membrane)
gives NaN.

Relation to scikit-image: ``adapted_rand_error(gt, pred)`` builds the same contingency
table when given these label images (singletons relabelled to distinct ids, gt membrane
= 0 ignored) but counts pairs without self-pairs (``sum n_ij^2 - n`` etc.), so its
``1 - are`` is a little lower; ``count_self_pairs=False`` in `segmentation_scores`
reproduces it exactly. scikit-image does no component labelling or thinning.
``variation_of_information(gt, pred)`` returns [H(S|T), H(T|S)] (false splits, false
merges; bits), identical to ``h_pred_given_gt`` / ``h_gt_given_pred`` here (nats) on the
same table.
"""
from __future__ import annotations

import collections
from typing import Sequence

import numpy as np
from scipy import ndimage

from cenet_jax.metrics.arrays import as_binary, check_same_shape

FOUR_CONNECTIVITY = ndimage.generate_binary_structure(2, 1)
DEFAULT_THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(1, 10))

_WATERSHED_LINE = 0
_MASK = -2
_IN_QUEUE = -3
_OUTSIDE = -4


def cell_labels(membrane: np.ndarray) -> np.ndarray:
    """int32 (H, W): 4-connected components of the non-membrane pixels, 0 on membrane."""
    cells, _ = ndimage.label(~as_binary(membrane, 'membrane'), structure=FOUR_CONNECTIVITY)
    return cells.astype(np.int32)


def thin_membrane(membrane: np.ndarray) -> np.ndarray:
    """Cell labels after border thinning (Fiji's watershed, see module docstring); 0 = line.

    membrane: (H, W) binary, 1 = membrane. Returns int32 (H, W).
    """
    membrane = as_binary(membrane, 'membrane')
    if membrane.ndim != 2:
        raise ValueError(f'membrane must be a 2-D map, got shape {membrane.shape}')
    height, width = membrane.shape
    cells = cell_labels(membrane)
    stride = width + 2
    padded = np.full((height + 2, width + 2), _OUTSIDE, np.int64)
    padded[1:-1, 1:-1] = np.where(membrane, _MASK, cells)
    # Membrane pixels next to a cell start the flooding, in Fiji's column-major scan order.
    touches_cell = np.zeros_like(membrane)
    for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
        neighbour_is_cell = np.roll(cells > 0, shift, axis=axis)
        edge = [slice(None), slice(None)]
        edge[axis] = 0 if shift == 1 else -1
        neighbour_is_cell[tuple(edge)] = False
        touches_cell |= neighbour_is_cell
    touches_cell &= membrane
    cols, rows = np.nonzero(touches_cell.T)
    start = ((rows + 1) * stride + cols + 1).tolist()
    labels = padded.reshape(-1).tolist()
    for index in start:
        labels[index] = _IN_QUEUE
    _flood(labels, collections.deque(start), (-1, -stride, 1, stride))
    flooded = np.asarray(labels, np.int64).reshape(height + 2, width + 2)[1:-1, 1:-1]
    unreached = flooded == _MASK
    if unreached.any():
        extra, _ = ndimage.label(unreached, structure=FOUR_CONNECTIVITY)
        flooded = np.where(unreached, extra + cells.max(), flooded)
    return flooded.astype(np.int32)


def _flood(labels: list[int], fifo: collections.deque, offsets: tuple[int, ...]) -> None:
    """Vincent-Soille flooding of one plateau, line by line as in Fiji's WatershedTransform2D."""
    flag = False
    while fifo:
        p = fifo.popleft()
        for offset in offsets:
            q = p + offset
            label_q = labels[q]
            if label_q > 0:
                label_p = labels[p]
                if label_p == _IN_QUEUE or (label_p == _WATERSHED_LINE and flag):
                    labels[p] = label_q
                elif label_p > 0 and label_p != label_q:
                    labels[p] = _WATERSHED_LINE
                    flag = False
            elif label_q == _WATERSHED_LINE:
                if labels[p] == _IN_QUEUE:
                    labels[p] = _WATERSHED_LINE
                    flag = True
            elif label_q == _MASK:
                labels[q] = _IN_QUEUE
                fifo.append(q)


def _entropy(counts: np.ndarray, total: int) -> float:
    """-sum (c/n) log(c/n) over the positive counts, in nats."""
    probs = counts[counts > 0].astype(np.float64) / total
    return float(-np.sum(probs * np.log(probs)))


def segmentation_scores(gt_cells: np.ndarray, pred_cells: np.ndarray, *,
                        count_self_pairs: bool = True) -> dict[str, float]:
    """Rand and information scores of two label images (see module docstring, step 3-4).

    gt_cells: int (H, W), 0 = ground-truth boundary (left out). pred_cells: int (H, W),
    0 = predicted boundary line (each such pixel is its own segment).
    ``count_self_pairs=False`` gives scikit-image's ``adapted_rand_error`` convention.
    """
    check_same_shape(gt_cells, 'gt_cells', pred_cells=pred_cells)
    gt_cells, pred_cells = np.asarray(gt_cells), np.asarray(pred_cells)
    if gt_cells.min(initial=0) < 0 or pred_cells.min(initial=0) < 0:
        raise ValueError('cell labels must be non-negative integers')
    foreground = gt_cells > 0
    gt = gt_cells[foreground].astype(np.int64)
    pred = pred_cells[foreground].astype(np.int64)
    n = gt.size
    keys = ('v_rand', 'v_info', 'rand_split', 'rand_merge', 'info_split', 'info_merge',
            'h_gt', 'h_pred', 'h_gt_given_pred', 'h_pred_given_gt')
    if n == 0:
        return dict.fromkeys(keys, float('nan'))
    on_line = pred == 0
    singletons = int(np.count_nonzero(on_line))
    pair_keys = gt[~on_line] * (int(pred.max()) + 1) + pred[~on_line]
    joint = np.unique(pair_keys, return_counts=True)[1].astype(np.int64)
    gt_sizes = np.bincount(gt)
    pred_sizes = np.bincount(pred[~on_line])
    ones = np.ones(singletons, np.int64)

    self_pairs = 0 if count_self_pairs else n
    sum_joint2 = float(joint @ joint) + singletons - self_pairs
    sum_gt2 = float(gt_sizes @ gt_sizes) - self_pairs
    sum_pred2 = float(pred_sizes @ pred_sizes) + singletons - self_pairs

    h_gt = _entropy(gt_sizes, n)
    h_pred = _entropy(np.concatenate([pred_sizes, ones]), n)
    h_joint = _entropy(np.concatenate([joint, ones]), n)
    mutual = max(h_gt + h_pred - h_joint, 0.0)
    if h_gt == 0.0 and h_pred == 0.0:
        info_split = info_merge = v_info = 1.0
    elif h_gt == 0.0 or h_pred == 0.0:
        info_split = mutual / h_pred if h_pred > 0 else 1.0
        info_merge = mutual / h_gt if h_gt > 0 else 1.0
        v_info = 0.0
    else:
        info_split, info_merge = mutual / h_pred, mutual / h_gt
        v_info = 2.0 * mutual / (h_gt + h_pred)
    return {
        'v_rand': 2.0 * sum_joint2 / (sum_gt2 + sum_pred2) if sum_gt2 + sum_pred2 > 0 else 1.0,
        'v_info': v_info,
        'rand_split': sum_joint2 / sum_gt2 if sum_gt2 > 0 else 1.0,
        'rand_merge': sum_joint2 / sum_pred2 if sum_pred2 > 0 else 1.0,
        'info_split': info_split,
        'info_merge': info_merge,
        'h_gt': h_gt,
        'h_pred': h_pred,
        'h_gt_given_pred': h_joint - h_pred,
        'h_pred_given_gt': h_joint - h_gt,
    }


def rand_info_scores(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """V_Rand, V_Info (and their split / merge parts) of a binary membrane prediction.

    pred, labels: (H, W) binary, 1 = membrane. Ground-truth cells are the 4-connected
    non-membrane regions; the prediction is border-thinned first (module docstring).
    """
    check_same_shape(labels, 'labels', pred=pred)
    return segmentation_scores(cell_labels(labels), thin_membrane(pred))


def rand_info_over_thresholds(membrane_probs: Sequence[np.ndarray],
                              labels: Sequence[np.ndarray],
                              thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> dict[str, float]:
    """The challenge protocol: per threshold the image-mean V_Rand / V_Info, then the max of each.

    membrane_probs: per image (H, W) membrane probabilities; labels: per image binary
    membrane maps. Returns v_rand, v_info and the threshold that gave each.
    """
    if len(membrane_probs) != len(labels) or not labels:
        raise ValueError(f'need as many probability maps as labels (>0), got '
                         f'{len(membrane_probs)} and {len(labels)}')
    means = []
    for threshold in thresholds:
        per_image = [rand_info_scores(np.asarray(p) > threshold, y)
                     for p, y in zip(membrane_probs, labels)]
        means.append((np.mean([s['v_rand'] for s in per_image]),
                      np.mean([s['v_info'] for s in per_image])))
    best_rand = int(np.argmax([m[0] for m in means]))
    best_info = int(np.argmax([m[1] for m in means]))
    return {'v_rand': float(means[best_rand][0]), 'v_rand_threshold': float(thresholds[best_rand]),
            'v_info': float(means[best_info][1]), 'v_info_threshold': float(thresholds[best_info])}
