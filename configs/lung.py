"""Kaggle 2D lung CT (paper Table IV): 267 pairs at 512 x 512, seeded 80/20 split
(--config.data.num_folds=5 --config.data.fold=K for cross-validation), E / Acc / Sen.

python train.py --config configs/lung.py --workdir runs/lung --config.data.root=/path/to/lung
"""
from configs._task import task_config


def get_config(arg: str | None = None):
    return task_config(arg, dataset='lung', task='lung', best_metric='E', best_mode='min')
