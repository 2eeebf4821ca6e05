"""Retinal OCT layers (paper Table V): 11 classes (10 boundaries), softmax + multi-class Dice with
class weights 1/K, boundary MAE in pixels. Data: per-pixel class maps or per-B-scan boundary
rows (see README, "Datasets"). The paper's recipe (SGD 4e-3, Dice) needs an ImageNet encoder:
from random weights it does not learn; configs/oct_cpu.py does (README, "OCT: which recipe
learns from scratch"). Trained with horizontal flips only, so TTA runs identity + hflip.

python train.py --config configs/oct.py --workdir runs/oct --config.data.root=/path/to/OCT
"""
from configs._task import task_config


def get_config(arg: str | None = None):
    config = task_config(arg, dataset='oct', task='oct', num_classes=11,
                         best_metric='mae_overall', best_mode='min')
    config.eval.tta = 'flips'   # B-scans are not rotation-invariant: no rot90 views (and, as
                                # training never flips them vertically, runs identity + hflip)
    return config
