"""CE-Net and its baselines as pure Flax linen modules (NHWC, PyTorch-exact paddings)."""
from cenet_jax.models.cenet import CENet, check_input_size
from cenet_jax.models.config import VARIANTS, apply_variant, build_model, reference_config
from cenet_jax.models.context import (DACBlock, InceptionBlock, InceptionResNetBlock, RMPBlock,
                                      context_block_names, register_context_block)
from cenet_jax.models.resnet import ResNetEncoder, encoder_channels
from cenet_jax.models.unet import UNet

__all__ = [
    'CENet', 'UNet', 'ResNetEncoder', 'DACBlock', 'RMPBlock', 'InceptionBlock',
    'InceptionResNetBlock', 'VARIANTS', 'apply_variant', 'build_model', 'reference_config',
    'register_context_block', 'context_block_names', 'encoder_channels', 'check_input_size',
]
