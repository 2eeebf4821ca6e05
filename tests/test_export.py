"""jax.export artefact: the exported function equals the model (batch 1 and 3, the flip TTA
training applied baked in, model.json naming the views run and dropped),
its JSON describes the input encoding exactly, and loading errors name the file."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cenet_jax import exported
from cenet_jax.data.transforms import normalize
from cenet_jax.errors import MissingFileError
from cenet_jax.evaluation import TTAPlan, predict_probs
from cenet_jax.models import build_model
from tests.training.conftest import tiny_config


def random_variables(model) -> dict:
    """Random weights and BatchNorm statistics of the model's shapes, drawn with numpy
    (compiling the model's initialisers costs ~20 s on 2 CPU cores)."""
    shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                            jnp.zeros((1, 64, 64, 3)))
    rng = np.random.default_rng(0)
    def draw(path, s):
        if jax.tree_util.keystr(path).endswith("['var']"):
            return rng.uniform(0.5, 1.5, s.shape).astype(s.dtype)
        return rng.normal(0.0, 0.2, s.shape).astype(s.dtype)
    return jax.tree_util.tree_map_with_path(draw, shapes)


def test_exported_function_equals_the_model_for_batch_1_and_3(tmp_path):
    # CE-Net (ResNet-18 + DAC, 64 x 64); the exported model uses the XLA convolutions, the
    # reference the configured formulation (model.conv_impl).
    config = tiny_config()
    config.data.augment.vflip = False   # trained without vertical flips: hflip TTA only
    model = build_model(config.model)
    variables = random_variables(model)
    artefact, meta = exported.export_model(config, variables, tta='flips', source='test')
    path, meta_path = exported.save_exported(artefact, meta, tmp_path / 'model.jax')
    assert meta_path == tmp_path / 'model.json'

    fn, loaded = exported.load_exported(path)
    x = np.random.default_rng(0).normal(size=(3, 64, 64, 3)).astype(np.float32)
    expected = np.asarray(jax.jit(lambda v, x: predict_probs(
        lambda x, v: model.apply(v, x, train=False), x, v,
        tta=TTAPlan('flips', ('identity', 'hflip'))))(variables, x))
    for n in (1, 3):
        got = np.asarray(fn(x[:n]))
        assert got.shape == (n, 64, 64, 1) and got.dtype == np.float32
        np.testing.assert_allclose(got, expected[:n], rtol=1e-5, atol=1e-6)
    assert loaded['input']['shape'] == ['batch', 64, 64, 3]
    assert loaded['output']['kind'] == 'sigmoid probabilities' and loaded['tta'] == 'flips'
    assert loaded['tta_run'] == 'identity,hflip' and loaded['tta_view_names'] == ['identity', 'hflip']
    assert sorted(loaded['tta_dropped']) == ['vflip', 'vflip+hflip']
    assert loaded['num_classes'] == 2 and loaded['threshold'] == 0.5 and loaded['file'] == 'model.jax'


@pytest.mark.parametrize('normalization', ['reference', 'imagenet'])
@pytest.mark.parametrize('channel_order', ['rgb', 'bgr'])
def test_json_scale_and_offset_reproduce_the_normalisation(normalization, channel_order):
    pixels = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    scale, offset = exported.normalization_affine(normalization, channel_order)
    ordered = pixels[..., ::-1] if channel_order == 'bgr' else pixels
    np.testing.assert_allclose(ordered * np.array(scale) + np.array(offset),
                               normalize(pixels, normalization, channel_order), atol=1e-5)


def test_loading_a_missing_or_foreign_file_names_it(tmp_path):
    with pytest.raises(MissingFileError, match='model.jax'):
        exported.load_exported(tmp_path / 'model.jax')
    (tmp_path / 'model.jax').write_bytes(b'not a model')
    (tmp_path / 'model.json').write_text('{}')
    with pytest.raises(Exception, match='not a model written by'):
        exported.load_exported(tmp_path / 'model.jax')
