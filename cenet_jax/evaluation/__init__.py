"""Evaluation and prediction: TTA views (`tta`), probabilities (`predict`), the tasks and the
paper's numbers (`tasks`), scores (`scoring`), results of several hosts (`gather`), reports.

`run` (what eval.py does: load weights, score a split, predict a folder) is imported by name,
`from cenet_jax.evaluation.run import ...`: it sits above training, which uses the rest.
"""
from cenet_jax.evaluation.gather import gather_result, merge_results
from cenet_jax.evaluation.predict import (BatchPredictor, as_record_stream, make_predict_fn,
                                          predict_full_image, predict_probs, predict_records,
                                          resize_probs, sliding_window_predict)
from cenet_jax.evaluation.reports import format_table, write_metrics_json, write_per_image_csv
from cenet_jax.evaluation.scoring import (EvalResult, cell_threshold_sweep, evaluate_records,
                                          figure_file_name)
from cenet_jax.evaluation.tasks import TASKS
from cenet_jax.evaluation.tta import TTAPlan, resolve_tta, tta_plan

__all__ = [
    'BatchPredictor', 'EvalResult', 'TASKS', 'TTAPlan', 'as_record_stream',
    'cell_threshold_sweep', 'evaluate_records', 'figure_file_name', 'format_table',
    'gather_result', 'make_predict_fn', 'merge_results', 'predict_full_image', 'predict_probs',
    'predict_records', 'resize_probs', 'resolve_tta', 'sliding_window_predict', 'tta_plan',
    'write_metrics_json', 'write_per_image_csv',
]
