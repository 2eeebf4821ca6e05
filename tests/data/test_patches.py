"""Patch training (data.crop_size) and the in-memory decode cache (data.cache_decoded)."""
import numpy as np
import pytest

from cenet_jax.data import config as data_config
from cenet_jax.data import pipeline
from cenet_jax.data.config import data_config_for
from cenet_jax.data.sources import build_source
from cenet_jax.data.transforms import AugmentSpec, TrainTransform, random_crop

NO_AUGMENT = AugmentSpec(enabled=False)


def coordinate_record(height: int, width: int) -> dict:
    """Image whose red / green channels encode the row / column, label = row parity."""
    rows, cols = np.mgrid[:height, :width]
    image = np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.uint8)
    return {'image': image, 'label': (rows % 2).astype(np.int32), 'fov': np.ones((height, width), bool), 'id': 'c'}


def test_random_crop_takes_the_same_window_of_every_array_and_covers_all_positions():
    image = np.arange(10 * 12).reshape(10, 12)
    corners = set()
    for seed in range(400):
        a, b = random_crop((image, image * 2), (4, 5), np.random.default_rng(seed))
        assert a.shape == (4, 5) and np.array_equal(b, 2 * a)
        corners.add(divmod(int(a[0, 0]), 12))
    assert corners == {(r, c) for r in range(7) for c in range(8)}  # every placement, edges included


def test_train_transform_crops_a_window_of_the_model_size_image():
    record = coordinate_record(64, 96)
    transform = TrainTransform(image_hw=(64, 96), augment=NO_AUGMENT, crop_hw=(32, 48))
    for seed in range(5):
        example = transform(record, np.random.default_rng(seed))
        assert example['image'].shape == (32, 48, 3) and example['label'].shape == (32, 48)
        pixels = np.rint((example['image'] + 1.6) * 255 / 3.2).astype(int)   # undo 'reference'
        top, left = pixels[0, 0, 0], pixels[0, 0, 1]
        np.testing.assert_array_equal(pixels[:, 0, 0], np.arange(top, top + 32))
        np.testing.assert_array_equal(pixels[0, :, 1], np.arange(left, left + 48))
        np.testing.assert_array_equal(example['label'][:, 0], np.arange(top, top + 32) % 2)


def test_crop_size_is_checked_against_the_image_size():
    cfg = data_config_for('synthetic_vessels', image_size=(64, 64))
    assert data_config.crop_hw(cfg) is None
    cfg.crop_size = (32, 48)
    assert data_config.crop_hw(cfg) == (32, 48)
    cfg.crop_size = (96, 32)
    with pytest.raises(ValueError, match='crop_size .* no larger than data.image_size'):
        data_config.crop_hw(cfg)
    with pytest.raises(ValueError, match='larger than the 10x12 image'):
        random_crop((np.zeros((10, 12)),), (11, 4), np.random.default_rng(0))


def test_training_batches_are_patches_and_resume_exactly():
    cfg = data_config_for('synthetic_vessels', image_size=(64, 64))
    cfg.crop_size = (32, 32)
    cfg.synthetic.num_train = 6
    iterator = pipeline.build_train_iterator(cfg, global_batch_size=4, seed=3)
    first = next(iterator)
    assert first['image'].shape == (4, 32, 32, 3) and first['label'].shape == (4, 32, 32)
    state = iterator.get_state()
    expected = next(iterator)
    again = pipeline.build_train_iterator(cfg, global_batch_size=4, seed=3)
    again.set_state(state)
    resumed = next(again)
    assert all(np.array_equal(expected[k], resumed[k]) for k in expected)


def test_decoded_records_are_cached_once_per_process(folder_root, monkeypatch):
    cfg = data_config_for('folder', str(folder_root), val_fraction=0.0, test_fraction=0.34)
    plain = build_source(cfg, 'train')
    cfg.cache_decoded = True
    cached = build_source(cfg, 'train')
    calls = []
    original = type(cached)._decode
    monkeypatch.setattr(type(cached), '_decode', lambda self, i: calls.append((self is cached, i))
                        or original(self, i))
    for _ in range(3):
        for index in range(len(cached)):
            record, fresh = cached[index], plain[index]
            assert all(np.array_equal(record[k], fresh[k]) for k in ('image', 'label', 'fov'))
    assert sorted(i for is_cached, i in calls if is_cached) == list(range(len(cached)))  # once each
    assert sum(not is_cached for is_cached, _ in calls) == 3 * len(plain)   # without: every time


def test_cached_model_size_records_give_the_same_batches(folder_root, monkeypatch):
    """With data.cache_decoded the train records are resized to the model size once, not every
    epoch; the batches are those of the uncached pipeline, bit for bit."""
    cfg = data_config_for('folder', str(folder_root), val_fraction=0.0, test_fraction=0.34)
    cfg.image_size = (48, 48)
    cfg.crop_size = (32, 32)
    batches = {}
    for cache in (False, True):
        cfg.cache_decoded = cache
        iterator = pipeline.build_train_iterator(cfg, global_batch_size=2, seed=5)
        batches[cache] = [next(iterator) for _ in range(4)]
    for a, b in zip(batches[False], batches[True]):
        assert all(np.array_equal(a[k], b[k]) for k in ('image', 'label', 'fov'))
    resizes = []
    original = pipeline.resize_image
    monkeypatch.setattr(pipeline, 'resize_image', lambda *a: resizes.append(1) or original(*a))
    source = pipeline.ModelSizeRecords(build_source(cfg, 'train'), (48, 48))
    for _ in range(3):
        for index in range(len(source)):
            assert source[index]['image'].shape == (48, 48, 3)
    assert len(resizes) == len(source)   # once per record, not once per epoch
