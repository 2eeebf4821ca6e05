"""Wall-clock timing shared by the benchmark scripts."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def first_and_median(fn: Callable[[], Any], repeats: int, warmup: int = 1
                     ) -> tuple[float, float]:
    """(seconds of the first call, which includes any compilation or warm-up; median seconds of
    `repeats` further calls, made after `warmup` untimed calls, the first one included)."""
    if warmup < 1 or repeats < 1:
        raise ValueError(f'need warmup >= 1 and repeats >= 1, got {warmup} and {repeats}')
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)
