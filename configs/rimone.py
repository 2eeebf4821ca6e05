"""RIM-ONE-R1 optic disc (paper Table I): expert 1 masks by default (--config.data.annotator=N),
train_files.txt / test_files.txt, overlap error E.

python train.py --config configs/rimone.py --workdir runs/rimone --config.data.root=/path/to/RIM-ONE-R1
"""
from configs._task import task_config


def get_config(arg: str | None = None):
    return task_config(arg, dataset='rimone', task='disc', paper_key='RIM-ONE-R1',
                       best_metric='E', best_mode='min')
