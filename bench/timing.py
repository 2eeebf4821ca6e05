"""Wall-clock timing shared by the benchmark scripts."""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def first_and_median(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(seconds of the first call, which includes any compilation or warm-up; median seconds of
    `repeats` further calls)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)
