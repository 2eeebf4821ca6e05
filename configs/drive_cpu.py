"""DRIVE from scratch on a CPU: random 192 px patches of the 576 x 576 image, 1000 steps.

python train.py --config configs/drive_cpu.py --workdir runs/drive_cpu \
    --config.data.root=/path/to/DRIVE
Takes `variant=` like every task config (e.g. `configs/drive_cpu.py:variant=unet`); see
configs/_cpu_recipe.py for the recipe and docs/results.md for what it scores.
"""
from configs import drive
from configs._cpu_recipe import apply_cpu_recipe


def get_config(arg: str | None = None):
    config = drive.get_config(arg)
    config.data.image_size = (576, 576)   # about DRIVE's own 565 x 584: thin vessels stay visible
    apply_cpu_recipe(config, steps=1000, crop=192)
    return config
