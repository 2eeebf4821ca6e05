"""Synthetic datasets: deterministic per (seed, index), distinct across splits, plausible content."""
import numpy as np
import pytest

from cenet_jax.data import DataError, build_source, data_config_for
from cenet_jax.data.synthetic import SyntheticSource

KINDS = [('synthetic_vessels', 2), ('synthetic_disc', 2), ('synthetic_oct', 11)]


def same(a, b):
    return all(np.array_equal(a[k], b[k]) for k in a if k != 'id') and a['id'] == b['id']


@pytest.mark.parametrize('kind, num_classes', KINDS)
def test_deterministic_per_seed_and_index(kind, num_classes):
    source = SyntheticSource(kind, 'train', 8, (64, 80), seed=3, num_classes=num_classes)
    again = SyntheticSource(kind, 'train', 8, (64, 80), seed=3, num_classes=num_classes)
    assert same(source[5], again[5]) and same(source[2], source[2])
    assert not np.array_equal(source[5]['image'], source[6]['image'])
    other_seed = SyntheticSource(kind, 'train', 8, (64, 80), seed=4, num_classes=num_classes)
    other_split = SyntheticSource(kind, 'test', 8, (64, 80), seed=3, num_classes=num_classes)
    assert not np.array_equal(source[5]['image'], other_seed[5]['image'])
    assert not np.array_equal(source[5]['image'], other_split[5]['image'])
    record = source[0]
    assert record['image'].shape == (64, 80, 3) and record['image'].dtype == np.uint8
    assert record['label'].dtype == np.int32 and record['label'].shape == (64, 80)
    assert record['label'].max() < num_classes and record['fov'].dtype == np.bool_


def test_vessels_are_dark_thin_structures_inside_the_fov():
    source = SyntheticSource('synthetic_vessels', 'train', 6, (128, 128), seed=0, num_classes=2)
    for record in source:
        label, fov, green = record['label'].astype(bool), record['fov'], record['image'][..., 1].astype(float)
        assert 0.02 < label.mean() < 0.2
        assert not (label & ~fov).any()
        assert 0.55 < fov.mean() < 0.8
        assert green[label].mean() < green[fov & ~label].mean() - 8  # vessels darker than retina
        assert record['image'][~fov].mean() < 15                      # black outside the FOV


def test_disc_is_a_bright_compact_blob():
    source = SyntheticSource('synthetic_disc', 'val', 6, (128, 128), seed=0, num_classes=2)
    for record in source:
        disc, grey = record['label'].astype(bool), record['image'].astype(float).mean(axis=2)
        assert 0.01 < disc.mean() < 0.1
        assert grey[disc].mean() > grey[record['fov'] & ~disc].mean() + 40


def test_oct_has_ordered_boundaries_and_all_classes():
    source = SyntheticSource('synthetic_oct', 'train', 4, (96, 128), seed=0, num_classes=11)
    for record in source:
        boundaries = record['boundaries']
        assert boundaries.shape == (10, 128) and np.all(np.diff(boundaries, axis=0) > 0)
        assert set(np.unique(record['label']).tolist()) == set(range(11))
        assert 0 < boundaries.min() and boundaries.max() < 96
        assert np.array_equal(record['image'][..., 0], record['image'][..., 1])


def test_config_sizes_and_class_count_checks():
    cfg = data_config_for('synthetic_vessels', image_size=(64, 64))
    cfg.synthetic.num_val = 7
    assert len(build_source(cfg, 'val')) == 7 and build_source(cfg, 'train')[0]['image'].shape == (64, 64, 3)
    cfg.synthetic.size = (32, 48)
    assert build_source(cfg, 'test')[0]['image'].shape == (32, 48, 3)
    with pytest.raises(DataError, match='num_classes=11'):
        build_source(data_config_for('synthetic_oct', num_classes=2), 'train')
