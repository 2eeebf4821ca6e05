"""Shared helper of the task configs: the default recipe plus a dataset preset and a task."""
from __future__ import annotations

import ml_collections

from cenet_jax.data.config import apply_preset
from configs import default


def task_config(arg: str | None, *, dataset: str, task: str, paper_key: str = '',
                num_classes: int = 2, best_metric: str = 'dice',
                best_mode: str = 'max') -> ml_collections.ConfigDict:
    """`configs/default.py` with the dataset preset, label classes and evaluation task set.

    Binary tasks (num_classes 2) get a one-channel sigmoid model; multi-class ones softmax.
    """
    config = default.get_config(arg)
    apply_preset(config.data, dataset)
    config.data.num_classes = num_classes
    config.model.num_classes = 1 if num_classes == 2 else num_classes
    config.eval.task = task
    config.eval.paper_key = paper_key
    config.best_metric = best_metric
    config.best_mode = best_mode
    return config
