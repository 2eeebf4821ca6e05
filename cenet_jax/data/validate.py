"""Fast validation of a split's files before training: every problem reported at once.

'header' level checks existence, pairing and sizes from file headers (no pixel decoding).
'full' level also decodes every record exactly as training will (truncated files, label values
outside the class range, bad boundary arrays), on a thread pool. With on_bad_record='error' all
problems are raised as one `DataError`; with 'skip' the bad records are dropped with a warning.
"""
from __future__ import annotations

import concurrent.futures
import os
import warnings
from pathlib import Path

from cenet_jax.data.decode import array_shape, image_hw
from cenet_jax.data.errors import DataError
from cenet_jax.data.layouts import Entry
from cenet_jax.data.records import DecodeSpec, decode_entry
from cenet_jax.data.soft_labels import check_disc_cup_classes

LEVELS = ('header', 'full')
POLICIES = ('error', 'skip')
_MAX_LISTED = 20  # problems spelled out in one error message


def _missing(entry: Entry) -> str | None:
    """Message for the first file of the entry that does not exist, or None."""
    if not Path(entry.image).is_file():
        return f'image {entry.image} does not exist' + (
            f' (its label would be {entry.label})' if entry.label else '')
    for what, path in (('label', entry.label), ('boundaries', entry.boundaries), ('FOV mask', entry.fov),
                       ('cup soft map', entry.cup), ('CDR values', entry.cdr)):
        if path and not Path(path).is_file():
            return f'image {entry.image} has no {what}: expected {path}'
    if not entry.label and not entry.boundaries:
        return f'image {entry.image} has no label file'
    return None


def check_header(entry: Entry, spec: DecodeSpec) -> str | None:
    """Problem with an entry found from file existence and headers only, or None."""
    missing = _missing(entry)
    if missing:
        return missing
    try:
        hw = image_hw(entry.image, entry.frame)
        if entry.boundaries:
            shape = array_shape(entry.boundaries, spec.mat_key)
            expected = (spec.label.num_classes - 1, hw[1])
            if tuple(shape) not in (expected, expected[::-1]):
                return (f'boundaries {entry.boundaries}: shape {tuple(shape)}, expected {expected} = '
                        f'(num_classes - 1 boundaries, width of {entry.image})')
        for what, path in (('label', entry.label), ('FOV mask', entry.fov), ('cup soft map', entry.cup)):
            if path:
                other = image_hw(path, entry.frame if what == 'label' else -1)
                if other != hw:
                    return (f'{what} {path} is {other[0]}x{other[1]} (HxW) but its image {entry.image} is '
                            f'{hw[0]}x{hw[1]}; expected the same size')
    except DataError as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 -- any reader failure is a problem with that file
        return f'cannot read the header of {entry.image} / {entry.label or entry.boundaries}: ' \
               f'{type(error).__name__}: {error}'
    return None


def check_full(entry: Entry, spec: DecodeSpec) -> str | None:
    """Problem with an entry found by decoding it completely (after the header checks), or None."""
    problem = check_header(entry, spec)
    if problem:
        return problem
    try:
        decode_entry(entry, spec)
    except DataError as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 -- truncated / corrupt files raise many types
        return f'cannot decode {entry.image} / {entry.label or entry.boundaries}: {type(error).__name__}: {error}'
    return None


def validate_entries(entries: list[Entry], spec: DecodeSpec, *, level: str = 'full', on_bad_record: str = 'error',
                     orphans: list[str] = (), where: str = 'dataset') -> tuple[list[Entry], list[str]]:
    """Check a split's entries; returns (good entries, problems). Raises DataError on problems
    when `on_bad_record == 'error'`, and when no entry is left (empty split)."""
    if level not in LEVELS:
        raise DataError(f'validation must be one of {LEVELS}, got {level!r}')
    if on_bad_record not in POLICIES:
        raise DataError(f'on_bad_record must be one of {POLICIES}, got {on_bad_record!r}')
    if not entries:
        raise DataError(f'{where}: the split is empty; check the data root and split lists, and set '
                        f'--config.data.test_fraction / val_fraction / num_folds (datasets without an '
                        f'official test split hold one out only when test_fraction > 0 or num_folds > 0)')
    if any(entry.cup for entry in entries):   # a setting, not a file: said once, not per record
        check_disc_cup_classes(spec.label.num_classes, where)
    check = check_full if level == 'full' else check_header
    workers = min(8, os.cpu_count() or 1, len(entries))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda entry: check(entry, spec), entries))
    problems = [f'label without image: {orphan}' for orphan in orphans]
    problems += [f'{entry.id}: {problem}' for entry, problem in zip(entries, results, strict=True) if problem]
    good = [entry for entry, problem in zip(entries, results, strict=True) if not problem]
    if problems:
        listed = '\n  - '.join(problems[:_MAX_LISTED])
        more = f'\n  ... and {len(problems) - _MAX_LISTED} more' if len(problems) > _MAX_LISTED else ''
        message = f'{where}: {len(problems)} bad record(s):\n  - {listed}{more}'
        if on_bad_record == 'error':
            raise DataError(message + '\n(set --config.data.on_bad_record=skip to leave them out)')
        warnings.warn(f'skipping {len(problems)} bad record(s) ({len(good)} of {len(entries)} kept). {message}',
                      stacklevel=2)
    if not good:
        raise DataError(f'{where}: no usable record left after skipping {len(problems)} bad one(s)')
    return good, problems
