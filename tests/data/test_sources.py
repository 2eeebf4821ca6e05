"""Readers of every folder layout, on tiny fake datasets, and the record contract."""
import numpy as np
import pytest

from cenet_jax.data import DataError, build_source, data_config_for
from cenet_jax.data.disc_crop import brightest_point, crop_box
from cenet_jax.data.errors import NoValidationSplit

from .fakes import (make_isbi_tiff, make_messidor, make_origa, make_rimone, oct_boundaries, save,
                    write_list)


def check_record(record, num_classes=2):
    """The record contract of docs/architecture.md."""
    height, width = record['label'].shape
    assert record['image'].dtype == np.uint8 and record['image'].shape == (height, width, 3)
    assert record['label'].dtype == np.int32
    assert 0 <= record['label'].min() and record['label'].max() < num_classes
    assert record['fov'].dtype == np.bool_ and record['fov'].shape == (height, width)
    assert isinstance(record['id'], str)


@pytest.mark.parametrize('name, make, sizes', [
    ('origa', make_origa, {'train': 4, 'test': 2}),
    ('messidor', make_messidor, {'train': 4, 'test': 2}),
    ('rimone', make_rimone, {'train': 3, 'test': 2}),
])
def test_disc_dataset_readers(tmp_path, name, make, sizes):
    stems = make(tmp_path / name)
    cfg = data_config_for(name, str(tmp_path / name), val_fraction=0.0, disc_crop_size=0)
    for split, count in sizes.items():
        source = build_source(cfg, split)
        assert len(source) == count
        for record in source:
            check_record(record)
            assert record['label'].sum() > 50  # the disc survived the label convention
    assert [r['id'] for r in build_source(cfg, 'test')] == sorted(stems)[-sizes['test']:]
    with pytest.raises(NoValidationSplit):     # val_fraction 0: no val split (the test split is not one)
        build_source(cfg, 'val')


def test_origa_disc_crop_is_centred_on_the_disc_and_clamped(tmp_path):
    make_origa(tmp_path / 'origa', size=(120, 160))
    cfg = data_config_for('origa', str(tmp_path / 'origa'), val_fraction=0.0, disc_crop_size=64,
                          disc_crop_sigma=4.0)
    full = build_source(data_config_for('origa', str(tmp_path / 'origa'), val_fraction=0.0, disc_crop_size=0),
                        'train')
    for record, whole in zip(build_source(cfg, 'train'), full, strict=True):
        top, left, bottom, right = record['crop_box']
        assert record['image'].shape == (64, 64, 3) and bottom - top == 64 and right - left == 64
        assert 0 <= top and bottom <= 120 and 0 <= left and right <= 160
        assert record['label'].sum() == whole['label'].sum()  # the whole disc is inside the crop
        np.testing.assert_array_equal(record['image'], whole['image'][top:bottom, left:right])


def test_brightest_point_ignores_a_single_hot_pixel():
    image = np.full((200, 300, 3), 60, np.uint8)
    yy, xx = np.mgrid[:200, :300]
    image[(yy - 120) ** 2 + (xx - 70) ** 2 < 20 ** 2] = 200  # the disc
    image[10, 280] = 255                                       # a reflection
    row, col = brightest_point(image, sigma=10.0)
    assert abs(row - 120) <= 4 and abs(col - 70) <= 4
    assert crop_box((5, 295), 100, (200, 300)) == (0, 200, 100, 300)   # clamped inside
    assert crop_box((50, 50), 800, (200, 300)) == (0, 0, 200, 300)     # image smaller than crop


def test_isbi_tiff_stack_reader(tmp_path):
    make_isbi_tiff(tmp_path / 'isbi', pages=5)
    cfg = data_config_for('isbi_tiff', str(tmp_path / 'isbi'), val_fraction=0.0, test_fraction=0.2)
    train, test = build_source(cfg, 'train'), build_source(cfg, 'test')
    assert len(train) == 4 and len(test) == 1
    for record in list(train) + list(test):
        check_record(record)
        page = int(record['id'].rsplit('-', 1)[1])
        expected = np.zeros((24, 24), np.int32)
        expected[:, page::6] = 1  # membrane (stored as 0) is class 1 after the ISBI preset's invert
        np.testing.assert_array_equal(record['label'], expected)


def test_oct_boundaries_npy_and_mat_become_class_maps(tmp_path):
    scipy_io = pytest.importorskip('scipy.io')
    root = tmp_path / 'oct'
    rng = np.random.default_rng(0)
    for index in range(4):
        save(root / 'images' / f'b{index}.png', rng.integers(0, 255, (40, 16)).astype(np.uint8))
    (root / 'boundaries').mkdir()
    for index in (1, 2):
        np.save(root / 'boundaries' / f'b{index}.npy', oct_boundaries(16, offset=index))
    np.save(root / 'boundaries' / 'b0.npy', oct_boundaries(16).T)  # (W, 10) is accepted and transposed
    with_nan = oct_boundaries(16, offset=1.0)
    with_nan[3, 5] = np.nan
    scipy_io.savemat(root / 'boundaries' / 'b3.mat', {'layers': with_nan})
    cfg = data_config_for('oct', str(root), val_fraction=0.0, test_fraction=0.25)
    records = list(build_source(cfg, 'train')) + list(build_source(cfg, 'test'))
    assert sorted(r['id'] for r in records) == ['b0', 'b1', 'b2', 'b3']
    for record in records:
        check_record(record, num_classes=11)
        assert record['boundaries'].shape == (10, 16) and record['boundaries'].dtype == np.float32
        assert record['label'][0, 0] == 0 and record['label'][-1, 0] == 10
        assert record['image'].shape == (40, 16, 3)
    b3 = next(r for r in records if r['id'] == 'b3')
    assert not b3['fov'][:, 5].any() and b3['fov'][:, 4].all()  # unannotated column left out of FOV


def test_oct_class_maps_with_split_lists(tmp_path):
    root = tmp_path / 'oct'
    for index in range(3):
        save(root / 'images' / f's{index}.png', np.full((20, 12), 100, np.uint8))
        classes = np.repeat(np.arange(10, dtype=np.uint8), 2)[:, None].repeat(12, axis=1)
        save(root / 'labels' / f's{index}.png', classes)
    write_list(root / 'train.txt', ['s0', 's1'])
    write_list(root / 'test.txt', ['s2'])
    cfg = data_config_for('oct', str(root), val_fraction=0.0)
    assert [r['id'] for r in build_source(cfg, 'train')] == ['s0', 's1']
    record = build_source(cfg, 'test')[0]
    check_record(record, num_classes=11)
    assert record['label'].max() == 9 and 'boundaries' not in record


def test_generic_folder_binary_and_multiclass(folder_root, tmp_path):
    cfg = data_config_for('folder', str(folder_root), val_fraction=0.25, test_fraction=0.34)
    sizes = {split: len(build_source(cfg, split)) for split in ('train', 'val', 'test')}
    assert sizes == {'train': 3, 'val': 1, 'test': 2}
    root = tmp_path / 'multi'
    for index in range(3):
        save(root / 'images' / f'm{index}.png', np.zeros((8, 8, 3), np.uint8))
        save(root / 'masks' / f'm{index}.png', np.array([0, 85, 170, 255] * 16, np.uint8).reshape(8, 8))
    multi = data_config_for('folder', str(root), num_classes=4, class_values=(0, 85, 170, 255),
                            val_fraction=0.0, test_fraction=0.34)
    record = build_source(multi, 'train')[0]
    check_record(record, num_classes=4)
    np.testing.assert_array_equal(record['label'][0, :4], [0, 1, 2, 3])


def test_missing_root_says_which_flag_and_layout(tmp_path):
    with pytest.raises(DataError, match=r'--config\.data\.root=/path/to/DRIVE.*1st_manual'):
        build_source(data_config_for('drive', ''), 'train')
    with pytest.raises(DataError, match=r'does not exist.*--config\.data\.root'):
        build_source(data_config_for('lung', str(tmp_path / 'nowhere')), 'train')


def test_unknown_split_and_dataset():
    with pytest.raises(DataError, match='unknown split'):
        build_source(data_config_for('synthetic_vessels'), 'dev')
    cfg = data_config_for('synthetic_vessels')
    cfg.name = 'cifar'
    with pytest.raises(DataError, match='unknown dataset'):
        build_source(cfg, 'train')
