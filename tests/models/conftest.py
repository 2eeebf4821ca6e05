"""Fixtures for the model tests: seeded PyTorch reference models (skipped without torch), a
parity check that records what it measured, and a summary of those numbers after the run."""
from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import pytest

PARITY_KEY = pytest.StashKey[list]()
RELATIVE_TOLERANCE = 1e-4


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rows = config.stash.get(PARITY_KEY, [])
    if rows:
        terminalreporter.section('PyTorch parity (max |diff| <= 1e-4 * max |ref|)')
        for name, diff, ref in rows:
            terminalreporter.write_line(f'{name:58s} max|diff| {diff:.3e}  max|ref| {ref:.3e}  '
                                        f'ratio {diff / max(ref, 1e-30):.1e}')


@pytest.fixture(scope='session')
def check_parity(pytestconfig: pytest.Config) -> Callable[..., None]:
    """assert max|got - ref| <= rel * max|ref| (float32), and record both numbers."""

    def check(name: str, got: Any, ref: Any, rel: float = RELATIVE_TOLERANCE) -> None:
        got, ref = np.asarray(got, np.float32), np.asarray(ref, np.float32)
        assert got.shape == ref.shape, f'{name}: shape {got.shape} != reference {ref.shape}'
        diff, scale = float(np.abs(got - ref).max()), float(np.abs(ref).max())
        pytestconfig.stash.setdefault(PARITY_KEY, []).append((name, diff, scale))
        assert scale > 0, f'{name}: the reference output is all zeros, the check would be empty'
        assert diff <= rel * scale, f'{name}: max|diff| {diff:.3e} > {rel} * max|ref| {scale:.3e}'

    return check


@pytest.fixture(scope='session')
def torch():
    """The torch module, seeded and limited to 2 threads; skips the test without PyTorch."""
    torch = pytest.importorskip('torch', reason='PyTorch is needed for parity tests '
                                '(pip install "cenet-jax[torch]")')
    pytest.importorskip('torchvision', reason='torchvision is needed for parity tests')
    torch.set_num_threads(2)
    return torch


@pytest.fixture(scope='session')
def reference_model(torch) -> Callable[[str], Any]:
    """`reference_model(variant)`: a randomised eval-mode PyTorch model (built once per variant;
    tests that change it take a copy.deepcopy)."""
    from .torch_reference import TorchCENet, TorchUNet, randomize_
    cache: dict[str, Any] = {}

    def get(variant: str) -> Any:
        if variant not in cache:
            torch.manual_seed(sum(map(ord, variant)))
            model = TorchUNet() if variant == 'unet' else TorchCENet(variant)
            cache[variant] = randomize_(model, seed=len(cache))
        return copy.deepcopy(cache[variant])

    return get
