"""Every kind of bad input gives a DataError naming the file and what was expected, before
training starts; with on_bad_record='skip' the bad records are dropped with a warning."""
import shutil

import numpy as np
import pytest

from cenet_jax.data import DataError, build_source, build_train_iterator, data_config_for

from .fakes import save, write_list


def folder_cfg(root, **overrides):
    return data_config_for('folder', str(root), **{'val_fraction': 0.0, 'test_fraction': 0.34, **overrides})


def build_every_split(cfg):
    """Build train and test sources (a bad file may sit in either)."""
    return [build_source(cfg, split) for split in ('train', 'test')]


def test_missing_masks_folder(folder_root):
    shutil.rmtree(folder_root / 'masks')
    with pytest.raises(DataError, match=r'masks is missing.*images/NAME'):
        build_source(folder_cfg(folder_root), 'train')


def test_image_without_label(folder_root):
    (folder_root / 'masks' / 'case03.png').unlink()
    with pytest.raises(DataError, match=r'case03\.png has no label: expected .*masks/case03\.png'):
        build_every_split(folder_cfg(folder_root))


def test_label_without_image(folder_root):
    save(folder_root / 'masks' / 'stray.png', np.zeros((40, 48), np.uint8))
    with pytest.raises(DataError, match=r'label without image: .*stray\.png \(no image in .*images pairs with it\)'):
        build_source(folder_cfg(folder_root), 'train')


def test_unreadable_file(folder_root):
    (folder_root / 'images' / 'case01.png').write_bytes(b'this is not a png')
    with pytest.raises(DataError, match=r'case01\.png'):
        build_every_split(folder_cfg(folder_root, validation='header'))


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_file_found_by_full_validation(folder_root):
    truncate(folder_root / 'images' / 'case02.png')
    with pytest.raises(DataError, match=r'cannot decode .*case02\.png'):
        build_every_split(folder_cfg(folder_root, validation='full'))


def test_truncated_file_in_header_mode_fails_at_read_time_naming_the_file(folder_root):
    truncate(folder_root / 'images' / 'case02.png')
    cfg = folder_cfg(folder_root, validation='header', val_fraction=0.0, test_fraction=0.0, num_folds=2)
    source = next(s for s in (build_source(cfg, 'train'), build_source(cfg, 'test'))
                  if 'case02' in [e.id for e in s.entries])
    index = [e.id for e in source.entries].index('case02')
    with pytest.raises(DataError, match=r"record 'case02'.*case02\.png"):
        source[index]


def test_label_size_differs_from_image(folder_root):
    save(folder_root / 'masks' / 'case04.png', np.zeros((20, 48), np.uint8))
    with pytest.raises(DataError, match=r'label .*case04\.png is 20x48 \(HxW\) but its image .*case04\.png '
                                        r'is 40x48'):
        build_every_split(folder_cfg(folder_root, validation='header'))


def test_label_value_outside_class_range(folder_root):
    for path in (folder_root / 'masks').iterdir():
        save(path, np.ones((40, 48), np.uint8))
    save(folder_root / 'masks' / 'case05.png', np.full((40, 48), 7, np.uint8))
    with pytest.raises(DataError, match=r'case05\.png: label values span \[7, 7\], expected class ids in \[0, 2\]'):
        build_every_split(folder_cfg(folder_root, num_classes=3))


def test_empty_split(tmp_path, folder_root):
    (tmp_path / 'empty' / 'images').mkdir(parents=True)
    (tmp_path / 'empty' / 'masks').mkdir()
    with pytest.raises(DataError, match='cannot hold out|empty'):
        build_source(folder_cfg(tmp_path / 'empty'), 'train')
    write_list(folder_root / 'train.txt', [])
    write_list(folder_root / 'test.txt', ['case00'])
    with pytest.raises(DataError, match=r'split list .*train\.txt is empty'):
        build_source(folder_cfg(folder_root), 'train')


def test_listed_name_without_image(folder_root):
    write_list(folder_root / 'train.txt', ['case00', 'ghost'])
    write_list(folder_root / 'test.txt', ['case01'])
    with pytest.raises(DataError, match=r'ghost.*listed in \S*train\.txt, no such image'):
        build_source(folder_cfg(folder_root), 'train')


def test_skip_policy_drops_bad_records_with_a_warning(folder_root):
    (folder_root / 'masks' / 'case03.png').unlink()
    truncate(folder_root / 'images' / 'case02.png')
    cfg = folder_cfg(folder_root, on_bad_record='skip', test_fraction=0.0, num_folds=2)
    sources = []
    with pytest.warns(UserWarning, match=r'skipping 1 bad record'):
        sources.append(build_source(cfg, 'train'))
    with pytest.warns(UserWarning, match=r'skipping 1 bad record'):
        sources.append(build_source(cfg, 'test'))
    ids = sorted(e.id for s in sources for e in s.entries)
    assert ids == ['case00', 'case01', 'case04', 'case05']
    assert sum(s.num_skipped for s in sources) == 2
    with pytest.warns(UserWarning, match='skipping'):
        iterator = build_train_iterator(cfg, global_batch_size=2, seed=0)
    assert next(iterator)['image'].shape == (2, 448, 448, 3)
    iterator.close()


def test_bad_file_inside_a_worker_process_raises_data_error_naming_it(folder_root):
    truncate(folder_root / 'images' / 'case02.png')
    cfg = folder_cfg(folder_root, validation='header', test_fraction=0.0, num_workers=1, image_size=(32, 32))
    iterator = build_train_iterator(cfg, global_batch_size=6, seed=0)  # every batch holds every record
    with pytest.raises(DataError, match=r"record 'case02'.*images/case02\.png.*truncated"):
        next(iterator)
    iterator.close()
