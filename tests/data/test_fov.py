"""The field of view: derived from fundus images (`data.fov='auto'`), read from the folder
dataset's fov/ masks, or none; and, on the real DRIVE set when present, how well the derived FOV
agrees with the masks DRIVE ships."""
import numpy as np
import pytest
from PIL import Image

from cenet_jax.data import DataError, build_source, data_config_for
from cenet_jax.data.fov import derive_fov, otsu_threshold

from .fakes import fundus, make_folder_dataset, save


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize('size', [(64, 64), (96, 128), (128, 112)])
def test_derived_fov_matches_the_disc_of_synthetic_fundus_images(size):
    for seed in range(3):
        image, _, truth = fundus(seed, size)
        derived = derive_fov(image)
        assert derived.dtype == np.bool_ and derived.shape == size
        assert iou(derived, truth) > 0.95, (size, seed, iou(derived, truth))


def test_dark_vessels_and_noise_do_not_punch_holes_and_specks_stay_out():
    image, _, truth = fundus(3, (96, 96))
    image = image.copy()
    image[40:56, 40:56] = 0                      # a dark lesion inside the disc
    image[2, 2] = image[93, 4] = 255             # hot pixels on the border
    derived = derive_fov(image)
    assert derived[40:56, 40:56].all() and not derived[2, 2] and not derived[93, 4]
    assert iou(derived, truth) > 0.95


def test_images_without_a_dark_border_or_without_light_are_all_fov():
    assert derive_fov(np.full((40, 50, 3), 150, np.uint8)).all()
    assert derive_fov(np.zeros((40, 50, 3), np.uint8)).all()
    with pytest.raises(ValueError, match='uint8'):
        derive_fov(np.zeros((40, 50), np.uint8))


def test_otsu_threshold_splits_two_levels():
    values = np.array([10] * 50 + [200] * 50, np.uint8)
    assert 10 <= otsu_threshold(values) < 200


def _fundus_folder(root, count=3):
    """A folder dataset of synthetic fundus images (64 x 64) with vessel masks; the true FOVs."""
    truths = {}
    for index in range(count):
        image, vessels, fov = fundus(index, (64, 64))
        save(root / 'images' / f'f{index}.png', image)
        save(root / 'masks' / f'f{index}.png', vessels)
        truths[f'f{index}'] = fov
    return truths


def test_fov_auto_derives_and_fov_files_win(tmp_path):
    truths = _fundus_folder(tmp_path / 'fundus')
    cfg = data_config_for('folder', str(tmp_path / 'fundus'), fov='auto', cross_dataset=True)
    for record in build_source(cfg, 'test'):
        assert record['fov_source'] == 'derived' and iou(record['fov'], truths[record['id']]) > 0.95
    plain = build_source(data_config_for('folder', str(tmp_path / 'fundus'), cross_dataset=True), 'test')
    assert all(r['fov_source'] == 'none' and r['fov'].all() for r in plain)
    square = np.zeros((64, 64), np.uint8)
    square[8:56, 8:56] = 255
    for stem in truths:
        save(tmp_path / 'fundus' / 'fov' / f'{stem}.png', square)
    for mode in ('file', 'auto'):
        cfg.fov = mode
        for record in build_source(cfg, 'test'):
            assert record['fov_source'] == 'given' and record['fov'].sum() == 48 * 48
    cfg.fov = 'none'
    assert all(r['fov'].all() and r['fov_source'] == 'none' for r in build_source(cfg, 'test'))


def test_folder_fov_mask_missing_or_of_another_size_is_an_error(tmp_path):
    make_folder_dataset(tmp_path / 'f', count=3)
    save(tmp_path / 'f' / 'fov' / 'case00.png', np.full((40, 48), 255, np.uint8))
    save(tmp_path / 'f' / 'fov' / 'case01.png', np.full((20, 48), 255, np.uint8))
    cfg = data_config_for('folder', str(tmp_path / 'f'), cross_dataset=True)
    with pytest.raises(DataError) as error:
        build_source(cfg, 'test')
    message = str(error.value)
    assert 'FOV mask' in message and 'case01.png is 20x48 (HxW) but its image' in message
    assert 'case02.png has no FOV mask: expected' in message and 'fov/case02.png' in message
    with pytest.raises(DataError, match="data.fov must be one of"):
        build_source(data_config_for('folder', str(tmp_path / 'f'), fov='derive'), 'test')


def test_derived_fov_agrees_with_drive_masks(drive_root):
    """The measurable check: DRIVE's 20 test images, derived FOV against the shipped masks."""
    ious, dices = [], []
    for path in sorted((drive_root / 'test' / 'images').glob('*_test.tif')):
        image = np.asarray(Image.open(path).convert('RGB'))
        mask = np.asarray(Image.open(drive_root / 'test' / 'mask' / path.name.replace('.tif', '_mask.gif'))
                          .convert('L')) > 127
        derived = derive_fov(image)
        ious.append(iou(derived, mask))
        dices.append(2 * (derived & mask).sum() / (derived.sum() + mask.sum()))
    assert len(ious) == 20
    assert np.mean(ious) > 0.99 and min(ious) > 0.98, (np.mean(ious), min(ious))
    assert np.mean(dices) > 0.995, np.mean(dices)
