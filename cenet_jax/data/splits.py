"""Train / val / test membership: split-list files, seeded holdouts and k-fold cross-validation.

Every split is a pure function of the sorted record ids and a seed, so it is the same on every
host and every run. Datasets with an official train/test split (DRIVE, ORIGA, Messidor,
RIM-ONE, folders with split files) take 'val' as a seeded `val_fraction` holdout of train
(0 = use the test split as val). Datasets with one labelled pool (lung CT, ISBI 2012, folders
without split files) first hold out `test_fraction` for test, or fold `fold` of `num_folds`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, TypeVar

import numpy as np

from cenet_jax.data.decode import ARRAY_EXTENSIONS, IMAGE_EXTENSIONS
from cenet_jax.data.errors import DataError

SPLITS = ('train', 'val', 'test')
T = TypeVar('T')
_VAL_STREAM, _TEST_STREAM, _FOLD_STREAM = 1, 2, 3  # independent random streams per use of the seed


def canonical_split(split: str) -> str:
    """'train' | 'val' | 'test' (accepts 'validation' and 'training' as aliases)."""
    aliases = {'training': 'train', 'validation': 'val', 'valid': 'val', 'testing': 'test'}
    name = aliases.get(split, split)
    if name not in SPLITS:
        raise DataError(f'unknown split {split!r}; expected one of {SPLITS}')
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


def select_split(pools: dict[str, list[T]], split: str, *, val_fraction: float, test_fraction: float,
                 num_folds: int, fold: int, seed: int) -> list[T]:
    """Items of `split` from official pools ('train', 'test', optional 'val') or one pool 'all'.

    Items must already be sorted by id. See the module docstring for the rules.
    """
    split = canonical_split(split)
    if 'all' in pools:
        everything = pools['all']
        if num_folds:
            if not 0 <= fold < num_folds:
                raise DataError(f'fold must be in [0, {num_folds - 1}], got {fold}')
            train_pool, test = _split_off(everything, kfold_indices(len(everything), num_folds, seed)[fold])
        else:
            # test_fraction 0 trains on everything; the test split is then empty (an error if used)
            train_pool, test = _split_off(everything, holdout_indices(len(everything), test_fraction, seed,
                                                                      _TEST_STREAM))
    else:
        train_pool, test = pools['train'], pools['test']
    if split == 'test':
        return test
    if 'val' in pools:
        return pools['val'] if split == 'val' else train_pool
    train, val = _split_off(train_pool, holdout_indices(len(train_pool), val_fraction, seed, _VAL_STREAM))
    if split == 'val':
        return val if val_fraction > 0 else test
    return train
