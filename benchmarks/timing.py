"""Shared timing for the benchmarks: the median of repeated runs after warm-ups, with the GPU
synchronised around each run so that queued kernels are counted."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def median_seconds(fn: Callable[[], object], device: str = "cpu", repeats: int = 10, warmup: int = 2) -> float:
    return statistics.median(_run(fn, device, repeats, warmup))


def min_seconds(fn: Callable[[], object], device: str = "cpu", repeats: int = 50, warmup: int = 3) -> float:
    """The fastest of `repeats` runs: for memory-bound microbenchmarks on a shared CPU, where page
    faults of fresh allocations and other tenants add noise that only ever makes a run slower."""
    return min(_run(fn, device, repeats, warmup))


def _run(fn: Callable[[], object], device: str, repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times
