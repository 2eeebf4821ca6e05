"""ORIGA optic disc (paper Table I): Set_A train / Set_B test, 800 x 800 crop around the brightest
point, overlap error E.

python train.py --config configs/origa.py --workdir runs/origa --config.data.root=/path/to/ORIGA
"""
from configs._task import task_config


def get_config(arg: str | None = None):
    return task_config(arg, dataset='origa', task='disc', paper_key='ORIGA', best_metric='E',
                       best_mode='min')
