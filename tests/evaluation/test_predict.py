"""Tests of cenet_jax.evaluation.tta and .predict: dihedral TTA, non-square handling, resizing,
sliding windows."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cenet_jax import evaluation
from cenet_jax.evaluation.tta import dihedral_views, undo_dihedral


def pointwise_logits(images):
    """A per-pixel function of the channels: equivariant under every flip and rotation."""
    return jnp.stack([images[..., 0] * 1.5 - images[..., 1], images[..., 2] - 0.3, images.sum(-1)], axis=-1)


def ramp_logits(images):
    """Not equivariant: adds a position-dependent ramp (rows and columns weighted differently)."""
    height, width = images.shape[1:3]
    ramp = jnp.arange(height)[:, None] * 0.3 - jnp.arange(width)[None, :] * 0.1
    return images[..., :1] + ramp[None, :, :, None]


@pytest.fixture(scope='module')
def square_batch():
    return jnp.asarray(np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype(np.float32))


def test_each_view_maps_back_to_the_input(square_batch):
    views = dihedral_views(square_batch)
    assert views.shape == (8,) + square_batch.shape
    flat = np.asarray(views).reshape(8, -1)
    assert len({row.tobytes() for row in flat}) == 8  # eight different views of a random batch
    restored = undo_dihedral(views)
    for index in range(8):
        np.testing.assert_array_equal(np.asarray(restored[index]), np.asarray(square_batch))


def test_views_follow_the_reference_order(square_batch):
    x = np.asarray(square_batch)
    rotated = np.rot90(x, 1, axes=(1, 2))
    expected = [x, x[:, ::-1], x[:, :, ::-1], x[:, ::-1, ::-1],
                rotated, rotated[:, ::-1], rotated[:, :, ::-1], rotated[:, ::-1, ::-1]]
    np.testing.assert_array_equal(np.asarray(dihedral_views(square_batch)), np.stack(expected))


def _reference_tta_sum(model, image):
    """The authors' test_one_img_from_path_1 combination, in numpy, for one (H, W, C) image."""
    img90 = np.array(np.rot90(image))
    img1 = np.concatenate([image[None], img90[None]])
    img2 = np.array(img1)[:, ::-1]
    img3 = np.concatenate([img1, img2])
    img4 = np.array(img3)[:, :, ::-1]
    mask = model(np.concatenate([img3, img4]))
    mask1 = mask[:4] + mask[4:, :, ::-1]
    mask2 = mask1[:2] + mask1[2:, ::-1]
    return mask2[0] + np.rot90(mask2[1])[::-1, ::-1]


def test_d8_matches_the_reference_combination_for_a_position_dependent_model(square_batch):
    def sigmoid_model(batch):
        return np.asarray(jax.nn.sigmoid(ramp_logits(jnp.asarray(batch))))[..., 0]

    probs = evaluation.make_predict_fn(ramp_logits, tta='d8')(square_batch)
    for index in range(square_batch.shape[0]):
        expected = _reference_tta_sum(sigmoid_model, np.asarray(square_batch[index])) / 8
        np.testing.assert_allclose(np.asarray(probs[index, ..., 0]), expected, rtol=1e-6, atol=1e-7)


def test_pointwise_model_is_unchanged_by_tta(square_batch):
    plain = evaluation.make_predict_fn(pointwise_logits, tta='none')(square_batch)
    for mode in ('d8', 'flips'):
        with_tta = evaluation.make_predict_fn(pointwise_logits, tta=mode)(square_batch)
        np.testing.assert_allclose(np.asarray(with_tta), np.asarray(plain), rtol=1e-6, atol=1e-7)
    assert np.allclose(np.asarray(plain).sum(-1), 1.0, atol=1e-6)  # softmax over K = 3


def test_make_predict_fn_compiles_once_per_shape_and_passes_model_args(square_batch):
    traces = []

    def apply_fn(images, scale):
        traces.append(images.shape)
        return pointwise_logits(images) * scale

    predict = evaluation.make_predict_fn(apply_fn, tta='d8')
    first = predict(square_batch, jnp.float32(2.0))
    second = predict(square_batch + 1.0, jnp.float32(2.0))
    assert traces == [(2, 8, 8, 3)]  # one trace: the model mapped over the 8 views of 2 images
    expected = evaluation.predict_probs(lambda x: pointwise_logits(x) * 2.0, square_batch + 1.0, tta='none')
    np.testing.assert_allclose(np.asarray(second), np.asarray(expected), rtol=1e-6, atol=1e-7)
    assert first.shape == (2, 8, 8, 3)


def test_non_square_inputs():
    batch = jnp.asarray(np.random.default_rng(1).normal(size=(1, 8, 12, 3)).astype(np.float32))
    assert evaluation.resolve_tta('d8', 8, 12, 'flips').label == 'flips'
    assert evaluation.resolve_tta('d8', 8, 12, 'pad').label == 'd8_pad'
    assert evaluation.resolve_tta('d8', 8, 8, 'error').label == 'd8'
    with pytest.raises(ValueError, match='square'):
        evaluation.make_predict_fn(pointwise_logits, tta='d8', non_square='error')(batch)
    plain = np.asarray(evaluation.make_predict_fn(pointwise_logits, tta='none')(batch))
    for non_square in ('flips', 'pad'):
        probs = evaluation.make_predict_fn(pointwise_logits, tta='d8', non_square=non_square)(batch)
        assert probs.shape == (1, 8, 12, 3)
        np.testing.assert_allclose(np.asarray(probs), plain, rtol=1e-6, atol=1e-7)
    fallback = evaluation.make_predict_fn(ramp_logits, tta='d8', non_square='flips')(batch)
    flips = evaluation.make_predict_fn(ramp_logits, tta='flips')(batch)
    np.testing.assert_array_equal(np.asarray(fallback), np.asarray(flips))
    with pytest.raises(ValueError, match='tta'):
        evaluation.make_predict_fn(pointwise_logits, tta='d4')


def test_resize_matches_torch_bilinear_upsampling():
    torch = pytest.importorskip('torch')
    maps = np.random.default_rng(2).random((5, 7, 2)).astype(np.float32)
    resized = np.asarray(evaluation.resize_probs(maps, (13, 17)))
    expected = torch.nn.functional.interpolate(torch.tensor(maps).permute(2, 0, 1)[None], size=(13, 17),
                                               mode='bilinear', align_corners=False)[0].permute(1, 2, 0)
    np.testing.assert_allclose(resized, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert evaluation.resize_probs(maps[None], (3, 4)).shape == (1, 3, 4, 2)


@pytest.mark.parametrize('blend', ['gaussian', 'mean'])
def test_sliding_window_reconstructs_a_pointwise_function(blend):
    image = np.random.default_rng(3).normal(size=(50, 70, 3)).astype(np.float32)
    predict = jax.jit(lambda batch: jax.nn.softmax(pointwise_logits(batch), axis=-1))
    expected = np.asarray(predict(jnp.asarray(image[None])))[0]
    got = evaluation.sliding_window_predict(predict, image, window=(32, 32), overlap=0.25, blend=blend,
                                           batch_size=4)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    small = evaluation.sliding_window_predict(predict, image[:20, :24], window=(32, 32), blend=blend)
    np.testing.assert_allclose(small, expected[:20, :24], rtol=1e-5, atol=1e-6)


def test_predict_full_image_modes():
    image = np.full((40, 30, 3), 0.25, np.float32)
    predict = jax.jit(lambda batch: jax.nn.sigmoid(batch[..., :1] * 4.0))
    expected = 1.0 / (1.0 + np.exp(-1.0))
    for mode in ('resize', 'sliding'):
        probs = evaluation.predict_full_image(predict, image, model_size=(32, 32), mode=mode)
        assert probs.shape == (40, 30, 1)
        np.testing.assert_allclose(probs, expected, rtol=1e-5)
    with pytest.raises(ValueError, match='mode'):
        evaluation.predict_full_image(predict, image, model_size=(32, 32), mode='tile')
