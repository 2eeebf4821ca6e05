"""Small array helpers shared by the model tests (NHWC <-> NCHW, seeded images)."""
from __future__ import annotations

from typing import Any

import numpy as np


def nchw(x: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW (contiguous)."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def nhwc(x: Any) -> np.ndarray:
    """A torch NCHW tensor (or array) -> NHWC numpy."""
    x = x.detach().numpy() if hasattr(x, 'detach') else np.asarray(x)
    return x.transpose(0, 2, 3, 1)


def random_images(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Standard-normal float32 NHWC images."""
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
