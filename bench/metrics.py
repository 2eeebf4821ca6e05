"""Timing of the evaluation metrics at data-set scale (median of several runs).

- ``auc`` over 20 x 565 x 584 pixels (the DRIVE test set at full size), float32 scores,
  against ``sklearn.metrics.roc_auc_score`` when scikit-learn is installed;
- the fixed-bin ``ScoreHistogram`` AUC on the same pixels, its error and its bound;
- ``rand_info_scores`` (thinning + V_Rand + V_Info) on a 512 x 512 membrane map: an ISBI
  2012 training label when ../shared/datasets is present, else a synthetic Voronoi map.

Run from the repository root: ``python bench/metrics.py [--repeats 5]``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.timing import first_and_median  # noqa: E402
from cenet_jax import metrics  # noqa: E402

DATASETS = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'datasets'
ISBI_LABEL = DATASETS / 'ISBI2012_EM' / 'train' / 'label' / '0.png'


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls (after one warm-up call)."""
    return first_and_median(fn, repeats)[1]


def drive_sized_scores(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Informative float32 scores and ~12 % positive labels shaped like the DRIVE test set."""
    rng = np.random.default_rng(seed)
    labels = rng.random((20, 584, 565)) < 0.12
    scores = np.clip(0.35 * labels + rng.random(labels.shape) * 0.7, 0, 1).astype(np.float32)
    return scores, labels


def membrane_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(ground truth, prediction) 512 x 512 membrane maps (1 = membrane) and where they came from."""
    rng = np.random.default_rng(seed)
    if ISBI_LABEL.exists():
        from PIL import Image
        truth = (np.asarray(Image.open(ISBI_LABEL)) == 0).astype(np.uint8)
        source = f'ISBI 2012 {ISBI_LABEL.parent.name}/{ISBI_LABEL.name}'
    else:
        seeds = np.zeros((512, 512), bool)
        seeds[rng.integers(0, 512, 300), rng.integers(0, 512, 300)] = True
        _, nearest = ndimage.distance_transform_edt(~seeds, return_indices=True)
        cells = np.ravel_multi_index(tuple(nearest), seeds.shape)
        edges = ((np.diff(cells, axis=0, prepend=cells[:1]) != 0)
                 | (np.diff(cells, axis=1, prepend=cells[:, :1]) != 0))
        truth = ndimage.binary_dilation(edges, iterations=2).astype(np.uint8)
        source = 'synthetic Voronoi (300 cells)'
    thick = ndimage.binary_dilation(truth, iterations=1)
    noise = rng.random(truth.shape) < 0.02
    prediction = (thick ^ noise).astype(np.uint8)
    return truth, prediction, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args()

    scores, labels = drive_sized_scores()
    pixels = f'{labels.size:,} px'
    rows = [('auc (ours, exact)', pixels, median_seconds(lambda: metrics.auc(scores, labels), args.repeats))]
    exact = metrics.auc(scores, labels)
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError:
        roc_auc_score = None
    if roc_auc_score is not None:
        rows.append(('roc_auc_score (sklearn)', pixels,
                     median_seconds(lambda: roc_auc_score(labels.ravel(), scores.ravel()), args.repeats)))
        difference = abs(roc_auc_score(labels.ravel(), scores.ravel()) - exact)
    histogram = metrics.ScoreHistogram.empty().add(scores, labels)
    rows.append(('ScoreHistogram.add + auc (65536 bins)', pixels, median_seconds(
        lambda: metrics.ScoreHistogram.empty().add(scores, labels).auc(), args.repeats)))

    truth, prediction, source = membrane_pair()
    rows.append(('thin_membrane', '512x512',
                 median_seconds(lambda: metrics.thin_membrane(prediction), args.repeats)))
    rows.append(('rand_info_scores', '512x512', median_seconds(
        lambda: metrics.rand_info_scores(prediction, truth), args.repeats)))
    scores_isbi = metrics.rand_info_scores(prediction, truth)

    print(f'median of {args.repeats} runs (after a warm-up)\n')
    print('| what | input | seconds |\n|---|---|---|')
    for name, size, seconds in rows:
        print(f'| {name} | {size} | {seconds:.3f} |')
    print(f'\nexact AUC {exact:.6f}' + (f', |ours - sklearn| = {difference:.2e}' if roc_auc_score else ''))
    print(f'histogram AUC {histogram.auc():.6f}, |histogram - exact| = {abs(histogram.auc() - exact):.2e}, '
          f'bound {histogram.max_error():.2e}')
    print(f'rand_info_scores on {source}, membrane {truth.mean():.1%}: '
          f"v_rand {scores_isbi['v_rand']:.4f}, v_info {scores_isbi['v_info']:.4f}")


if __name__ == '__main__':
    main()
