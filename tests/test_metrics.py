"""Tests of cenet_jax.metrics against scikit-learn / scikit-image and hand-made cases."""
import math
import statistics

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import adapted_rand_error, variation_of_information
from sklearn.metrics import confusion_matrix, roc_auc_score

from cenet_jax import metrics


# ---------------------------------------------------------------- AUC
@pytest.mark.parametrize('dtype', [np.float32, np.float64, np.float16, np.int64])
@pytest.mark.parametrize('levels', [7, 1000])
def test_auc_matches_sklearn_with_ties(dtype, levels):
    rng = np.random.default_rng(levels)
    labels = rng.random((3, 20, 30)) < 0.3
    scores = (rng.integers(0, levels, labels.shape) + 2.0 * labels).astype(dtype)  # informative, tied
    expected = roc_auc_score(labels.ravel(), scores.ravel())
    assert metrics.auc(scores, labels) == pytest.approx(expected, abs=1e-12)


def test_auc_with_mask_negative_scores_and_signed_zero():
    rng = np.random.default_rng(5)
    labels = (rng.random((40, 50)) < 0.2).astype(np.uint8)
    scores = rng.normal(size=labels.shape).astype(np.float32) + labels
    scores[:5] = -0.0
    scores[5:10] = 0.0
    mask = rng.random(labels.shape) < 0.7
    expected = roc_auc_score(labels[mask], scores[mask])
    assert metrics.auc(scores, labels, mask) == pytest.approx(expected, abs=1e-12)


def test_auc_undefined_and_bad_inputs():
    assert math.isnan(metrics.auc(np.array([0.1, 0.9]), np.array([1, 1])))
    with pytest.raises(ValueError, match='NaN'):
        metrics.auc(np.array([np.nan, 0.2]), np.array([0, 1]))
    with pytest.raises(ValueError, match='binary'):
        metrics.auc(np.array([0.1, 0.2]), np.array([0, 255]))
    with pytest.raises(ValueError, match='shape'):
        metrics.auc(np.zeros(3), np.zeros(4))


def test_score_set_and_histogram_merge_equal_whole():
    rng = np.random.default_rng(6)
    images = [(rng.random((16, 16)).astype(np.float32), rng.random((16, 16)) < 0.3,
               rng.random((16, 16)) < 0.8) for _ in range(6)]
    whole_set, half_a, half_b = metrics.ScoreSet(), metrics.ScoreSet(), metrics.ScoreSet()
    whole_hist = metrics.ScoreHistogram.empty(64)
    hist_a, hist_b = metrics.ScoreHistogram.empty(64), metrics.ScoreHistogram.empty(64)
    for index, (scores, labels, mask) in enumerate(images):
        whole_set = whole_set.add(scores, labels, mask)
        whole_hist = whole_hist.add(scores, labels, mask)
        if index < 3:
            half_a, hist_a = half_a.add(scores, labels, mask), hist_a.add(scores, labels, mask)
        else:
            half_b, hist_b = half_b.add(scores, labels, mask), hist_b.add(scores, labels, mask)
    shipped = metrics.ScoreSet.from_arrays(*half_b.arrays())  # as if gathered from another host
    assert half_a.merge(shipped).auc() == whole_set.auc()
    merged = hist_a.merge(hist_b)
    assert merged.auc() == whole_hist.auc()
    np.testing.assert_array_equal(merged.positives, whole_hist.positives)
    all_scores = np.concatenate([s[m] for s, _, m in images])
    all_labels = np.concatenate([y[m] for _, y, m in images])
    assert whole_set.auc() == pytest.approx(roc_auc_score(all_labels, all_scores), abs=1e-12)
    assert abs(whole_hist.auc() - whole_set.auc()) <= whole_hist.max_error() + 1e-12


def test_histogram_is_exact_when_scores_sit_in_distinct_bins():
    rng = np.random.default_rng(7)
    bins = 32
    scores = (rng.integers(0, bins, 500) + 0.5) / bins
    labels = rng.random(500) < 0.4
    histogram = metrics.ScoreHistogram.empty(bins).add(scores, labels)
    assert histogram.auc() == pytest.approx(metrics.auc(scores, labels), abs=1e-12)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        histogram.add(np.array([1.5]), np.array([1]))


# ---------------------------------------------------------------- binary scores
def test_binary_scores_match_confusion_matrix():
    rng = np.random.default_rng(8)
    labels = rng.random((30, 40)) < 0.3
    pred = rng.random((30, 40)) < 0.35
    mask = rng.random((30, 40)) < 0.9
    tn, fp, fn, tp = confusion_matrix(labels[mask], pred[mask], labels=[0, 1]).ravel()
    scores = metrics.binary_scores(pred, labels, mask)
    assert scores['iou'] == pytest.approx(tp / (tp + fp + fn))
    assert scores['E'] == pytest.approx(1 - tp / (tp + fp + fn))
    assert scores['dice'] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert scores['acc'] == pytest.approx((tp + tn) / mask.sum())
    assert scores['sen'] == pytest.approx(tp / (tp + fn))
    assert scores['spec'] == pytest.approx(tn / (tn + fp))


def test_binary_scores_empty_conventions():
    empty = np.zeros((4, 4), bool)
    scores = metrics.binary_scores(empty, empty)
    assert (scores['E'], scores['dice'], scores['iou'], scores['acc'], scores['spec']) == (0.0, 1.0, 1.0, 1.0, 1.0)
    assert math.isnan(scores['sen'])
    nothing_inside = metrics.binary_scores(empty, empty, mask=empty)
    assert math.isnan(nothing_inside['acc'])
    with pytest.raises(ValueError, match='pred must be binary'):
        metrics.binary_scores(np.full((4, 4), 2), empty)


def test_confusion_counts_split_and_merge_equal_whole():
    rng = np.random.default_rng(9)
    preds = rng.random((6, 10, 10)) < 0.5
    labels = rng.random((6, 10, 10)) < 0.5
    whole = metrics.ConfusionCounts.from_predictions(preds, labels)
    first, second = metrics.ConfusionCounts(), metrics.ConfusionCounts()
    for index in range(6):
        if index % 2:
            first = first.add(preds[index], labels[index])
        else:
            second = second.add(preds[index], labels[index])
    summed = metrics.ConfusionCounts.from_array(first.to_array() + second.to_array())
    assert first.merge(second) == whole == summed
    assert whole.total == preds.size


# ---------------------------------------------------------------- ISBI V_Rand / V_Info
def _grid_membrane(size=24, step=8):
    membrane = np.zeros((size, size), np.uint8)
    membrane[::step] = 1
    membrane[:, ::step] = 1
    return membrane


def test_perfect_prediction_scores_one():
    membrane = _grid_membrane()
    scores = metrics.rand_info_scores(membrane, membrane)
    for key in ('v_rand', 'v_info', 'rand_split', 'rand_merge', 'info_split', 'info_merge'):
        assert scores[key] == pytest.approx(1.0)


def test_thinning_keeps_one_pixel_lines_and_assigns_thick_borders():
    membrane = np.zeros((9, 9), np.uint8)
    membrane[3:6, :] = 1  # a 3-pixel-thick horizontal membrane between two cells
    thinned = metrics.thin_membrane(membrane)
    assert set(np.unique(thinned[:4])) == {1} and set(np.unique(thinned[5:])) == {2}
    np.testing.assert_array_equal(thinned[4], 0)  # the watershed line where the floods meet
    cross = np.zeros((9, 9), np.uint8)
    cross[4, :] = 1
    cross[:, 4] = 1
    np.testing.assert_array_equal(metrics.thin_membrane(cross) == 0, cross == 1)
    assert metrics.thin_membrane(np.ones((5, 5), np.uint8)).max() == 1  # all membrane: one region
    thick = cross.copy()
    thick[3:6, :] = 1
    assert metrics.rand_info_scores(thick, cross)['v_rand'] == pytest.approx(1.0)


def test_split_and_merge_errors_move_the_right_parts():
    truth = np.zeros((20, 20), np.uint8)
    truth[:, 10] = 1
    split = truth.copy()
    split[10, :10] = 1  # an extra wall cuts the left cell in two
    scores = metrics.rand_info_scores(split, truth)
    assert scores['rand_split'] < 1 and scores['rand_merge'] == pytest.approx(1.0)
    assert scores['info_split'] < 1 and scores['info_merge'] == pytest.approx(1.0)
    merged = truth.copy()
    merged[8:12, 10] = 0  # a gap joins the two cells
    scores = metrics.rand_info_scores(merged, truth)
    assert scores['rand_merge'] < 1 and scores['rand_split'] == pytest.approx(1.0)
    assert scores['info_merge'] < 1 and scores['info_split'] == pytest.approx(1.0)


def _random_label_pair(seed):
    rng = np.random.default_rng(seed)
    gt_cells = ndimage.label(rng.random((30, 30)) < 0.75, structure=metrics.rand_info.FOUR_CONNECTIVITY)[0]
    pred_cells = rng.integers(0, 5, (30, 30))  # 0 = predicted boundary line: singletons
    return gt_cells, pred_cells


def _singletons_relabelled(pred_cells):
    relabelled = pred_cells.copy()
    lines = relabelled == 0
    relabelled[lines] = pred_cells.max() + 1 + np.arange(lines.sum())
    return relabelled


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_rand_matches_skimage_adapted_rand_without_self_pairs(seed):
    gt_cells, pred_cells = _random_label_pair(seed)
    are, _, _ = adapted_rand_error(gt_cells, _singletons_relabelled(pred_cells), ignore_labels=(0,))
    ours = metrics.segmentation_scores(gt_cells, pred_cells, count_self_pairs=False)
    assert ours['v_rand'] == pytest.approx(1.0 - are, abs=1e-12)


@pytest.mark.parametrize('seed', [0, 1])
def test_rand_with_self_pairs_matches_brute_force_pair_counting(seed):
    gt_cells, pred_cells = _random_label_pair(seed)
    keep = gt_cells > 0
    gt = gt_cells[keep][:300]
    pred = _singletons_relabelled(pred_cells)[keep][:300]
    same_gt = gt[:, None] == gt[None, :]  # all ordered pairs, self-pairs included
    same_pred = pred[:, None] == pred[None, :]
    together = np.sum(same_gt & same_pred)
    expected = 2.0 * together / (same_gt.sum() + same_pred.sum())
    trimmed_gt = np.zeros_like(gt_cells)
    trimmed_pred = np.zeros_like(pred_cells)
    rows, cols = np.nonzero(keep)
    trimmed_gt[rows[:300], cols[:300]] = gt
    trimmed_pred[rows[:300], cols[:300]] = pred
    assert metrics.segmentation_scores(trimmed_gt, trimmed_pred)['v_rand'] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_info_matches_skimage_variation_of_information(seed):
    gt_cells, pred_cells = _random_label_pair(seed)
    # scikit-image returns [H(image1 | image0), H(image0 | image1)] = [false splits, false merges]
    h_pred_given_gt, h_gt_given_pred = variation_of_information(
        gt_cells, _singletons_relabelled(pred_cells), ignore_labels=(0,))
    ours = metrics.segmentation_scores(gt_cells, pred_cells)
    nats_per_bit = math.log(2)
    assert ours['h_gt_given_pred'] == pytest.approx(h_gt_given_pred * nats_per_bit, abs=1e-9)
    assert ours['h_pred_given_gt'] == pytest.approx(h_pred_given_gt * nats_per_bit, abs=1e-9)
    mutual = ours['h_gt'] - ours['h_gt_given_pred']
    assert ours['v_info'] == pytest.approx(2 * mutual / (ours['h_gt'] + ours['h_pred']), abs=1e-12)


def test_threshold_sweep_takes_the_best_threshold():
    truth = _grid_membrane()
    probs = truth * 0.65 + (1 - truth) * 0.1
    probs[4, 1:8] = 0.45  # a spurious wall across a cell that only low thresholds keep
    result = metrics.rand_info_over_thresholds([probs], [truth])
    assert result['v_rand'] == pytest.approx(1.0) and result['v_info'] == pytest.approx(1.0)
    assert 0.45 <= result['v_rand_threshold'] < 0.65


# ---------------------------------------------------------------- OCT boundaries
def _classmap_from_boundaries(boundaries, height):
    rows = np.arange(height)[None, :, None]
    return np.sum(rows >= np.asarray(boundaries)[:, None, :], axis=0).astype(np.int32)


def test_boundary_positions_and_mae():
    width, height = 12, 40
    truth = np.stack([np.full(width, 3.0 * k + 2) for k in range(1, 11)])  # (10, W) integer rows
    classmap = _classmap_from_boundaries(truth, height)
    np.testing.assert_array_equal(metrics.boundary_positions(classmap, 10), truth)
    assert np.all(metrics.boundary_mae(classmap, truth) == 0)
    shifted = truth.copy()
    shifted[2] += 1  # boundary 3 one row lower, still below boundary 2 and above 4
    predicted = _classmap_from_boundaries(shifted, height)
    mae = metrics.boundary_mae(predicted, truth)
    np.testing.assert_allclose(mae, [0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
    assert metrics.overall_mae(mae) == pytest.approx(0.1)


def test_boundary_mae_ignores_nan_and_penalises_missing_layers():
    height = 30
    truth = np.stack([np.full(4, 2.0 * k) for k in range(1, 11)])
    classmap = _classmap_from_boundaries(truth, height)
    classmap[:, 0] = np.minimum(classmap[:, 0], 9)  # class 10 missing in column 0
    with_gaps = truth.copy()
    with_gaps[:, 1] = np.nan
    mae = metrics.boundary_mae(classmap, with_gaps)
    # column 0: boundary 10 predicted at H = 30 instead of 20; 3 annotated columns
    np.testing.assert_allclose(mae, [0] * 9 + [10.0 / 3])
    all_nan = np.full_like(truth, np.nan)
    assert np.all(np.isnan(metrics.boundary_mae(classmap, all_nan)))
    with pytest.raises(ValueError, match='columns'):
        metrics.boundary_mae(classmap, truth[:, :3])


# ---------------------------------------------------------------- aggregation
def test_summaries_use_sample_std_and_skip_nan():
    rows = [{'a': 1.0, 'b': float('nan')}, {'a': 3.0, 'b': 2.0}, {'a': 8.0, 'b': float('nan')}]
    summary = metrics.summarize(rows, ['a', 'b'])
    assert metrics.STD_DDOF == 1
    assert summary['a'].mean == 4.0 and summary['a'].n == 3
    assert summary['a'].std == pytest.approx(statistics.stdev([1.0, 3.0, 8.0]))   # ddof = 1
    assert summary['a'].std == pytest.approx(np.std([1.0, 3.0, 8.0], ddof=1))
    assert summary['b'].mean == 2.0 and summary['b'].n == 1 and math.isnan(summary['b'].std)  # undefined
    assert summary['b'].format(2) == '2.00'
    assert summary['a'].format(2) == f"4.00±{statistics.stdev([1.0, 3.0, 8.0]):.2f}"
    with pytest.raises(KeyError):
        metrics.summarize(rows, ['c'])
