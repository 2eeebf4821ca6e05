"""Tests of cenet_jax.losses: Eq. 2 Dice, (B)CE, the dispatcher and the class helpers."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cenet_jax import losses


def _binary_logits_for(labels, magnitude):
    return (2.0 * labels[..., None].astype(np.float32) - 1.0) * magnitude


@pytest.fixture(scope='module')
def random_batch():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(2, 8, 8)).astype(np.int32)
    logits = rng.normal(size=(2, 8, 8, 3)).astype(np.float32) * 2
    return jnp.asarray(logits), jnp.asarray(labels)


@pytest.mark.parametrize('num_channels', [1, 3])
def test_gradients_finite_at_constant_masks(num_channels):
    configs = [(kind, denominator, reduction) for kind in losses.LOSS_KINDS
               for denominator in ('squared', 'sum') for reduction in ('batch', 'image')]

    def every_loss(logits, labels):
        return jnp.stack([losses.segmentation_loss(logits, labels, kind=kind, denominator=denominator,
                                                   reduction=reduction)
                          for kind, denominator, reduction in configs])

    values_and_jacobian = jax.jit(lambda z, y: (every_loss(z, y), jax.jacrev(every_loss)(z, y)))
    for label_value in (0, 1):
        for logit_value in (0.0, 60.0, -60.0, 1e4, -1e4):
            labels = jnp.full((2, 4, 4), label_value, jnp.int32)
            logits = jnp.full((2, 4, 4, num_channels), logit_value, jnp.float32)
            values, jacobian = values_and_jacobian(logits, labels)
            assert np.all(np.isfinite(np.asarray(values))), (label_value, logit_value)
            assert np.all(np.isfinite(np.asarray(jacobian))), (label_value, logit_value)


@pytest.mark.parametrize('denominator', ['squared', 'sum'])
@pytest.mark.parametrize('reduction', ['batch', 'image'])
def test_perfect_logits_give_zero_dice_loss(denominator, reduction):
    labels = np.zeros((2, 6, 6), np.int32)
    labels[0, 1:4, 2:5] = 1
    binary = losses.soft_dice_loss(_binary_logits_for(labels, 40.0), labels,
                                   denominator=denominator, reduction=reduction)
    multi_labels = labels + np.eye(6, dtype=np.int32)[None]  # classes 0, 1, 2
    multi_logits = np.eye(3, dtype=np.float32)[multi_labels] * 40.0
    multi = losses.soft_dice_loss(multi_logits, multi_labels, denominator=denominator,
                                  reduction=reduction)
    assert float(binary) < 1e-6
    assert float(multi) < 1e-6


def test_dice_known_values():
    labels = np.array([[[1, 0]]], np.int32)
    logits = np.zeros((1, 1, 2, 1), np.float32)  # p = 0.5 everywhere
    # squared: 2 * 0.5 / (0.25 + 0.25 + 1) = 2/3; sum: 2 * 0.5 / (0.5 + 0.5 + 1) = 1/2
    assert float(losses.soft_dice_loss(logits, labels)) == pytest.approx(1 / 3, abs=1e-6)
    assert float(losses.soft_dice_loss(logits, labels, denominator='sum')) == pytest.approx(0.5, abs=1e-6)
    # smoothing s = 1: (1 + 1) / (1.5 + 1)
    assert float(losses.soft_dice_loss(logits, labels, smooth=1.0)) == pytest.approx(1 - 2 / 2.5, abs=1e-6)


def test_dice_sum_matches_reference_code_formula():
    rng = np.random.default_rng(1)
    labels = (rng.random((3, 8, 8)) < 0.3).astype(np.int32)
    logits = rng.normal(size=(3, 8, 8, 1)).astype(np.float32)
    p = 1 / (1 + np.exp(-logits[..., 0].astype(np.float64)))
    # reference loss.py soft_dice_coeff, batch=True, smooth=0: 2 sum(y p) / (sum y + sum p)
    batch = 1 - 2 * np.sum(labels * p) / (np.sum(labels) + np.sum(p))
    per_image = np.mean(1 - 2 * np.sum(labels * p, axis=(1, 2)) / (labels.sum((1, 2)) + p.sum((1, 2))))
    assert float(losses.soft_dice_loss(logits, labels, denominator='sum')) == pytest.approx(batch, abs=1e-6)
    assert float(losses.soft_dice_loss(logits, labels, denominator='sum', reduction='image')) == \
        pytest.approx(per_image, abs=1e-6)


def test_multiclass_dice_is_weighted_mean_of_class_dice(random_batch):
    logits, labels = random_batch
    p = np.asarray(jax.nn.softmax(logits, -1), np.float64)
    g = np.eye(3)[np.asarray(labels)]
    dice = 2 * (p * g).sum((0, 1, 2)) / ((p ** 2).sum((0, 1, 2)) + g.sum((0, 1, 2)))
    weights = np.array([1.0, 2.0, 1.0])
    expected_uniform = 1 - dice.mean()
    expected_weighted = 1 - np.sum(weights / weights.sum() * dice)
    assert float(losses.soft_dice_loss(logits, labels)) == pytest.approx(expected_uniform, abs=1e-6)
    assert float(losses.soft_dice_loss(logits, labels, class_weights=weights)) == \
        pytest.approx(expected_weighted, abs=1e-6)


def test_bce_known_values_and_class_weights():
    labels = np.array([[[1, 0]]], np.int32)
    logits = np.array([[[[2.0], [-1.0]]]], np.float32)
    softplus = lambda v: math.log1p(math.exp(v))  # noqa: E731
    plain = (softplus(-2.0) + softplus(-1.0)) / 2
    weighted = (3 * softplus(-2.0) + 1 * softplus(-1.0)) / 4  # weights [background 1, vessel 3]
    assert float(losses.cross_entropy_loss(logits, labels)) == pytest.approx(plain, abs=1e-6)
    assert float(losses.cross_entropy_loss(logits, labels, class_weights=[1.0, 3.0])) == \
        pytest.approx(weighted, abs=1e-6)


def test_weighted_cross_entropy_matches_torch(random_batch):
    torch = pytest.importorskip('torch')
    logits, labels = random_batch
    weights = [0.5, 2.0, 1.0]
    expected = torch.nn.functional.cross_entropy(
        torch.tensor(np.asarray(logits)).permute(0, 3, 1, 2), torch.tensor(np.asarray(labels)).long(),
        weight=torch.tensor(weights))
    got = losses.cross_entropy_loss(logits, labels, class_weights=weights)
    assert float(got) == pytest.approx(float(expected), abs=1e-5)


def test_binary_and_two_class_softmax_agree():
    rng = np.random.default_rng(2)
    labels = (rng.random((2, 6, 6)) < 0.4).astype(np.int32)
    z = rng.normal(size=(2, 6, 6, 1)).astype(np.float32) * 3
    two_class = np.concatenate([np.zeros_like(z), z], axis=-1)  # softmax([0, z])[1] == sigmoid(z)
    assert float(losses.cross_entropy_loss(z, labels)) == \
        pytest.approx(float(losses.cross_entropy_loss(two_class, labels)), abs=1e-6)
    assert float(losses.soft_dice_loss(z, labels)) == pytest.approx(
        float(losses.soft_dice_loss(two_class, labels, class_weights=[0.0, 1.0])), abs=1e-6)


def test_mask_excludes_pixels():
    rng = np.random.default_rng(3)
    labels = (rng.random((1, 6, 6)) < 0.5).astype(np.int32)
    logits = rng.normal(size=(1, 6, 6, 1)).astype(np.float32)
    mask = np.ones((1, 6, 6), np.float32)
    mask[:, :, :3] = 0
    changed = logits.copy()
    changed[:, :, :3] = 100.0
    for kind in losses.LOSS_KINDS:
        a = losses.segmentation_loss(logits, labels, mask, kind=kind)
        b = losses.segmentation_loss(changed, labels, mask, kind=kind)
        assert float(a) == pytest.approx(float(b), abs=1e-6)


def test_dispatcher_sums_terms_and_jits(random_batch):
    logits, labels = random_batch
    dice = losses.segmentation_loss(logits, labels, kind='dice')
    ce = losses.segmentation_loss(logits, labels, kind='ce')
    jitted = jax.jit(losses.segmentation_loss, static_argnames=('kind', 'denominator', 'reduction'))
    both = jitted(logits, labels, kind='dice_ce')
    assert float(both) == pytest.approx(float(dice) + float(ce), abs=1e-5)


def test_bad_arguments_raise(random_batch):
    logits, labels = random_batch
    with pytest.raises(ValueError, match='loss kind'):
        losses.segmentation_loss(logits, labels, kind='focal')
    with pytest.raises(ValueError, match='labels must be'):
        losses.segmentation_loss(logits, labels[:, :4])
    with pytest.raises(ValueError, match='class_weights'):
        losses.segmentation_loss(logits, labels, class_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match='denominator'):
        losses.soft_dice_loss(logits, labels, denominator='cube')


def test_probabilities_and_predict_classes():
    z = np.array([[[[-2.0], [0.5]]]], np.float32)
    probs = losses.probabilities(z)
    np.testing.assert_allclose(np.asarray(probs), 1 / (1 + np.exp(-z)), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(losses.predict_classes(probs)), [[[0, 1]]])
    np.testing.assert_array_equal(np.asarray(losses.predict_classes(z, from_logits=True)), [[[0, 1]]])
    np.testing.assert_array_equal(losses.predict_classes(np.array([[0.2, 0.7]])[..., None], threshold=0.75),
                                  [[0, 0]])
    multi = np.array([[[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]])
    result = losses.predict_classes(multi)
    assert isinstance(result, np.ndarray)
    np.testing.assert_array_equal(result, [[1, 0]])
