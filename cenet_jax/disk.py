"""Writing outputs on a disk that may fill up: free space, whole-file writes that leave no
half-written file behind, and one `DiskFullError` that names the folder, the bytes needed and
the bytes free, and what on disk is intact.

`write_atomic` checks the free space, writes a temporary file beside the target and renames it
(the target is either the old file or the complete new one); `append_line` appends to a log and
cuts it back to its old length if the write fails. Checkpoints (cenet_jax/checkpoint.py) use
`free_bytes`, `is_disk_full` and `disk_full_error` around orbax.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from cenet_jax.errors import DiskFullError

# How TensorStore / orbax and the OS say it (TensorStore puts the errno into the message).
_DISK_FULL_TEXT = ('no space left on device', "os_error_code='28'", 'disk quota exceeded')
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def free_bytes(path: str | Path) -> int:
    """Bytes free for this user on the file system of `path` (or of its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def format_bytes(count: int | float) -> str:
    """'512 B', '12.3 KiB', '45.1 MiB', '2.00 GiB'."""
    count = float(count)
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if count < 1024 or unit == 'GiB':
            return f'{count:.0f} {unit}' if unit == 'B' else f'{count:.{2 if count < 10 else 1}f} {unit}'
        count /= 1024
    raise AssertionError('unreachable')


def is_disk_full(err: BaseException | None) -> bool:
    """Whether `err`, or an exception it was raised from, is a full disk (ENOSPC / EDQUOT), also
    when a library reports it in the message only (TensorStore: "No space left on device")."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _DISK_FULL_ERRNOS:
            return True
        if any(text in str(err).lower() for text in _DISK_FULL_TEXT):
            return True
        err = err.__cause__ or err.__context__
    return False


RERUN_ADVICE = 'Free some space (or choose another folder) and rerun the same command.'


def disk_full_error(what: str, folder: str | Path, needed: int | None, intact: str,
                    *, needed_note: str = '', advice: str = RERUN_ADVICE) -> DiskFullError:
    """The error of a write that does not fit: what, where, bytes needed against bytes free,
    what is intact, and what to do."""
    free = free_bytes(folder)
    need = f'it needs {format_bytes(needed)}{needed_note}' if needed is not None else \
        'it needs more space'
    return DiskFullError(f'{what}: the disk of {folder} is full: {need} but only '
                         f'{format_bytes(free)} are free. {intact} {advice}')


def write_atomic(path: str | Path, data: bytes | str, *, what: str | None = None,
                 intact: str = 'No half-written file was left.') -> Path:
    """Write `data` to `path` as a whole (a temporary file beside it, then a rename): the
    target holds the old content or the new one, never a part. A full disk is a DiskFullError
    naming the folder, the bytes needed and free, and `intact`."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else bytes(data)
    folder = path.parent
    what = what or f'writing {path}'
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        if is_disk_full(err):
            raise disk_full_error(what, folder, len(payload), intact) from err
        raise
    if free_bytes(folder) < len(payload):
        raise disk_full_error(what, folder, len(payload), intact)
    tmp = folder / f'.{path.name}.tmp-{os.getpid()}'
    try:
        with open(tmp, 'wb') as handle:
            handle.write(payload)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if is_disk_full(err):
            raise disk_full_error(what, folder, len(payload), intact) from err
        raise
    return path


def append_line(path: str | Path, line: str, *, what: str | None = None,
                intact: str = '') -> None:
    """Append `line` (a newline is added) to a log file; if the disk is full the file is cut
    back to its earlier length (no half-written line) and DiskFullError says so."""
    path = Path(path)
    payload = (line + '\n').encode()
    before = path.stat().st_size if path.exists() else 0
    what = what or f'writing {path}'
    intact = f'{path.name} keeps its earlier lines (nothing half-written). {intact}'.strip()
    if free_bytes(path.parent) < len(payload):
        raise disk_full_error(what, path.parent, len(payload), intact)
    try:
        with open(path, 'ab') as handle:
            handle.write(payload)
    except OSError as err:
        if path.exists():
            os.truncate(path, before)
        if is_disk_full(err):
            raise disk_full_error(what, path.parent, len(payload), intact) from err
        raise


def folder_bytes(path: str | Path) -> int:
    """Total size of the files under `path` (0 when it does not exist)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file()) if path.exists() else 0
