"""Fixtures for the data tests: the shared real datasets (skipped when absent) and tiny fake
dataset folders written to tmp paths."""
from __future__ import annotations

from pathlib import Path

import pytest

from .fakes import make_folder_dataset

SHARED_DATASETS = Path(__file__).resolve().parents[2] / '..' / 'shared' / 'datasets'


def shared_dataset(name: str) -> Path:
    """Path of a dataset in ../shared/datasets, or skip the test with the reason."""
    path = (SHARED_DATASETS / name).resolve()
    if not path.is_dir():
        pytest.skip(f'real dataset {name} not found at {path} (sibling ../shared/datasets of the repo)')
    return path


@pytest.fixture(scope='session')
def drive_root() -> Path:
    return shared_dataset('DRIVE')


@pytest.fixture(scope='session')
def isbi_root() -> Path:
    return shared_dataset('ISBI2012_EM')


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    """A generic images/ + masks/ dataset of 6 pairs (40 x 48)."""
    make_folder_dataset(tmp_path / 'folder')
    return tmp_path / 'folder'
