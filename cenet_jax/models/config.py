"""Model configuration: the reference CE-Net config, Table VI variants, and `build_model`."""
from __future__ import annotations

import functools
from typing import Any, Mapping

import jax.numpy as jnp
import ml_collections
from flax import linen as nn

from cenet_jax.config_utils import update_fields
from cenet_jax.models.cenet import CENet
from cenet_jax.models.context import (BUILTIN_CONTEXT_BLOCKS, context_names,
                                      resolve_context_block)
from cenet_jax.models.unet import UNet
from cenet_jax.ops import resolve_conv_impl

# Table VI of the paper, each a few model-config values away from the reference CE-Net.
VARIANTS: dict[str, dict[str, Any]] = {
    'cenet': dict(architecture='cenet', context=('dac', 'rmp')),
    'unet': dict(architecture='unet'),
    'backbone': dict(architecture='cenet', context=()),
    'backbone_inception': dict(architecture='cenet', context=('inception',)),
    'dac_no_atrous': dict(architecture='cenet', context=('dac',), dac_atrous=False),
    'backbone_dac': dict(architecture='cenet', context=('dac',)),
    'backbone_rmp': dict(architecture='cenet', context=('rmp',)),
    'backbone_inception_resnet': dict(architecture='cenet', context=('inception_resnet',)),
}

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16, 'float16': jnp.float16,
          'float64': jnp.float64}  # float64: numerical reference checks (needs jax x64)


def reference_config(variant: str = 'cenet') -> ml_collections.ConfigDict:
    """Model config of the reference CE-Net (ResNet-34, DAC with shared weights, RMP 2/3/5/6),
    or of one of the Table VI variants (`VARIANTS`)."""
    cfg = ml_collections.ConfigDict()
    cfg.architecture = 'cenet'      # 'cenet' | 'unet'
    cfg.encoder_depth = 34          # ResNet-18 / 34 / 50
    cfg.context = ('dac', 'rmp')    # context blocks in order; names from the registry
    cfg.dac_shared = True           # reference code: one set of 4 convs shared by all branches
    cfg.dac_atrous = True           # False: all DAC rates 1 (Table VI "DAC w/o atrous")
    cfg.rmp_pool_sizes = (2, 3, 5, 6)
    cfg.context_options = ml_collections.ConfigDict()  # extra kwargs per custom block name
    cfg.num_classes = 1             # output channels K: 1 = binary (sigmoid), K > 1 = softmax
    cfg.unet_width = 64
    cfg.unet_bilinear = True
    cfg.dtype = 'float32'           # compute dtype; 'bfloat16' for mixed precision (CPU AMX, GPU, TPU)
    cfg.param_dtype = 'float32'     # parameters and BN statistics stay float32
    cfg.conv_impl = 'auto'          # 'xla' | 'onednn' | 'matmul' | 'auto' (cenet_jax.ops.resolve_conv_impl)
    cfg.pretrained = ''             # converted weights (.msgpack) to start from; '' = random
    apply_variant(cfg, variant)
    return cfg


def apply_variant(cfg: ml_collections.ConfigDict, variant: str) -> ml_collections.ConfigDict:
    """Set the fields of a Table VI variant on a model config (in place, also returned)."""
    if variant not in VARIANTS:
        raise ValueError(f'unknown model variant {variant!r}; choose one of {sorted(VARIANTS)}')
    return update_fields(cfg, {'dac_atrous': True, **VARIANTS[variant]})


def _dtype(name: str) -> Any:
    if name not in DTYPES:
        raise ValueError(f'unknown dtype {name!r}; choose one of {sorted(DTYPES)}')
    return DTYPES[name]


def _block_options(cfg: Mapping[str, Any], name: str, conv_impl: str) -> dict[str, Any]:
    builtin = {
        'dac': dict(shared=bool(cfg['dac_shared']), atrous=bool(cfg['dac_atrous'])),
        'rmp': dict(pool_sizes=tuple(int(k) for k in cfg['rmp_pool_sizes'])),
    }
    options = dict(builtin.get(name, {}))
    if name in BUILTIN_CONTEXT_BLOCKS:
        options['conv_impl'] = conv_impl
    extra = cfg.get('context_options', None) or {}
    options.update(dict(extra.get(name, {})))
    return options


def build_model(model_cfg: Mapping[str, Any], context_blocks: tuple = ()) -> nn.Module:
    """The linen Module a model config describes.

    `context_blocks` optionally passes context factories directly (any callable returning a
    linen Module), used instead of `model_cfg.context` names when given.
    """
    dtype, param_dtype = _dtype(model_cfg['dtype']), _dtype(model_cfg['param_dtype'])
    num_classes = int(model_cfg['num_classes'])
    if num_classes < 1:
        raise ValueError(f'model.num_classes must be >= 1 (1 = binary sigmoid), got {num_classes}')
    conv_impl = resolve_conv_impl(str(model_cfg.get('conv_impl', 'auto')))
    arch = model_cfg['architecture']
    if arch == 'unet':
        return UNet(num_classes, int(model_cfg['unet_width']), bool(model_cfg['unet_bilinear']),
                    dtype, param_dtype, conv_impl)
    if arch != 'cenet':
        raise ValueError(f"unknown model.architecture {arch!r}; choose 'cenet' or 'unet'")
    specs = tuple(context_blocks) or tuple(model_cfg['context'])
    names = context_names(specs)
    context = []
    for name, spec in zip(names, specs):
        key, factory = resolve_context_block(spec)
        context.append((name, functools.partial(factory,
                                                **_block_options(model_cfg, key, conv_impl))))
    return CENet(num_classes, int(model_cfg['encoder_depth']), tuple(context), dtype, param_dtype,
                 conv_impl)
