"""A small real disk for the full-disk tests: a tmpfs mounted on a test folder (needs root, as
CI runs; the tests skip with the reason elsewhere), grown again to free space, and filled up to a
given number of free bytes."""
from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from cenet_jax.disk import free_bytes


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(['mount', *args], capture_output=True, text=True)


@contextlib.contextmanager
def small_disk(path: Path, size: int) -> Iterator[Path]:
    """A tmpfs of `size` bytes mounted at `path` for the duration (skips the test if it cannot
    be mounted)."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        mounted = _mount('-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path))
    except FileNotFoundError:
        pytest.skip('no mount command: a small tmpfs is needed to fill a disk')
    if mounted.returncode != 0:
        pytest.skip(f'cannot mount a {size}-byte tmpfs at {path} (needs root): '
                    f'{mounted.stderr.strip()}')
    try:
        yield path
    finally:
        subprocess.run(['umount', '-l', str(path)], capture_output=True)


def grow(path: Path, size: int) -> None:
    """Give the tmpfs at `path` a new size (what freeing space does)."""
    remounted = _mount('-o', f'remount,size={size}', str(path))
    assert remounted.returncode == 0, remounted.stderr


def fill(path: Path, leave: int = 0) -> Path:
    """Write `path/filler` until about `leave` bytes are free (0: until the disk is full)."""
    filler = path / 'filler'
    with open(filler, 'ab', buffering=0) as handle:
        while free_bytes(path) > leave:
            try:
                handle.write(b'\0' * min(1 << 20, max(4096, free_bytes(path) - leave)))
            except OSError:
                break
    return filler
