"""DRIVE retinal vessels (paper Table II): 20 train / 20 test, 565 x 584, FOV-restricted Sen/Acc/AUC.

python train.py --config configs/drive.py --workdir runs/drive --config.data.root=/path/to/DRIVE
"""
from configs._task import task_config


def get_config(arg: str | None = None):
    config = task_config(arg, dataset='drive', task='vessel', best_metric='auc')
    config.data.val_fraction = 0.1   # 2 of the 20 training images hold out for validation
    config.eval_every_steps = 200
    config.checkpoint_every_steps = 200
    return config
