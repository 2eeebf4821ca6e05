"""The paper's recipe: SGD (momentum 0.9, weight decay 1e-4), poly lr 4e-3 (power 0.9),
batch 8, 100 epochs, Dice loss, 448 x 448 inputs, CE-Net with a ResNet-34 encoder.

Task configs start from here. Config arguments (after a colon, comma-separated):
  variant=<name>     a Table VI model variant (cenet, unet, backbone, backbone_inception,
                     dac_no_atrous, backbone_dac, backbone_rmp, backbone_inception_resnet)
  recipe=reference   the authors' code: Adam 2e-4 constant, Dice + BCE, x/255*3.2-1.6 input
  e.g. `python train.py --config configs/drive.py:variant=backbone,recipe=reference`.
"""
from __future__ import annotations

import ml_collections

from cenet_jax.data.config import default_data_config
from cenet_jax.models import apply_variant, reference_config


def parse_arguments(arg: str | None) -> dict[str, str]:
    """'variant=backbone,recipe=reference' -> {'variant': 'backbone', 'recipe': 'reference'}."""
    known = ('variant', 'recipe')
    out: dict[str, str] = {}
    for part in filter(None, (arg or '').split(',')):
        key, sep, value = part.partition('=')
        if not sep or key not in known:
            raise ValueError(f'config argument {part!r} not understood; use comma-separated '
                             f'key=value pairs with keys {known}, e.g. variant=backbone')
        out[key] = value
    return out


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The default (paper) configuration, with optional `variant=` / `recipe=` arguments."""
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.batch_size = 8                 # global, over all devices of all hosts
    config.grad_accum_steps = 1           # split each batch into k micro-batches (one update)
    config.ema_decay = 0.0                # EMA of the weights (e.g. 0.999); 0 = off
    config.ema_warmup = False             # decay min(ema_decay, (1 + t) / (10 + t)) at step t
    config.num_epochs = 100
    config.num_train_steps = -1           # > 0 overrides num_epochs
    config.log_every_steps = 20
    config.eval_every_steps = 500         # validation (and best checkpoint); <= 0: never
    config.checkpoint_every_steps = 500
    config.keep_checkpoints = 3           # last k, plus the best
    config.async_checkpoints = True
    config.best_metric = 'dice'           # a key of the validation summary (see eval.task)
    config.best_mode = 'max'
    config.num_sample_images = 4          # validation predictions saved as PNG each time
    config.distributed = 'auto'           # jax.distributed.initialize(): auto | on | off
    config.profile_steps = ()             # (A, B): jax.profiler trace of steps A..B -> <workdir>/profile
    config.peak_tflops = 0.0              # per device, for MFU in the log; 0 = from the GPU/TPU kind

    config.model = reference_config()

    config.data = default_data_config()
    config.data.image_size = (448, 448)

    config.loss = ml_collections.ConfigDict()
    config.loss.kind = 'dice'             # dice (Eq. 2) | ce | dice_ce
    config.loss.denominator = 'squared'   # squared (paper) | sum (reference code)
    config.loss.smooth = 0.0
    config.loss.class_weights = ()        # () = 1/K each
    config.loss.reduction = 'batch'       # batch | image
    config.loss.mask = 'auto'             # pixels that carry loss: none (all) | fov (the batch's FOV) |
                                          # auto (fov for OCT, whose FOV is the annotated columns, else none)

    config.optim = ml_collections.ConfigDict()
    config.optim.name = 'sgd'             # sgd | adam | adamw
    config.optim.lr = 4e-3
    config.optim.momentum = 0.9
    config.optim.nesterov = False
    config.optim.weight_decay = 1e-4
    config.optim.schedule = 'poly'        # poly | constant | cosine
    config.optim.power = 0.9
    config.optim.warmup_steps = 0
    config.optim.param_groups = ()        # rules 'PATTERN:lr=F,wd=F,frozen,freeze_until=N'

    config.eval = ml_collections.ConfigDict()
    config.eval.task = 'vessel'           # vessel | disc | lung | cell | oct
    config.eval.paper_key = ''            # which paper row to print beside ours ('' = by task)
    config.eval.split = 'test'            # eval.py's split; training validates on 'val'
    config.eval.tta = 'd8'                # eval.py: d8 | flips | none, less unseen views (tta_unseen)
    config.eval.val_tta = 'none'          # validation during training
    config.eval.non_square = 'flips'      # d8 on non-square inputs: flips | pad
    config.eval.tta_unseen = 'drop'       # TTA views training never applied (data.augment): drop | keep
    config.eval.mode = 'resize'           # resize (predict at model size) | sliding
    config.eval.window_overlap = 0.25
    config.eval.threshold = 0.5
    config.eval.cell_thresholds = ()      # ISBI: also score membrane p > t for each t, report the best
    config.eval.batch_size = 8
    config.eval.figures = True            # eval.py: one PNG per image
    config.eval.uncertainty = True        # eval.py: keep the per-pixel std of the TTA views
    config.eval.save_uncertainty = False  # eval.py: ... and write it as uncertainty/<id>.npy

    args = parse_arguments(arg)
    if 'variant' in args:
        apply_variant(config.model, args['variant'])
    if args.get('recipe') == 'reference':
        apply_reference_recipe(config)
    elif 'recipe' in args and args['recipe'] != 'paper':
        raise ValueError(f"recipe must be 'paper' or 'reference', got {args['recipe']!r}")
    return config


def apply_reference_recipe(config: ml_collections.ConfigDict) -> None:
    """The authors' code: Adam lr 2e-4 (constant), Dice + BCE, x/255*3.2-1.6 normalisation.

    (Their lr halving on plateau and early stopping are not reproduced.)"""
    config.optim.name = 'adam'
    config.optim.lr = 2e-4
    config.optim.weight_decay = 0.0
    config.optim.schedule = 'constant'
    config.loss.kind = 'dice_ce'
    config.loss.denominator = 'sum'
    config.data.normalization = 'reference'
