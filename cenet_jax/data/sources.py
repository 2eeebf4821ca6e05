"""grain data sources of records, one per dataset layout, built from the data config.

`build_source(data_cfg, split)` lists and pairs the files of the configured dataset, selects the
split, validates it (all problems reported before training starts), and returns a random-access
source of records (see `records.py` for the record contract) whose `info` (`SplitInfo`) says
where its records come from. Synthetic datasets need no files.
"""
from __future__ import annotations

import warnings

import ml_collections

from cenet_jax.data import config as data_config
from cenet_jax.data.errors import DataError, NoValidationSplit
from cenet_jax.data.layouts import Entry, list_dataset
from cenet_jax.data.provenance import SplitInfo, describe_fov
from cenet_jax.data.records import DecodeSpec, Record, decode_entry
from cenet_jax.data.splits import canonical_split, choose_split
from cenet_jax.data.synthetic import SyntheticSource
from cenet_jax.data.validate import validate_entries


class FileRecordSource:
    """grain RandomAccessDataSource decoding one `Entry` per index; any failure while reading
    is re-raised as a `DataError` naming the record's files (also inside grain workers).
    With `cache=True` each record is decoded once per process and kept (records are never
    modified downstream), which saves the decode of every epoch on small datasets. `info` says
    where the records come from."""

    def __init__(self, entries: list[Entry], spec: DecodeSpec, name: str, split: str, num_skipped: int = 0,
                 cache: bool = False, info: SplitInfo | None = None):
        self.entries = list(entries)
        self.spec = spec
        self.name, self.split = name, split
        self.num_skipped = num_skipped  # records dropped by validation with on_bad_record='skip'
        self.cache: dict[int, Record] | None = {} if cache else None
        self.info = info or SplitInfo(name, '', split, len(self.entries), f'{len(self.entries)} records',
                                      describe_fov(self.entries, spec.fov), num_skipped)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Record:
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        record = self._decode(index)
        if self.cache is not None:
            self.cache[index] = record
        return record

    def _decode(self, index: int) -> Record:
        entry = self.entries[index]
        try:
            return decode_entry(entry, self.spec)
        except DataError:
            raise
        except Exception as error:  # noqa: BLE001 -- name the files whatever the reader raised
            files = ', '.join(p for p in (entry.image, entry.label, entry.fov, entry.boundaries) if p)
            page = f' page {entry.frame}' if entry.frame >= 0 else ''
            raise DataError(f'{self.name}/{self.split} record {entry.id!r}{page}: cannot read {files}: '
                            f'{type(error).__name__}: {error}') from error

    def __iter__(self):
        return (self[index] for index in range(len(self)))

    def __repr__(self) -> str:
        first = self.entries[0].id if self.entries else ''
        return f'FileRecordSource(name={self.name!r}, split={self.split!r}, records={len(self)}, first={first!r})'


def _synthetic_source(data_cfg: ml_collections.ConfigDict, split: str) -> SyntheticSource:
    if split == 'all':
        raise DataError(f'{data_cfg.name} is generated per split: score --split=train, val or test, not all')
    size = tuple(int(v) for v in data_cfg.synthetic.size)
    if size == (0, 0):
        size = data_config.image_hw(data_cfg)
    count, seed = int(data_cfg.synthetic[f'num_{split}']), int(data_cfg.synthetic.seed)
    if split == 'val' and count == 0:
        raise NoValidationSplit(f'the val split of {data_cfg.name} is empty: data.synthetic.num_val is 0; '
                                'set it above 0 to validate')
    source = SyntheticSource(data_cfg.name, split, count, size, seed, int(data_cfg.num_classes))
    source.info = SplitInfo(data_cfg.name, '', split, count,
                            f'{count} generated {data_cfg.name} images (data.synthetic.seed {seed})',
                            'generated with each image' if data_cfg.name != 'synthetic_oct' else
                            'none: the whole image is scored', cross_dataset=bool(data_cfg.get('cross_dataset')))
    return source


def split_entries(data_cfg: ml_collections.ConfigDict,
                  split: str) -> tuple[list[Entry], list[str], list[str], str]:
    """(entries of `split`, label files without an image, notes, where the entries come from in
    words) for a file dataset, unvalidated."""
    listing = list_dataset(data_cfg.name, data_cfg.root, data_config.layout_params(data_cfg))
    entries, source = choose_split(
        listing.pools, split, val_fraction=float(data_cfg.val_fraction),
        test_fraction=float(data_cfg.test_fraction), num_folds=int(data_cfg.num_folds),
        fold=int(data_cfg.fold), seed=int(data_cfg.split_seed), sources=listing.sources,
        no_split=listing.no_split, whole_set_test=bool(data_cfg.get('cross_dataset', False)))
    return entries, listing.orphans, listing.notes, source


def build_source(data_cfg: ml_collections.ConfigDict, split: str) -> FileRecordSource | SyntheticSource:
    """Random-access source of the records of `split` ('train' | 'val' | 'test' | 'all'),
    validated first; its `info` says where they come from."""
    split = canonical_split(split, allow_all=True)
    if data_cfg.name in data_config.SYNTHETIC_DATASETS:
        return _synthetic_source(data_cfg, split)
    if data_cfg.name not in data_config.FILE_DATASETS:
        raise DataError(f'unknown dataset {data_cfg.name!r}; set --config.data.name to one of {data_config.DATASETS}')
    entries, orphans, notes, where = split_entries(data_cfg, split)
    for note in notes:
        warnings.warn(f'{data_cfg.name}: {note}', stacklevel=2)
    spec = data_config.decode_spec(data_cfg)
    good, problems = validate_entries(entries, spec, level=str(data_cfg.validation),
                                      on_bad_record=str(data_cfg.on_bad_record), orphans=orphans,
                                      where=f'{data_cfg.name} {split} split under {data_cfg.root}')
    info = SplitInfo(data_cfg.name, str(data_cfg.root), split, len(good), where, describe_fov(good, spec.fov),
                     skipped=len(entries) - len(good), cross_dataset=bool(data_cfg.get('cross_dataset', False)))
    return FileRecordSource(good, spec, data_cfg.name, split, num_skipped=len(entries) - len(good),
                            cache=bool(data_cfg.get('cache_decoded', False)), info=info)
