"""ISBI 2012 EM cells (paper Table III): PNG folders train/image + train/label (0 = membrane,
inverted so that class 1 = membrane), seeded split of the 30 labelled slices, V_Rand / V_Info.
For the challenge's TIFF stacks use --config.data.name=isbi_tiff.

python train.py --config configs/isbi.py --workdir runs/isbi --config.data.root=/path/to/ISBI2012_EM
"""
from configs._task import task_config


def get_config(arg: str | None = None):
    config = task_config(arg, dataset='isbi', task='cell', best_metric='v_rand')
    config.data.image_size = (512, 512)
    # The challenge's protocol: the best slice-mean score over thresholds (beside the 0.5 one).
    config.eval.cell_thresholds = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    return config
