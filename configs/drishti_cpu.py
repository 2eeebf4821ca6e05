"""Drishti-GS1 disc and cup from scratch on a CPU: the 800 x 800 disc crop at 256 x 256, 1250 steps
(200 epochs of the 50 training images, chosen on 10 held-out training images: docs/results.md).

python train.py --config configs/drishti_cpu.py --workdir runs/drishti_cpu \
    --config.data.root=/path/to/Drishti-GS1_files
Takes `variant=` like every task config (e.g. `configs/drishti_cpu.py:variant=unet`); see
configs/_cpu_recipe.py for the recipe (Adam, Dice + CE, all training images, no validation)
and docs/results.md for what it scores. The crop is trained whole (the patch is the whole image):
the disc and the cup are one object each, and their context is the point.
"""
from configs import drishti
from configs._cpu_recipe import apply_cpu_recipe

IMAGE_SIZE = 256


def get_config(arg: str | None = None):
    config = drishti.get_config(arg)
    config.data.image_size = (IMAGE_SIZE, IMAGE_SIZE)
    apply_cpu_recipe(config, steps=1250, crop=IMAGE_SIZE)
    config.data.augment.shift = 0.1   # whole crops: the random shift of Section III-A stays on
    return config
