"""Retinal OCT layers (paper Table V): 11 classes (10 boundaries), softmax + multi-class Dice with
class weights 1/K, boundary MAE in pixels. Data: per-pixel class maps or per-B-scan boundary
rows (see README, "Datasets").

python train.py --config configs/oct.py --workdir runs/oct --config.data.root=/path/to/OCT
"""
from configs._task import task_config


def get_config(arg: str | None = None):
    config = task_config(arg, dataset='oct', task='oct', num_classes=11,
                         best_metric='mae_overall', best_mode='min')
    config.eval.tta = 'flips'   # B-scans are not rotation-invariant: no rot90 views
    return config
