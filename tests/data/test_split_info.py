"""Every split says where its images come from and how many there are (`source.info`), the split
'all' is every image of a set, and a test list alone makes the other images train."""
import numpy as np
import pytest

from cenet_jax.data import build_eval_records, build_source, data_config_for
from cenet_jax.data.errors import NoValidationSplit
from cenet_jax.data.splits import canonical_split, choose_split

from .fakes import make_folder_dataset, save, write_list


def folder_cfg(root, **overrides):
    return data_config_for('folder', str(root), **overrides)


def test_split_lists_say_which_file(folder_root):
    write_list(folder_root / 'train.txt', ['case00'])
    write_list(folder_root / 'test.txt', [f'case{i:02d}' for i in range(6)])
    source = build_source(folder_cfg(folder_root), 'test')
    assert len(source) == 6
    assert source.info.line == f'test: 6 images from {folder_root / "test.txt"}'
    assert source.info.lines()[0] == f'dataset: folder at {folder_root}'
    with pytest.raises(NoValidationSplit, match=f'{folder_root / "train.txt"} has no validation list'):
        build_source(folder_cfg(folder_root, val_fraction=0.0), 'val')   # never the test split


def test_holdout_without_lists_says_so(folder_root):
    source = build_source(folder_cfg(folder_root), 'test')
    assert source.info.line == (f'test: 1 of 6 images, a seeded 20 % holdout (split_seed 0; '
                                f'no {folder_root / "test.txt"})')
    train = build_source(folder_cfg(folder_root, val_fraction=0.25), 'train')
    assert train.info.line == 'train: 4 of 6 images, what the test holdout leaves, less 1 held out for val'
    val = build_source(folder_cfg(folder_root, val_fraction=0.25), 'val')
    assert val.info.line == (f'val: 1 of 5 images, a seeded 25 % holdout of the train split (split_seed 0, '
                             f'{folder_root / "images"})')


def test_cross_dataset_tests_a_set_without_lists_whole(folder_root):
    source = build_source(folder_cfg(folder_root, cross_dataset=True), 'test')
    assert len(source) == 6 and source.info.cross_dataset
    assert source.info.line.startswith('test: 6 images, the whole set (')
    assert 'cross-dataset' in source.info.lines()[0]


def test_a_test_list_alone_makes_the_other_images_train(folder_root):
    write_list(folder_root / 'test.txt', ['case01', 'case04'])
    cfg = folder_cfg(folder_root, val_fraction=0.0)
    assert [r['id'] for r in build_source(cfg, 'test')] == ['case01', 'case04']
    train = build_source(cfg, 'train')
    assert [r['id'] for r in train] == ['case00', 'case02', 'case03', 'case05']
    assert train.info.line == f'train: 4 images from {folder_root / "images"} (the images test.txt does not list)'


def test_split_all_is_every_image_once(folder_root):
    write_list(folder_root / 'train.txt', ['case00', 'case01', 'case02'])
    write_list(folder_root / 'test.txt', ['case02', 'case03'])      # case02 in both lists
    records = build_eval_records(folder_cfg(folder_root), 'all')
    assert [r['id'] for r in records] == ['case00', 'case01', 'case02', 'case03']
    assert records.info.line == (f'all: 4 images, every image of {folder_root / "train.txt"}, '
                                 f'{folder_root / "test.txt"}')
    unlisted = make_folder_dataset(folder_root.parent / 'plain', count=5)
    everything = build_source(folder_cfg(folder_root.parent / 'plain'), 'all')
    assert [r['id'] for r in everything] == unlisted
    assert everything.info.line == f'all: 5 images, every image of {folder_root.parent / "plain" / "images"}'
    assert canonical_split('all', allow_all=True) == 'all'
    with pytest.raises(ValueError, match='unknown split'):
        canonical_split('all')


def test_choose_split_words_for_folds_and_official_pools():
    pools = {'all': list(range(10))}
    items, words = choose_split(pools, 'test', val_fraction=0.1, test_fraction=0.2, num_folds=5, fold=2,
                                seed=0, no_split='the set has no official test split')
    assert len(items) == 2
    assert words == '2 of 10 images, fold 3 of 5 (data.fold=2, split_seed 0; the set has no official test split)'
    official = {'train': list(range(10)), 'test': [10, 11]}
    items, words = choose_split(official, 'all', val_fraction=0.1, test_fraction=0.2, num_folds=0, fold=0, seed=0,
                                sources={'train': 'D/training', 'test': 'D/test'})
    assert items == list(range(12)) and words == '12 images, every image of D/training, D/test'
    items, words = choose_split(official, 'train', val_fraction=0.2, test_fraction=0.2, num_folds=0, fold=0,
                                seed=0, sources={'train': 'D/training', 'test': 'D/test'})
    assert len(items) == 8 and words == '8 of 10 images from D/training, 2 held out for val'


def test_fov_lines_say_where_the_fov_comes_from(folder_root):
    none = build_source(folder_cfg(folder_root, cross_dataset=True), 'test')
    assert none.info.lines()[2].startswith('FOV: none (the set has no FOV masks): the whole image is scored and '
                                           'the metrics include the border')
    auto = build_source(folder_cfg(folder_root, cross_dataset=True, fov='auto'), 'test')
    assert auto.info.fov.startswith('derived from each image (data.fov=auto')
    for index in range(6):
        save(folder_root / 'fov' / f'case{index:02d}.png', np.full((40, 48), 255, np.uint8))
    files = build_source(folder_cfg(folder_root, cross_dataset=True, fov='auto'), 'test')
    assert files.info.fov == f'masks from {folder_root / "fov"}'
    assert build_source(folder_cfg(folder_root, fov='none'), 'test').info.fov.startswith('none (data.fov=none)')
