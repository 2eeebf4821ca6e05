"""Resizing, augmentation alignment of image / label / FOV, and input normalisation."""
import numpy as np
import pytest

from cenet_jax.data.transforms import (AugmentSpec, TrainTransform, augment, dihedral, normalize, resize_image,
                                       resize_mask)

GEOMETRY_ONLY = AugmentSpec(affine_prob=1.0, hsv_prob=0.0, scale=(0.85, 1.15), aspect=(0.9, 1.1))


def block_image(rng, size=64, block=8):
    """Random 8 x 8-pixel blocks, red channel 0 or 255, so the label is a function of the pixel."""
    blocks = rng.integers(0, 2, (size // block, size // block)).astype(bool)
    on = np.kron(blocks, np.ones((block, block), bool))
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 0] = np.where(on, 255, 0)
    image[..., 1] = rng.integers(0, 256, (size, size))
    return image, on.astype(np.uint8)


def test_augmentation_keeps_image_label_and_fov_aligned():
    rng = np.random.default_rng(0)
    for trial in range(12):
        image, label = block_image(rng)
        fov = np.ones(label.shape, np.uint8)
        out_image, out_label, out_fov = augment(image, label, fov, np.random.default_rng(trial), GEOMETRY_ONLY)
        from_image = (out_image[..., 0] > 127).astype(np.uint8)
        inside = out_fov > 0
        assert inside.mean() > 0.6
        # bilinear (image) and nearest (label) switch at the same place, so only rounding ties
        # differ; a 1-pixel misalignment would disagree on ~6 % of the pixels
        assert (out_label[inside] != from_image[inside]).mean() < 0.005
        assert np.all(out_image[out_fov == 0] == 0)  # warped-in border is black and outside the FOV


def test_flips_form_the_dihedral_group_and_move_arrays_together():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    seen = set()
    for seed in range(64):
        a, b = dihedral((image, image.copy()), np.random.default_rng(seed), AugmentSpec())
        assert np.array_equal(a, b)
        seen.add(a.tobytes())
    assert len(seen) == 8
    rectangular = np.arange(12, dtype=np.uint8).reshape(3, 4)
    shapes = {dihedral((rectangular,), np.random.default_rng(s), AugmentSpec())[0].shape for s in range(32)}
    assert shapes == {(3, 4)}  # no transpose for non-square inputs


def test_train_transform_is_deterministic_per_rng_and_typed():
    rng = np.random.default_rng(1)
    image, label = block_image(rng, size=48)
    record = {'image': image, 'label': label.astype(np.int32), 'fov': np.ones((48, 48), bool), 'id': 'x'}
    transform = TrainTransform(image_hw=(32, 32), augment=AugmentSpec(affine_prob=1.0, hsv_prob=1.0))
    first = transform(record, np.random.default_rng(7))
    again = transform(record, np.random.default_rng(7))
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert first['image'].dtype == np.float32 and first['image'].shape == (32, 32, 3)
    assert first['label'].dtype == np.int32 and first['fov'].dtype == np.float32
    assert set(np.unique(first['label'])) <= {0, 1}


def test_hsv_jitter_keeps_grey_images_grey():
    grey = np.repeat(np.random.default_rng(0).integers(0, 256, (16, 16, 1)).astype(np.uint8), 3, axis=2)
    spec = AugmentSpec(hflip=False, vflip=False, transpose=False, affine_prob=0.0, hsv_prob=1.0)
    out, _, _ = augment(grey, np.zeros((16, 16), np.uint8), np.ones((16, 16), np.uint8),
                        np.random.default_rng(3), spec)
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert not np.array_equal(out, grey)


def test_normalizations():
    pixels = np.array([[[0, 255, 128]]], np.uint8)
    np.testing.assert_allclose(normalize(pixels, 'reference'), [[[-1.6, 1.6, 128 / 255 * 3.2 - 1.6]]], atol=1e-6)
    imagenet = normalize(pixels, 'imagenet')
    np.testing.assert_allclose(imagenet[0, 0, 0], (0 - 0.485) / 0.229, atol=1e-6)
    bgr = normalize(pixels, 'imagenet', 'bgr')
    np.testing.assert_allclose(bgr[0, 0, 0], (128 / 255 - 0.406) / 0.225, atol=1e-6)
    with pytest.raises(ValueError, match='normalization'):
        normalize(pixels, 'zscore')


def test_resize_bilinear_image_nearest_label():
    label = np.zeros((10, 12), np.int32)
    label[:, 6:] = 10
    resized = resize_mask(label, (20, 24))
    assert resized.dtype == np.int32 and set(np.unique(resized)) == {0, 10}
    image = np.zeros((10, 12, 3), np.uint8)
    image[:, 6:] = 200
    assert len(np.unique(resize_image(image, (20, 24)))) > 2  # interpolated edge
