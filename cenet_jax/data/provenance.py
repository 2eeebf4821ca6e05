"""Where the records of a split come from, in words: `SplitInfo` (dataset, folder, how many
images from which split list, folder or holdout, and where their field of view comes from).

Training logs it for its train and val splits; evaluation logs it and writes it into its
report, so a score always says what it was computed on, e.g.
  test: 6 of 28 images, a seeded 20 % holdout (split_seed 0; no DIR/test.txt)
  FOV: none (the set has no FOV masks): the whole image is scored and the metrics include the
       border around the field of view (...)
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

from cenet_jax.data.layouts import Entry

NO_FOV = ('the whole image is scored and the metrics include the border around the field of view '
          '(fundus photographs: set data.fov=auto to derive the FOV from each image)')


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    """One split of one dataset: its size, the words for where its records come from, and for
    where their FOV comes from."""
    dataset: str
    root: str
    split: str
    count: int
    source: str
    fov: str
    skipped: int = 0
    cross_dataset: bool = False

    @property
    def line(self) -> str:
        """'test: 28 images from DIR/test.txt' (and the bad records skipped, if any)."""
        skipped = f'; {self.skipped} bad record(s) skipped (data.on_bad_record=skip)' if self.skipped else ''
        return f'{self.split}: {self.source}{skipped}'

    def lines(self) -> list[str]:
        """The dataset, the split line and the FOV line."""
        cross = ' (cross-dataset: the model was trained on another dataset)' if self.cross_dataset else ''
        where = f' at {self.root}' if self.root else ''
        return [f'dataset: {self.dataset}{where}{cross}', self.line, f'FOV: {self.fov}']

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields for a report's settings."""
        return {'dataset': self.dataset, 'data_root': self.root, 'split': self.split,
                'num_images': self.count, 'split_source': self.line, 'fov_source': self.fov,
                'cross_dataset': self.cross_dataset}


def _folder_of(paths: Sequence[str]) -> str:
    """The folder the files are in (their common parent)."""
    parents = sorted({str(Path(p).parent) for p in paths})
    return parents[0] if len(parents) == 1 else os.path.commonpath(parents)


def describe_fov(entries: Sequence[Entry], mode: str) -> str:
    """Where the FOV of these entries comes from under `data.fov` = `mode`, in words."""
    if not entries:
        return 'no records'
    with_files = [entry.fov for entry in entries if entry.fov]
    boundaries = sum(1 for entry in entries if entry.boundaries)
    count = len(entries)
    if mode == 'none':
        return f'none (data.fov=none): {NO_FOV}'
    parts = []
    if boundaries:
        parts.append(f'the annotated columns of the boundary files ({boundaries} of {count} images)')
    if with_files:
        of = '' if len(with_files) == count else f' for {len(with_files)} of {count} images'
        parts.append(f'masks from {_folder_of(with_files)}{of}')
    missing = count - len(with_files) - boundaries
    if missing and mode == 'auto':
        of = '' if missing == count else f' for the other {missing}'
        parts.append(f'derived from each image (data.fov=auto: the bright fundus disc against the dark '
                     f'border, thresholded and cleaned){of}')
    elif missing:
        of = 'the set has no FOV masks' if missing == count else f'{missing} of {count} images have no FOV mask'
        parts.append(f'none ({of}): {NO_FOV}')
    return '; '.join(parts)
