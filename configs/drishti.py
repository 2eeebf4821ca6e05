"""Drishti-GS1 optic disc and cup (Sivaswamy et al., ISBI 2014): background / rim / cup, softmax +
multi-class Dice (class weights 1/K), the official 50 Training / 51 Test split, an 800 x 800 crop
around the disc (data.disc_locator='blob'), scored on the whole image: E and Dice of disc and cup,
the vertical cup-to-disc ratio against the 4 experts'. Ground truth: pixels marked by at least
data.expert_agreement (default 3) of the 4 experts.

python train.py --config configs/drishti.py --workdir runs/drishti \
    --config.data.root=/path/to/Drishti-GS1_files
"""
from configs._task import task_config


def get_config(arg: str | None = None):
    return task_config(arg, dataset='drishti_gs1', task='disc_cup', paper_key='ORIGA', num_classes=3,
                       best_metric='dice_cup', best_mode='max')
