"""Messidor optic disc (paper Table I): train.txt / test.txt lists, overlap error E.

python train.py --config configs/messidor.py --workdir runs/messidor --config.data.root=/path/to/Messidor
"""
from configs._task import task_config


def get_config(arg: str | None = None):
    return task_config(arg, dataset='messidor', task='disc', paper_key='Messidor',
                       best_metric='E', best_mode='min')
