"""Context blocks (DAC, RMP, Inception, Inception-ResNet) against their PyTorch definitions.

Block-level checks see errors that the full network dilutes (a dilated kernel at the wrong
rate, a pooled map in the wrong order): small channel counts, maps from 6x8 to 12x14.
"""
from __future__ import annotations

import jax
import pytest

from .array_utils import nchw, nhwc, random_images
from cenet_jax.convert import expected_variables, fill_variables
from cenet_jax.models import DACBlock, InceptionBlock, InceptionResNetBlock, RMPBlock

torch = pytest.importorskip('torch', reason='PyTorch is needed for parity tests')
pytest.importorskip('torchvision', reason='torchvision is needed for parity tests')
from .torch_reference import (DenseAtrous, Inception, InceptionResidual,  # noqa: E402
                             MultiKernelPooling, randomize_)

CHANNELS = 8


def _convert_block(flax_block, torch_block, shape):
    """Flax variables of `flax_block` filled from `torch_block` (same submodule names)."""
    expected = expected_variables(flax_block.init, shape)
    variables, _ = fill_variables(expected, torch_block.state_dict(), '.'.join,
                                  ignore=lambda key: False, source=type(torch_block).__name__)
    return variables


def _run_both(flax_block, torch_block, shape, seed):
    randomize_(torch_block, seed)
    x = random_images(shape, seed)
    variables = _convert_block(flax_block, torch_block, shape)
    got = jax.jit(flax_block.apply)(variables, x)
    with torch.no_grad():
        ref = nhwc(torch_block(torch.from_numpy(nchw(x))))
    return got, ref


@pytest.mark.parametrize('atrous', [True, False])
def test_dac_matches_torch(check_parity, atrous):
    shape = (2, 12, 14, CHANNELS)
    torch.manual_seed(1)
    got, ref = _run_both(DACBlock(shared=True, atrous=atrous),
                         DenseAtrous(CHANNELS, atrous=atrous), shape, seed=1)
    x = random_images(shape, 1)
    check_parity(f'DAC atrous={atrous} 12x14 (residual removed)', got - x, ref - x)


@pytest.mark.parametrize('size', [(6, 8), (7, 9), (12, 14)])
def test_rmp_matches_torch(check_parity, size):
    torch.manual_seed(2)
    got, ref = _run_both(RMPBlock(), MultiKernelPooling(CHANNELS), (2, *size, CHANNELS), seed=2)
    check_parity(f'RMP pooled maps {size[0]}x{size[1]}', got[..., :4], ref[..., :4])
    check_parity(f'RMP passthrough {size[0]}x{size[1]}', got[..., 4:], ref[..., 4:])


def test_inception_matches_torch(check_parity):
    torch.manual_seed(3)
    got, ref = _run_both(InceptionBlock(), Inception(CHANNELS), (2, 9, 11, CHANNELS), seed=3)
    check_parity('Inception block 9x11', got, ref)


def test_inception_resnet_matches_torch(check_parity):
    shape = (2, 9, 11, CHANNELS)
    torch.manual_seed(4)
    got, ref = _run_both(InceptionResNetBlock(), InceptionResidual(CHANNELS), shape, seed=4)
    x = random_images(shape, 4)
    check_parity('Inception-ResNet block 9x11 (residual removed)', got - x, ref - x)
