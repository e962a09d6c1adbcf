"""The one timing rule the benchmarks share: a median of repeated wall times, after an untimed run."""
from __future__ import annotations

import statistics
import time


def median_time(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs, after one untimed run (imports, compilation,
    a pool's workers starting): a shared machine's noise moves a median less than a mean."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
