"""Whole-network parity with PyTorch: converted weights reproduce torchvision ResNet stage
outputs and the PyTorch CE-Net's (and U-Net's) features, logits and BN statistic updates.

The PyTorch models (tests/models/torch_reference.py) are randomly initialised with random BN
statistics and non-zero biases. CE-Net comparisons use inputs of 192 px or more, where the
deepest map is at least 6x6 and RMP's 6x6 pooling is exactly the reference's.
"""
from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from flax import traverse_util

from .array_utils import nchw, nhwc, random_images
from cenet_jax.convert import torch_cenet_to_flax, torchvision_resnet_to_flax
from cenet_jax.models import ResNetEncoder, build_model, reference_config
from cenet_jax.ops import onednn_loader

torch = pytest.importorskip('torch', reason='PyTorch is needed for parity tests')
torchvision = pytest.importorskip('torchvision', reason='torchvision is needed for parity tests')
from .torch_reference import VARIANT_LAYOUT, randomize_  # noqa: E402

TORCH_STAGES = ('encoder1', 'encoder2', 'encoder3', 'encoder4', 'dblock', 'spp',
                'decoder4', 'decoder3', 'decoder2', 'decoder1')
# Named alike in both U-Nets: the deepest double conv and the four up-sampling stages.
SHARED_STAGES = ('decoder4', 'decoder3', 'decoder2', 'decoder1',
                 'down4', 'up1', 'up2', 'up3', 'up4')
FLAX_TOP_MODULES = frozenset({'encoder', 'dac', 'rmp', 'inception', 'inception_resnet',
                              *SHARED_STAGES})


def torch_forward(model, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits and the outputs of the named stages (NHWC numpy)."""
    stages: dict[str, np.ndarray] = {}
    hooks = [getattr(model, name).register_forward_hook(
        lambda module, args, out, name=name: stages.__setitem__(name, nhwc(out)))
        for name in TORCH_STAGES + SHARED_STAGES[4:] if hasattr(model, name)]
    with torch.no_grad():
        logits = nhwc(model(torch.from_numpy(nchw(x))))
    for hook in hooks:
        hook.remove()
    return logits, stages


@functools.cache
def _jitted_apply(model, train: bool):
    capture = lambda module, method: method == '__call__' and module.name in FLAX_TOP_MODULES
    mutable = ['intermediates', 'batch_stats'] if train else ['intermediates']
    return jax.jit(lambda v, x: model.apply(v, x, train=train, capture_intermediates=capture,
                                            mutable=mutable))


def flax_forward(model, variables, x: np.ndarray, variant: str, train: bool = False):
    """Logits, stage outputs under the PyTorch stage names, and updated batch_stats (train)."""
    logits, state = _jitted_apply(model, train)(variables, x)
    found = state.get('intermediates', {})
    stages = {}
    if 'encoder' in found:
        stages.update(zip(TORCH_STAGES[:4], found['encoder']['__call__'][0]))
    block = VARIANT_LAYOUT.get(variant, (None,))[0]
    if block:
        stages['dblock'] = found[block]['__call__'][0]
    if 'rmp' in found:
        stages['spp'] = found['rmp']['__call__'][0]
    for name in SHARED_STAGES:
        if name in found:
            stages[name] = found[name]['__call__'][0]
    return logits, stages, state.get('batch_stats')


def converted(reference_model, variant: str, conv_impl: str = 'auto'):
    """(PyTorch model, Flax model, converted variables) for a variant and conv formulation."""
    model_torch = reference_model(variant)
    cfg = reference_config(variant)
    cfg.conv_impl = conv_impl
    return model_torch, build_model(cfg), torch_cenet_to_flax(model_torch.state_dict(), cfg)


def compare_network(check_parity, reference_model, variant: str, shape: tuple[int, ...],
                    conv_impl: str = 'auto'):
    model_torch, model, variables = converted(reference_model, variant, conv_impl)
    x = random_images(shape, seed=sum(shape))
    ref_logits, ref_stages = torch_forward(model_torch, x)
    logits, stages, _ = flax_forward(model, variables, x, variant)
    label = f'{variant} {conv_impl} {shape[1]}x{shape[2]} batch {shape[0]}'
    assert set(stages) == set(ref_stages), (sorted(stages), sorted(ref_stages))
    for name in TORCH_STAGES + SHARED_STAGES[4:]:
        if name in ref_stages:
            check_parity(f'{label} {name}', stages[name], ref_stages[name])
    check_parity(f'{label} logits', logits, ref_logits)


@pytest.mark.parametrize('depth, shape', [(34, (2, 64, 96, 3)), (50, (1, 64, 64, 3))])
def test_resnet_stages_match_torchvision(check_parity, torch, depth, shape):
    torch.manual_seed(depth)
    resnet = randomize_(getattr(torchvision.models, f'resnet{depth}')(weights=None), seed=depth)
    variables = torchvision_resnet_to_flax(resnet.state_dict(), depth)
    x = random_images(shape, seed=depth)
    with torch.no_grad():
        y = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(torch.from_numpy(nchw(x))))))
        ref = []
        for layer in (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4):
            y = layer(y)
            ref.append(nhwc(y))
    encoder = ResNetEncoder(depth)
    got = jax.jit(functools.partial(encoder.apply, train=False))(variables, x)
    for stage, (g, r) in enumerate(zip(got, ref), start=1):
        check_parity(f'resnet{depth} {shape[1]}x{shape[2]} layer{stage}', g, r)


NEEDS_ONEDNN = pytest.mark.skipif(
    not onednn_loader.available(),
    reason=f'oneDNN extension unavailable: {onednn_loader.unavailable_reason()}')
ONEDNN = pytest.param('onednn', marks=NEEDS_ONEDNN)


@pytest.mark.parametrize('conv_impl, shape', [('matmul', (2, 192, 192, 3)),
                                              pytest.param('onednn', (1, 192, 256, 3),
                                                           marks=NEEDS_ONEDNN),
                                              ('xla', (2, 192, 192, 3))])
def test_cenet_matches_torch(check_parity, reference_model, conv_impl, shape):
    compare_network(check_parity, reference_model, 'cenet', shape, conv_impl)


@pytest.mark.parametrize('variant, shape', [
    ('backbone', (1, 64, 96, 3)),
    ('backbone_dac', (1, 192, 192, 3)),
    ('dac_no_atrous', (1, 64, 96, 3)),
    ('backbone_rmp', (1, 192, 192, 3)),
    ('backbone_inception', (1, 64, 96, 3)),
    ('backbone_inception_resnet', (1, 64, 96, 3)),
    ('unet', (1, 64, 96, 3)),
])
def test_variant_matches_torch(check_parity, reference_model, variant, shape):
    compare_network(check_parity, reference_model, variant, shape)


@pytest.mark.parametrize('conv_impl', ['xla', 'matmul', ONEDNN])
def test_cenet_training_mode_matches_torch(check_parity, reference_model, conv_impl):
    """Batch statistics in the forward pass, and running statistics updated with momentum 0.1
    (PyTorch) == 0.9 (Flax), unbiased variance included."""
    model_torch, model, variables = converted(reference_model, 'cenet', conv_impl)
    x = random_images((2, 192, 192, 3), seed=7)
    ref_logits, _ = torch_forward(model_torch.train(), x)
    logits, _, new_stats = flax_forward(model, variables, x, 'cenet', train=True)
    check_parity(f'cenet {conv_impl} train mode 192x192 batch 2 logits', logits, ref_logits)

    ref_stats = torch_cenet_to_flax(model_torch.state_dict(), reference_config('cenet'))
    ref_flat = traverse_util.flatten_dict(ref_stats['batch_stats'], sep='/')
    got_flat = traverse_util.flatten_dict(new_stats, sep='/')
    assert set(got_flat) == set(ref_flat)
    old_flat = traverse_util.flatten_dict(variables['batch_stats'], sep='/')
    assert all(not np.allclose(old_flat[k], ref_flat[k]) for k in ref_flat), 'stats unchanged'
    ratio = {k: np.abs(np.asarray(got_flat[k]) - ref_flat[k]).max() / np.abs(ref_flat[k]).max()
             for k in ref_flat}
    worst = max(ratio, key=ratio.get)
    check_parity(f'cenet {conv_impl} train mode running stats (worst of {len(ratio)}: {worst})',
                 got_flat[worst], ref_flat[worst])
