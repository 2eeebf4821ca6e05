"""Readers of the two public vessel sets DRIVE models are scored on, CHASE_DB1 and STARE, on
small synthetic files in their distributed layouts, and their bad inputs (each a DataError naming
the file, exit status 2 at the command line)."""
import numpy as np
import pytest
from PIL import Image

from cenet_jax import cli
from cenet_jax.data import DataError, build_source, data_config_for

from .fakes import fundus, make_chase, make_stare, save
from .test_sources import check_record


def test_chase_db1_pairs_images_with_the_chosen_observer(tmp_path):
    names = make_chase(tmp_path / 'CHASE')
    first = build_source(data_config_for('chase_db1', str(tmp_path / 'CHASE'), cross_dataset=True), 'test')
    second = build_source(data_config_for('chase_db1', str(tmp_path / 'CHASE'), cross_dataset=True,
                                          annotator=2), 'test')
    assert [r['id'] for r in first] == sorted(names) and len(second) == len(names)
    for a, b in zip(first, second, strict=True):
        check_record(a)
        expected = np.asarray(Image.open(tmp_path / 'CHASE' / f'{a["id"]}_1stHO.png')) > 0
        np.testing.assert_array_equal(a['label'], expected)
        assert b['label'].sum() > a['label'].sum()           # the second observer's wider masks
        assert a['fov_source'] == 'derived'                   # the preset derives the FOV
    assert first.info.line == f'test: 4 images, the whole set ({tmp_path / "CHASE"}): scored cross-dataset, ' \
                              'so nothing is held out (CHASE_DB1 has no official test split)'


def test_chase_db1_masks_stored_as_0_1_are_vessels(tmp_path):
    make_chase(tmp_path / 'CHASE', names=('Image_01L', 'Image_01R'), label_values=(0, 1))
    source = build_source(data_config_for('chase_db1', str(tmp_path / 'CHASE'), cross_dataset=True), 'test')
    assert all(r['label'].sum() > 20 for r in source)


def test_chase_db1_trains_on_seeded_folds(tmp_path):
    names = make_chase(tmp_path / 'CHASE')
    tested = []
    for fold in range(2):
        cfg = data_config_for('chase_db1', str(tmp_path / 'CHASE'), num_folds=2, fold=fold, val_fraction=0.0)
        test, train = build_source(cfg, 'test'), build_source(cfg, 'train')
        assert {r['id'] for r in test}.isdisjoint(r['id'] for r in train)
        assert test.info.line.startswith(f'test: 2 of 4 images, fold {fold + 1} of 2')
        tested += [r['id'] for r in test]
    assert sorted(tested) == sorted(names)


def test_stare_reads_ppm_pgm_png_and_gzip_with_either_observer(tmp_path):
    hoover = make_stare(tmp_path / 'STARE')
    cfg = data_config_for('stare', str(tmp_path / 'STARE'), cross_dataset=True)
    with pytest.warns(UserWarning, match=r'1 of the 4 images in .*stare-images have no label'):
        source = build_source(cfg, 'test')
    assert [r['id'] for r in source] == ['im0001', 'im0002', 'im0003']   # im0004 has no label
    for record in source:
        check_record(record)
        np.testing.assert_array_equal(record['label'], hoover[record['id']] > 0)
        assert record['image'].mean() > 20
    cfg.annotator = 2
    with pytest.warns(UserWarning):
        kouznetsova = build_source(cfg, 'test')
    assert all(b['label'].sum() > a['label'].sum() for a, b in zip(source, kouznetsova, strict=True))
    assert kouznetsova.info.line.startswith('test: 3 images, the whole set (')
    assert 'labels-vk' in kouznetsova.info.line


def test_stare_label_without_image_and_oddly_named_label(tmp_path):
    make_stare(tmp_path / 'STARE')
    (tmp_path / 'STARE' / 'stare-images' / 'im0003.png').unlink()
    save(tmp_path / 'STARE' / 'labels-ah' / 'im0009.png', np.zeros((60, 64), np.uint8))
    cfg = data_config_for('stare', str(tmp_path / 'STARE'), cross_dataset=True)
    with pytest.warns(UserWarning), pytest.raises(DataError) as error:
        build_source(cfg, 'test')
    message = str(error.value)
    assert 'im0003.ah.png (no image im0003.* in' in message
    assert 'im0009.png (not named NAME.ah.ppm' in message


def test_chase_db1_image_without_mask_names_the_expected_file(tmp_path):
    make_chase(tmp_path / 'CHASE')
    (tmp_path / 'CHASE' / 'Image_02R_1stHO.png').unlink()
    with pytest.raises(DataError, match=r'Image_02R\.jpg has no label: expected .*Image_02R_1stHO\.png'):
        build_source(data_config_for('chase_db1', str(tmp_path / 'CHASE'), cross_dataset=True), 'test')


def test_mask_of_another_size_names_both_files(tmp_path):
    make_chase(tmp_path / 'CHASE')
    save(tmp_path / 'CHASE' / 'Image_01R_1stHO.png', np.zeros((30, 64), np.uint8))
    with pytest.raises(DataError, match=r'label .*Image_01R_1stHO\.png is 30x64 \(HxW\) but its image '
                                        r'.*Image_01R\.jpg is 60x64'):
        build_source(data_config_for('chase_db1', str(tmp_path / 'CHASE'), cross_dataset=True), 'test')


@pytest.mark.parametrize('name, folder', [('chase_db1', ''), ('stare', 'stare-images'), ('folder', 'images')])
def test_empty_image_folder_is_an_error_naming_it(tmp_path, name, folder):
    root = tmp_path / name
    (root / folder).mkdir(parents=True, exist_ok=True)
    for other in {'stare': ('labels-ah',), 'folder': ('masks',)}.get(name, ()):
        (root / other).mkdir()
    with pytest.raises(DataError, match=rf"dataset '{name}': no images in {root / folder}"):
        build_source(data_config_for(name, str(root), cross_dataset=True), 'test')


def test_bad_input_is_an_error_line_and_exit_status_2(tmp_path, capsys):
    (tmp_path / 'CHASE').mkdir()
    image, _, _ = fundus(0)
    save(tmp_path / 'CHASE' / 'Image_05L.jpg', image)
    cfg = data_config_for('chase_db1', str(tmp_path / 'CHASE'), cross_dataset=True)
    status = cli.report_errors(lambda: build_source(cfg, 'test'))
    err = capsys.readouterr().err
    assert status == 2 and err.startswith('error: ') and 'Image_05L_1stHO.png' in err
    assert 'Traceback' not in err
