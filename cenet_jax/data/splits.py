"""Train / val / test membership: split-list files, seeded holdouts and k-fold cross-validation.

Every split is a pure function of the sorted record ids and a seed, so it is the same on every
host and every run. Datasets with an official train/test split (DRIVE, ORIGA, Messidor,
RIM-ONE, folders with split files) take 'val' as a seeded `val_fraction` holdout of train
(0 = no validation images: asking for 'val' is then `NoValidationSplit`, never the test split,
so nothing that picks a checkpoint or a threshold on 'val' can look at the test images).
Datasets with one labelled pool (lung CT, ISBI 2012, CHASE_DB1, STARE, folders without split
files) first hold out `test_fraction` for test, or fold `fold` of `num_folds`, and take 'val'
from what remains by the same rule; scored cross-dataset (a model trained on another set) their
test split is the whole pool. The split 'all' is every record. `choose_split` also says, in words, where the
records of a split come from and how many there are.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, TypeVar

import numpy as np

from cenet_jax.data.decode import ARRAY_EXTENSIONS, IMAGE_EXTENSIONS
from cenet_jax.data.errors import DataError, NoValidationSplit

SPLITS = ('train', 'val', 'test')
T = TypeVar('T')
_VAL_STREAM, _TEST_STREAM, _FOLD_STREAM = 1, 2, 3  # independent random streams per use of the seed


def canonical_split(split: str, allow_all: bool = False) -> str:
    """'train' | 'val' | 'test' (accepts 'validation' and 'training' as aliases), and with
    `allow_all` 'all' (every record of the set, for scoring a model that never saw it)."""
    aliases = {'training': 'train', 'validation': 'val', 'valid': 'val', 'testing': 'test'}
    name = aliases.get(split, split)
    known = SPLITS + (('all',) if allow_all else ())
    if name not in known:
        raise DataError(f'unknown split {split!r}; expected one of {known}')
    return name


def split_list_stem(line: str) -> str:
    """File stem named by one line of a split list ('images/01.jpg', '01.png', '01' -> '01')."""
    name = Path(line.strip().replace('\\', '/')).name
    suffix = Path(name).suffix.lower()
    return name[: -len(suffix)] if suffix in IMAGE_EXTENSIONS + ARRAY_EXTENSIONS else name


def read_split_list(path: Path) -> list[str]:
    """Stems listed in a split file, one per non-empty line, in file order, without duplicates."""
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise DataError(f'cannot read split list {path}: {error}') from error
    stems = list(dict.fromkeys(split_list_stem(line) for line in lines if line.strip()))
    if not stems:
        raise DataError(f'split list {path} is empty; expected one image name per line')
    return stems


def holdout_indices(count: int, fraction: float, seed: int, stream: int = _VAL_STREAM) -> np.ndarray:
    """Sorted indices of a seeded random `fraction` of `count` items (at least 1, at most count-1)."""
    if not 0.0 <= fraction < 1.0:
        raise DataError(f'holdout fraction must be in [0, 1), got {fraction}')
    if fraction == 0.0:
        return np.zeros((0,), np.int64)
    if count < 2:
        raise DataError(f'cannot hold out {fraction:.0%} of {count} record(s); need at least 2')
    size = min(count - 1, max(1, round(count * fraction)))
    order = np.random.default_rng([seed, stream]).permutation(count)
    return np.sort(order[:size])


def kfold_indices(count: int, num_folds: int, seed: int) -> list[np.ndarray]:
    """`num_folds` disjoint sorted index arrays covering range(count), sizes differing by <= 1."""
    if not 2 <= num_folds <= count:
        raise DataError(f'num_folds must be in [2, {count}] for {count} records, got {num_folds}')
    order = np.random.default_rng([seed, _FOLD_STREAM]).permutation(count)
    return [np.sort(fold) for fold in np.array_split(order, num_folds)]


def kfold_splits(items: Sequence[T], num_folds: int, seed: int) -> list[tuple[list[T], list[T]]]:
    """For each fold: (train items, test items); every item is tested exactly once."""
    folds = kfold_indices(len(items), num_folds, seed)
    splits = []
    for fold in folds:
        held = set(fold.tolist())
        splits.append(([x for i, x in enumerate(items) if i not in held], [items[i] for i in fold]))
    return splits


def _split_off(items: list[T], held: np.ndarray) -> tuple[list[T], list[T]]:
    """(items not in `held`, items in `held`), both in the original order."""
    held_set = set(held.tolist())
    return ([x for i, x in enumerate(items) if i not in held_set], [items[i] for i in sorted(held_set)])


def _images(count: int) -> str:
    return f'{count} image{"" if count == 1 else "s"}'


def _percent(fraction: float) -> str:
    return f'{fraction * 100:g} %'


def choose_split(pools: dict[str, list[T]], split: str, *, val_fraction: float, test_fraction: float,
                 num_folds: int, fold: int, seed: int, sources: dict[str, str] | None = None,
                 no_split: str = '', whole_set_test: bool = False) -> tuple[list[T], str]:
    """(items of `split`, where they come from in words) from official pools ('train', 'test',
    optional 'val') or one pool 'all'; 'all' is every item of every pool.

    Items must already be sorted by id. `sources` names where each pool's items come from (a
    split list, a folder) and `no_split` why a single pool has no official test split; with
    `whole_set_test` (cross-dataset evaluation: the model never saw this set) the test split of
    a single pool is all of it. See the module docstring for the other rules. The words read
    e.g. '28 images from DIR/test.txt' or
    '6 of 28 images, a seeded 20 % holdout (split_seed 0; no DIR/test.txt)'.
    """
    split = canonical_split(split, allow_all=True)
    sources = sources or {}

    def where(pool: str) -> str:
        return sources.get(pool, f'the {pool} pool')
    if split == 'all':
        unique = {_item_id(x): x for pool in pools.values() for x in pool}   # a name in two lists once
        everything = [unique[key] for key in sorted(unique)]
        return everything, f'{_images(len(everything))}, every image of {", ".join(where(p) for p in pools)}'
    reason = f' ({no_split})' if no_split else ''
    also = f'; {no_split}' if no_split else ''
    if 'all' in pools:
        everything = pools['all']
        total = len(everything)
        if whole_set_test:
            train_pool, test = [], everything
            test_how = (f'{_images(total)}, the whole set ({where("all")}): scored cross-dataset, so nothing '
                        f'is held out{reason}')
            train_what = 'the whole set is the test split (cross-dataset)'
        elif num_folds:
            if not 0 <= fold < num_folds:
                raise DataError(f'fold must be in [0, {num_folds - 1}], got {fold}')
            train_pool, test = _split_off(everything, kfold_indices(total, num_folds, seed)[fold])
            test_how = (f'{len(test)} of {_images(total)}, fold {fold + 1} of {num_folds} '
                        f'(data.fold={fold}, split_seed {seed}{also})')
            train_what = f'the other {num_folds - 1} folds'
        else:
            # test_fraction 0 trains on everything; the test split is then empty (an error if used)
            train_pool, test = _split_off(everything, holdout_indices(total, test_fraction, seed, _TEST_STREAM))
            test_how = (f'{len(test)} of {_images(total)}, a seeded {_percent(test_fraction)} holdout '
                        f'(split_seed {seed}{also})')
            train_what = 'what the test holdout leaves'
        train_source = where('all')

        def train_words(count: int, held: int) -> str:
            less = f', less {held} held out for val' if held else ''
            return f'{count} of {_images(total)}, {train_what}{less}'
    else:
        train_pool, test = pools['train'], pools['test']
        test_how = f'{_images(len(test))} from {where("test")}'
        train_source = where('train')

        def train_words(count: int, held: int) -> str:
            if not held:
                return f'{_images(count)} from {train_source}'
            return f'{count} of {_images(count + held)} from {train_source}, {held} held out for val'
    if split == 'test':
        return test, test_how
    if 'val' in pools:
        return (pools['val'], f'{_images(len(pools["val"]))} from {where("val")}') if split == 'val' \
            else (train_pool, train_words(len(train_pool), 0))
    if split == 'val' and val_fraction == 0:
        raise NoValidationSplit(
            f'the val split is empty: data.val_fraction is 0 and {train_source} has no validation list '
            '(the test split is never used as val); train with --config.data.val_fraction (e.g. 0.1: a '
            'seeded holdout of the train split) to have held-out training images, or score the test '
            'split explicitly (--split=test)')
    train, val = _split_off(train_pool, holdout_indices(len(train_pool), val_fraction, seed, _VAL_STREAM))
    if split == 'val':
        return val, (f'{len(val)} of {_images(len(train_pool))}, a seeded {_percent(val_fraction)} holdout of '
                     f'the train split (split_seed {seed}, {train_source})')
    return train, train_words(len(train), len(val))


def _item_id(item):
    """The id records are sorted by (`Entry.id`; plain items are their own id)."""
    return getattr(item, 'id', item)


def select_split(pools: dict[str, list[T]], split: str, *, val_fraction: float, test_fraction: float,
                 num_folds: int, fold: int, seed: int) -> list[T]:
    """Items of `split` from official pools ('train', 'test', optional 'val') or one pool 'all'
    (`choose_split` without the words)."""
    return choose_split(pools, split, val_fraction=val_fraction, test_fraction=test_fraction,
                        num_folds=num_folds, fold=fold, seed=seed)[0]
