"""Segmentation metrics (numpy): AUC, overlap/pixel scores, ISBI V_Rand/V_Info, OCT boundary MAE.

Every public name of the submodules is available here, e.g. ``cenet_jax.metrics.auc``.
"""
from cenet_jax.metrics.aggregate import STD_DDOF, Summary, summarize, summarize_values
from cenet_jax.metrics.cdr import expert_spread, largest_region, vertical_cdr, vertical_diameter
from cenet_jax.metrics.confusion import BINARY_SCORE_NAMES, ConfusionCounts, binary_scores
from cenet_jax.metrics.oct_layers import (boundary_error_sums, boundary_mae, boundary_positions,
                                          mae_from_sums, overall_mae)
from cenet_jax.metrics.rand_info import (DEFAULT_THRESHOLDS, cell_labels, rand_info_over_thresholds,
                                         rand_info_scores, segmentation_scores, thin_membrane)
from cenet_jax.metrics.roc import DEFAULT_HISTOGRAM_BINS, ScoreHistogram, ScoreSet, auc

__all__ = [
    'BINARY_SCORE_NAMES', 'ConfusionCounts', 'DEFAULT_HISTOGRAM_BINS', 'DEFAULT_THRESHOLDS',
    'STD_DDOF', 'ScoreHistogram', 'ScoreSet', 'Summary', 'auc', 'binary_scores',
    'boundary_error_sums', 'boundary_mae', 'boundary_positions', 'cell_labels',
    'mae_from_sums', 'overall_mae', 'rand_info_over_thresholds', 'rand_info_scores',
    'segmentation_scores', 'summarize', 'summarize_values', 'thin_membrane',
    'expert_spread', 'largest_region', 'vertical_cdr', 'vertical_diameter',
]
