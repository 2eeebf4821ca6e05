"""The from-scratch CPU recipe shared by `drive_cpu.py`, `isbi_cpu.py` and `oct_cpu.py`.

The paper's recipe (SGD 4e-3, Dice, 448 px, 100 epochs, ImageNet encoder) needs a GPU and the
ImageNet weights; from scratch and short it does not learn (docs/results.md). This one trains
CE-Net from random weights on a 2-core CPU in well under an hour: random patches of the
full-resolution image (prediction stays on whole images; OCT trains on whole B-scans), Adam
with a short warmup and poly decay, Dice + cross-entropy (the cross-entropy term keeps the
probabilities graded, which is what AUC measures), all training images (validation off; the
last checkpoint is reported).
"""
from __future__ import annotations

import ml_collections


def apply_cpu_recipe(config: ml_collections.ConfigDict, *, steps: int, crop: int | None) -> None:
    """Set the CPU recipe's optimiser, loss, patch size (None: whole images) and schedule on a
    task config (in place)."""
    config.num_train_steps = steps
    config.batch_size = 8
    config.data.cache_decoded = True      # decode each image once, not every epoch
    config.data.val_fraction = 0.0        # every training image trains: no validation images ...
    config.eval_every_steps = 0           # ... so no validation (never the test split instead)
    config.checkpoint_every_steps = 200
    config.log_every_steps = 25
    if crop is not None:
        config.data.crop_size = (crop, crop)
        config.data.augment.shift = 0.0   # the random patch position already shifts
    config.optim.name = 'adam'
    config.optim.lr = 1e-3
    config.optim.weight_decay = 0.0
    config.optim.schedule = 'poly'
    config.optim.warmup_steps = 50
    config.loss.kind = 'dice_ce'
