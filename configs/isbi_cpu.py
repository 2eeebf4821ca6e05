"""ISBI 2012 from scratch on a CPU: random 192 px patches of the 512 x 512 slices, 600 steps.

python train.py --config configs/isbi_cpu.py --workdir runs/isbi_cpu \
    --config.data.root=/path/to/ISBI2012_EM
The 30 labelled slices are split by seed (data.split_seed): 24 train, 6 test; for k-fold
cross-validation add --config.data.num_folds=5 --config.data.fold=K. See
configs/_cpu_recipe.py for the recipe and docs/results.md for what it scores.
"""
from configs import isbi
from configs._cpu_recipe import apply_cpu_recipe


def get_config(arg: str | None = None):
    config = isbi.get_config(arg)
    apply_cpu_recipe(config, steps=600, crop=192)
    return config
