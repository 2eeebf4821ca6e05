"""The PyTorch -> Flax converters, the .msgpack weight files and the conversion CLI.

State dicts are synthesised from the Flax models' own parameter trees (no torch needed);
the PyTorch-specific parts (.pth files, torchvision's names) skip without torch. Numerical
parity with real PyTorch models is in tests/models/test_model_parity.py.
"""
from __future__ import annotations

import functools
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import traverse_util

from cenet_jax import convert
from cenet_jax.models import ResNetEncoder, build_model, reference_config


def random_variables(init, seed: int = 0) -> dict:
    """Random numpy values in the shapes `init(key, x)` creates (positive variances)."""
    rng = np.random.default_rng(seed)
    expected = convert.expected_variables(init)
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: (rng.uniform(0.5, 2.0, leaf.shape) if path[-1].key == 'var'
                            else rng.standard_normal(leaf.shape)).astype(leaf.dtype), expected)


@functools.cache
def encoder_variables(depth: int, seed: int = 0) -> dict:
    """Random ResNet encoder variables (cached: treat as read-only)."""
    encoder = ResNetEncoder(depth)
    return random_variables(lambda key, x: encoder.init(key, x, train=False), seed)


@functools.cache
def model_variables(variant: str, seed: int = 0, num_classes: int = 1) -> dict:
    """Random variables of a reference-config model (cached: treat as read-only)."""
    model = build_model(config(variant, num_classes))
    return random_variables(lambda key, x: model.init(key, x, train=False), seed)


def config(variant: str, num_classes: int = 1):
    cfg = reference_config(variant)
    cfg.num_classes = num_classes
    return cfg


def resnet_state(depth: int = 18, seed: int = 0) -> tuple[dict, dict]:
    """(Flax encoder variables, the torchvision-style state dict holding them, with fc and
    num_batches_tracked entries as torchvision has)."""
    variables = encoder_variables(depth, seed)
    state = convert.to_torch_state_dict(variables, convert.torchvision_resnet_name)
    width = 512 if depth < 50 else 2048
    state['fc.weight'] = np.zeros((1000, width), np.float32)
    state['fc.bias'] = np.zeros((1000,), np.float32)
    for key in [k for k in state if k.endswith('running_mean')]:
        state[key.replace('running_mean', 'num_batches_tracked')] = np.array(7, np.int64)
    return variables, state


def assert_trees_equal(a, b) -> None:
    flat_a, flat_b = traverse_util.flatten_dict(a), traverse_util.flatten_dict(b)
    assert flat_a.keys() == flat_b.keys()
    for key in flat_a:
        np.testing.assert_array_equal(np.asarray(flat_a[key]), np.asarray(flat_b[key]),
                                      err_msg='/'.join(key))


# ----------------------------------------------------------------------------- names

def test_reference_names_follow_the_authors_state_dict():
    state = convert.to_torch_state_dict(model_variables('cenet'),
                                        convert.reference_cenet_name)
    for key, shape in [('firstconv.weight', (64, 3, 7, 7)), ('firstbn.running_var', (64,)),
                       ('encoder1.2.conv2.weight', (64, 64, 3, 3)),
                       ('encoder2.0.downsample.0.weight', (128, 64, 1, 1)),
                       ('encoder4.0.downsample.1.running_mean', (512,)),
                       ('dblock.dilate1.weight', (512, 512, 3, 3)),
                       ('dblock.dilate3.bias', (512,)),
                       ('dblock.conv1x1.weight', (512, 512, 1, 1)),
                       ('spp.conv.weight', (1, 512, 1, 1)),
                       ('decoder4.conv1.weight', (129, 516, 1, 1)),
                       ('decoder4.deconv2.weight', (129, 129, 3, 3)),
                       ('decoder1.norm3.weight', (64,)),
                       ('finaldeconv1.weight', (64, 32, 4, 4)),
                       ('finalconv2.weight', (32, 32, 3, 3)), ('finalconv3.bias', (1,))]:
        assert state[key].shape == shape, key
    assert not [k for k in state if k.startswith(('encoder.', 'head', 'dac', 'rmp'))]


def test_reference_unet_names():
    state = convert.to_torch_state_dict(model_variables('unet'),
                                        convert.reference_unet_name)
    for key, shape in [('inc.conv.conv.0.weight', (64, 3, 3, 3)),
                       ('inc.conv.conv.1.weight', (64,)),
                       ('down4.max_pool_conv.1.conv.3.weight', (512, 512, 3, 3)),
                       ('down1.max_pool_conv.1.conv.4.running_var', (128,)),
                       ('up1.conv.conv.0.weight', (256, 1024, 3, 3)), ('outc.conv.bias', (1,))]:
        assert state[key].shape == shape, key


@pytest.mark.parametrize('variant', ['cenet', 'backbone', 'backbone_dac', 'backbone_rmp',
                                     'backbone_inception', 'backbone_inception_resnet', 'unet'])
def test_variant_is_inferred_from_key_names(variant):
    name = convert.reference_unet_name if variant == 'unet' else convert.reference_cenet_name
    state = convert.to_torch_state_dict(model_variables(variant), name)
    assert convert.infer_reference_variant(state) == variant
    assert convert.reference_num_classes(state) == 1


# ----------------------------------------------------------------------------- resnet

@pytest.mark.parametrize('depth', [18, 34, 50])
def test_resnet_round_trip_ignores_fc_and_counters(depth):
    variables, state = resnet_state(depth)
    converted, report = convert.convert_resnet(state, depth)
    assert_trees_equal(converted, variables)
    assert {'fc.weight', 'fc.bias'} <= set(report.ignored)
    assert 'ignored 2 keys: fc.bias, fc.weight' in report.summary()
    assert 'num_batches_tracked' in report.summary()


def test_missing_and_misshaped_keys_are_all_reported():
    _, state = resnet_state(18)
    del state['layer1.0.conv1.weight'], state['layer3.1.bn2.running_var']
    state['conv1.weight'] = np.zeros((64, 3, 3, 3), np.float32)
    state['layer4.0.downsample.1.bias'] = np.zeros((256,), np.float32)
    state['layer5.0.conv1.weight'] = np.zeros((1,), np.float32)
    with pytest.raises(convert.ConversionError) as info:
        convert.torchvision_resnet_to_flax(state, depth=18)
    message = str(info.value)
    assert '2 missing keys' in message
    assert 'layer1.0.conv1.weight (64, 64, 3, 3)' in message
    assert 'layer3.1.bn2.running_var (256,)' in message
    assert 'conv1.weight: expected (64, 3, 7, 7), got (64, 3, 3, 3)' in message
    assert 'layer4.0.downsample.1.bias: expected (512,), got (256,)' in message
    assert '1 unexpected keys (not in the model):\n    layer5.0.conv1.weight' in message


def test_wrong_depth_is_reported():
    _, state = resnet_state(18)
    with pytest.raises(convert.ConversionError, match='missing keys'):
        convert.torchvision_resnet_to_flax(state, depth=34)


def test_safetensors_round_trip(tmp_path):
    from safetensors.numpy import save_file
    variables, state = resnet_state(18)
    path = tmp_path / 'resnet18.safetensors'
    save_file(state, str(path))
    loaded = convert.load_state_dict(path)
    assert loaded.keys() == state.keys()
    assert_trees_equal(convert.torchvision_resnet_to_flax(loaded, depth=18), variables)


def test_load_state_dict_rejects_unknown_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        convert.load_state_dict(tmp_path / 'nowhere.pth')
    (tmp_path / 'weights.h5').write_bytes(b'x')
    with pytest.raises(convert.ConversionError, match='unknown weights format'):
        convert.load_state_dict(tmp_path / 'weights.h5')


# ----------------------------------------------------------------------------- CE-Net

@pytest.mark.parametrize('variant', ['cenet', 'dac_no_atrous', 'backbone_inception_resnet', 'unet'])
def test_reference_round_trip_with_data_parallel_prefix(variant):
    cfg = reference_config(variant)
    variables = model_variables(variant)
    name = convert.reference_unet_name if variant == 'unet' else convert.reference_cenet_name
    state = {f'module.{k}': v for k, v in convert.to_torch_state_dict(variables, name).items()}
    assert_trees_equal(convert.torch_cenet_to_flax(state, cfg), variables)


def test_oct_checkpoint_with_more_classes():
    cfg = config('cenet', num_classes=12)  # the reference CE_Net_OCT
    state = convert.to_torch_state_dict(model_variables('cenet', num_classes=12),
                                        convert.reference_cenet_name)
    assert convert.reference_num_classes(state) == 12
    assert convert.torch_cenet_to_flax(state, cfg)['params']['head']['final_conv3'][
        'kernel'].shape == (3, 3, 32, 12)
    with pytest.raises(convert.ConversionError, match=r'finalconv3.weight: expected \(1, 32, 3, 3\)'
                                                      r', got \(12, 32, 3, 3\)'):
        convert.torch_cenet_to_flax(state, 'cenet')


def test_config_mismatch_names_the_keys_and_the_likely_variant():
    state = convert.to_torch_state_dict(model_variables('cenet'),
                                        convert.reference_cenet_name)
    with pytest.raises(convert.ConversionError) as info:
        convert.torch_cenet_to_flax(state, reference_config('backbone_dac'))
    message = str(info.value)
    assert 'unexpected keys' in message and 'spp.conv.weight' in message
    assert 'decoder4.conv1.weight: expected (128, 512, 1, 1), got (129, 516, 1, 1)' in message
    assert "looks like variant 'cenet'" in message


def test_two_blocks_claiming_the_same_reference_names_are_rejected():
    state = convert.to_torch_state_dict(model_variables('cenet'), convert.reference_cenet_name)
    cfg = reference_config('cenet')
    cfg.context = ('dac', 'inception_resnet', 'rmp')  # both are `dblock` in the reference
    with pytest.raises(convert.ConversionError, match='two model variables map to'):
        convert.torch_cenet_to_flax(state, cfg)


def test_unshared_dac_has_no_reference_counterpart():
    state = convert.to_torch_state_dict(model_variables('cenet'),
                                        convert.reference_cenet_name)
    cfg = reference_config('cenet')
    cfg.dac_shared = False
    with pytest.raises(convert.ConversionError, match='only has the shared DAC'):
        convert.torch_cenet_to_flax(state, cfg)


# ----------------------------------------------------------------------------- files

def test_msgpack_round_trip_with_metadata(tmp_path):
    variables = model_variables('backbone')
    cfg = reference_config('backbone')
    path = convert.save_variables(tmp_path / 'sub' / 'w.msgpack', variables,
                                  {'kind': 'model', 'model_config': cfg, 'source': 'test'})
    assert [p.name for p in path.parent.iterdir()] == ['w.msgpack']  # no temporary file left
    assert_trees_equal(convert.load_variables(path), variables)
    meta = convert.read_metadata(path)
    assert meta['format'] == convert.FILE_FORMAT and meta['kind'] == 'model'
    assert meta['model_config']['context'] == [] and meta['model_config']['encoder_depth'] == 34


def test_load_variables_rejects_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.msgpack'):
        convert.load_variables(tmp_path / 'missing.msgpack')
    bad = tmp_path / 'bad.msgpack'
    bad.write_bytes(b'\x00not msgpack at all')
    with pytest.raises(convert.ConversionError, match='bad.msgpack'):
        convert.load_variables(bad)


def test_merge_pretrained_encoder_replaces_only_the_encoder():
    model_vars = model_variables('cenet', seed=1)
    encoder = encoder_variables(34, seed=2)
    merged = convert.merge_pretrained_encoder(model_vars, encoder)
    for collection in ('params', 'batch_stats'):
        assert_trees_equal(merged[collection]['encoder'], encoder[collection])
        rest = {k: v for k, v in merged[collection].items() if k != 'encoder'}
        original = {k: v for k, v in model_vars[collection].items() if k != 'encoder'}
        assert_trees_equal(rest, original)
    with pytest.raises(convert.ConversionError, match='missing layer1_2/conv1/kernel'):
        convert.merge_pretrained_encoder(model_vars, encoder_variables(18))


def test_restore_pretrained_from_encoder_and_model_files(tmp_path):
    start = model_variables('backbone', seed=1)
    encoder_file = convert.save_variables(tmp_path / 'enc.msgpack', encoder_variables(34, 2),
                                          {'kind': 'encoder'})
    restored = convert.restore_pretrained(start, encoder_file)
    assert_trees_equal(restored['params']['encoder'], encoder_variables(34, 2)['params'])
    assert_trees_equal(restored['params']['head'], start['params']['head'])
    trained = model_variables('backbone', 3)
    model_file = convert.save_variables(tmp_path / 'model.msgpack', trained, {'kind': 'model'})
    assert_trees_equal(convert.restore_pretrained(start, model_file), trained)
    with pytest.raises(convert.ConversionError, match='does not fit the model'):
        convert.restore_pretrained(model_variables('cenet'), model_file)


# ----------------------------------------------------------------------------- CLI

def test_cli_resnet(tmp_path, capsys):
    from safetensors.numpy import save_file
    variables, state = resnet_state(18)
    save_file(state, str(tmp_path / 'in.safetensors'))
    out = tmp_path / 'out.msgpack'
    assert convert.main(['resnet', '--depth', '18', str(tmp_path / 'in.safetensors'),
                         str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'converted 100 tensors' in printed and 'fc.bias, fc.weight' in printed
    assert_trees_equal(convert.load_variables(out), variables)
    assert convert.read_metadata(out)['kind'] == 'encoder'


def test_cli_cenet_infers_num_classes(tmp_path, capsys):
    from safetensors.numpy import save_file
    variables = model_variables('cenet', num_classes=12)
    save_file(convert.to_torch_state_dict(variables, convert.reference_cenet_name),
              str(tmp_path / 'oct.safetensors'))
    out = tmp_path / 'oct.msgpack'
    assert convert.main(['cenet', '--variant', 'cenet', str(tmp_path / 'oct.safetensors'),
                         str(out)]) == 0
    assert 'converted' in capsys.readouterr().out
    assert_trees_equal(convert.load_variables(out), variables)
    meta = convert.read_metadata(out)
    assert meta['model_config']['num_classes'] == 12 and meta['variant'] == 'cenet'


def test_cli_reports_errors_with_exit_status_2(tmp_path):
    from safetensors.numpy import save_file
    state = convert.to_torch_state_dict(model_variables('cenet'),
                                        convert.reference_cenet_name)
    save_file(state, str(tmp_path / 'cenet.safetensors'))
    result = subprocess.run(
        [sys.executable, '-m', 'cenet_jax.convert', 'cenet', '--variant', 'backbone',
         str(tmp_path / 'cenet.safetensors'), str(tmp_path / 'out.msgpack')],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert 'error: reference checkpoint does not match the model' in result.stderr
    assert 'dblock.dilate1.weight' in result.stderr
    assert not (tmp_path / 'out.msgpack').exists()


# ----------------------------------------------------------------------------- torch files

def test_pth_checkpoints_with_prefix_and_wrapper(tmp_path):
    torch = pytest.importorskip('torch', reason='reading .pth files needs PyTorch')
    variables, state = resnet_state(18)
    tensors = {f'module.{k}': torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    torch.save(tensors, tmp_path / 'plain.pth')
    torch.save({'state_dict': tensors, 'epoch': 3}, tmp_path / 'wrapped.th')
    for name in ('plain.pth', 'wrapped.th'):
        loaded = convert.load_state_dict(tmp_path / name)
        assert_trees_equal(convert.torchvision_resnet_to_flax(loaded, 18), variables)
    torch.save({'epoch': 3}, tmp_path / 'empty.pth')
    with pytest.raises(convert.ConversionError, match='no tensors found'):
        convert.load_state_dict(tmp_path / 'empty.pth')
    bf16 = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in tensors.items()}
    converted = convert.torchvision_resnet_to_flax(bf16, 18)
    assert converted['params']['conv1']['kernel'].dtype == np.float32


def test_torchvision_names(tmp_path):
    pytest.importorskip('torch', reason='needs PyTorch')
    torchvision = pytest.importorskip('torchvision', reason='needs torchvision')
    for depth in (18, 34, 50):
        state = getattr(torchvision.models, f'resnet{depth}')(weights=None).state_dict()
        _, report = convert.convert_resnet(state, depth)
        assert set(report.converted) | set(report.ignored) == set(state)
