"""Seeded holdouts, k-fold and the lung CT split (80/20 and cross-validation folds)."""
import numpy as np
import pytest

from cenet_jax.data import build_source, data_config_for
from cenet_jax.data.errors import DataError, NoValidationSplit
from cenet_jax.data.splits import holdout_indices, kfold_indices, kfold_splits, select_split, split_list_stem

from .fakes import make_lung


def test_holdout_is_seeded_and_sized():
    first, again = holdout_indices(20, 0.1, seed=3), holdout_indices(20, 0.1, seed=3)
    np.testing.assert_array_equal(first, again)
    assert len(first) == 2 and len(holdout_indices(20, 0.1, seed=4)) == 2
    assert len(holdout_indices(0, 0.0, seed=0)) == 0
    assert len(holdout_indices(3, 0.01, seed=0)) == 1  # never empty when a fraction is asked for
    with pytest.raises(DataError, match='at least 2'):
        holdout_indices(1, 0.5, seed=0)


def test_kfold_folds_are_disjoint_and_cover_everything():
    folds = kfold_indices(23, 5, seed=0)
    together = np.concatenate(folds)
    assert sorted(together.tolist()) == list(range(23))
    assert {len(f) for f in folds} <= {4, 5}
    items = [f'x{i}' for i in range(23)]
    for train, test in kfold_splits(items, 5, seed=0):
        assert not set(train) & set(test) and sorted(train + test) == sorted(items)
    with pytest.raises(DataError, match='num_folds'):
        kfold_indices(3, 5, seed=0)


def test_official_split_val_holdout_and_val_fraction_zero_has_no_val():
    pools = {'train': list(range(10)), 'test': [100, 101]}
    kwargs = dict(test_fraction=0.2, num_folds=0, fold=0, seed=0)
    train = select_split(pools, 'train', val_fraction=0.2, **kwargs)
    val = select_split(pools, 'val', val_fraction=0.2, **kwargs)
    assert len(train) == 8 and len(val) == 2 and not set(train) & set(val)
    assert select_split(pools, 'train', val_fraction=0.0, **kwargs) == list(range(10))
    # no validation images: an error naming the fix, never the test split in its place
    with pytest.raises(NoValidationSplit, match=r'val split is empty: data.val_fraction is 0.*'
                                                r'--config.data.val_fraction.*--split=test'):
        select_split(pools, 'val', val_fraction=0.0, **kwargs)
    for single in ({'all': list(range(10))}, ):           # one pool: the same rule after the test holdout
        with pytest.raises(NoValidationSplit):
            select_split(single, 'val', val_fraction=0.0, **kwargs)
        assert len(select_split(single, 'val', val_fraction=0.25, **kwargs)) == 2
    # an official val list is used whatever val_fraction says
    assert select_split({**pools, 'val': [50, 51]}, 'val', val_fraction=0.0, **kwargs) == [50, 51]


def test_no_validation_is_a_data_error_for_synthetic_sets_too():
    cfg = data_config_for('synthetic_vessels', image_size=(32, 32))
    cfg.synthetic.num_val = 0
    with pytest.raises(DataError, match='num_val is 0'):
        build_source(cfg, 'val')
    assert issubclass(NoValidationSplit, DataError)


def test_split_list_lines_name_stems():
    assert split_list_stem('images/001.jpg\n') == '001'
    assert split_list_stem('002') == '002'
    assert split_list_stem('im.v2.png') == 'im.v2'


def test_lung_80_20_split_and_folds_are_disjoint(tmp_path):
    make_lung(tmp_path / 'lung', count=10)
    cfg = data_config_for('lung', str(tmp_path / 'lung'), val_fraction=0.0)
    ids = {split: {r['id'] for r in build_source(cfg, split)} for split in ('train', 'test')}
    assert len(ids['train']) == 8 and len(ids['test']) == 2 and not ids['train'] & ids['test']
    cfg.val_fraction = 0.25
    with_val = {split: [e.id for e in build_source(cfg, split).entries] for split in ('train', 'val', 'test')}
    assert len(with_val['val']) == 2 and len(with_val['train']) == 6
    assert not set(with_val['val']) & set(with_val['train'])
    cfg.num_folds, cfg.val_fraction = 5, 0.0
    tested = []
    for fold in range(5):
        cfg.fold = fold
        test = {e.id for e in build_source(cfg, 'test').entries}
        train = {e.id for e in build_source(cfg, 'train').entries}
        assert len(test) == 2 and not test & train and len(test | train) == 10
        tested += sorted(test)
    assert sorted(tested) == sorted(ids['train'] | ids['test'])  # every image tested exactly once


def test_lung_ct_is_scaled_per_image(tmp_path):
    make_lung(tmp_path / 'lung', count=3)
    record = build_source(data_config_for('lung', str(tmp_path / 'lung'), val_fraction=0.0,
                                          test_fraction=0.34), 'train')[0]
    assert record['image'].min() == 0 and record['image'].max() == 255  # 'minmax' preset for CT
    assert set(np.unique(record['label']).tolist()) == {0, 1}
