"""DRIVE and ISBI 2012 from ../shared/datasets: pairing, label conventions, split sizes.
Skipped with a reason when the datasets are absent."""
import numpy as np

from cenet_jax.data import build_eval_records, build_source, data_config_for, model_input


def test_drive_pairing_fov_and_labels(drive_root):
    cfg = data_config_for('drive', str(drive_root), val_fraction=0.0, image_size=(64, 64))
    train, test = build_source(cfg, 'train'), build_source(cfg, 'test')
    assert len(train) == 20 and len(test) == 20
    for entry in train.entries:
        number = entry.id.split('_')[0]
        assert entry.image.endswith(f'{number}_training.tif')
        assert entry.label.endswith(f'1st_manual/{number}_manual1.gif')
        assert entry.fov.endswith(f'mask/{number}_training_mask.gif')
    assert [e.id for e in test.entries][:2] == ['01_test', '02_test']
    record = test[0]
    assert record['image'].shape == (584, 565, 3) and record['image'].dtype == np.uint8
    assert set(np.unique(record['label']).tolist()) == {0, 1}
    assert 0.07 < record['label'].mean() < 0.15      # vessels are ~9-13 % of DRIVE pixels
    assert 0.6 < record['fov'].mean() < 0.75         # the circular field of view
    assert record['label'][~record['fov']].sum() < 0.01 * record['label'].sum()


def test_drive_val_holdout_and_second_observer(drive_root):
    cfg = data_config_for('drive', str(drive_root), val_fraction=0.1, validation='header')
    train, val = build_source(cfg, 'train'), build_source(cfg, 'val')
    assert len(train) == 18 and len(val) == 2
    assert not {e.id for e in train.entries} & {e.id for e in val.entries}
    assert [e.id for e in build_source(cfg, 'val').entries] == [e.id for e in val.entries]  # seeded
    cfg.annotator = 2
    second = build_source(cfg, 'test')
    assert second.entries[0].label.endswith('2nd_manual/01_manual2.gif')
    assert set(np.unique(second[0]['label']).tolist()) == {0, 1}  # palette {0, 1} read as a binary mask


def test_drive_eval_records_every_image_once(drive_root):
    cfg = data_config_for('drive', str(drive_root), val_fraction=0.0, image_size=(64, 64), validation='header')
    records = build_eval_records(cfg, 'test')
    ids = [record['id'] for record in records]
    assert ids == sorted(ids) and len(set(ids)) == 20
    first = records[0]
    assert first['model_image'].shape == (64, 64, 3) and first['model_image'].dtype == np.float32
    np.testing.assert_array_equal(first['model_image'], model_input(first, cfg))
    assert first['image'].shape == (584, 565, 3)


def test_isbi_membrane_is_foreground_and_splits(isbi_root):
    cfg = data_config_for('isbi', str(isbi_root), val_fraction=0.0, test_fraction=1 / 3)
    train, test = build_source(cfg, 'train'), build_source(cfg, 'test')
    assert len(train) == 20 and len(test) == 10
    assert not {e.id for e in train.entries} & {e.id for e in test.entries}
    for entry in train.entries:
        assert entry.label.endswith(f'train/label/{entry.id}.png')
    record = train[0]
    assert record['image'].shape == (512, 512, 3)
    assert np.array_equal(record['image'][..., 0], record['image'][..., 2])  # grey replicated
    assert 0.15 < record['label'].mean() < 0.3  # membranes (stored as 0) are ~22 % and are class 1
    assert record['fov'].all()
