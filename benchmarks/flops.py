"""Work and peak for the encoding benchmarks: FLOPs counted by torch's FlopCounterMode (matrix
multiplications, attention and convolutions, dispatched from Python or from unime's C++ alike) and
the matrix-multiply peak torch reaches on this machine in the same run."""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], object], exclude: str = "lm_head") -> int:
    """FLOPs of the ATen operations `fn` runs (inference mode), less those inside torch modules named
    `exclude` (the LM head: an embedding model needs no logits)."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    excluded = sum(sum(ops.values()) for name, ops in counter.get_flop_counts().items()
                   if exclude and name.split(".")[-1] == exclude)
    return counter.get_total_flops() - excluded


def matmul_peak(dtype: torch.dtype, device: str = "cpu", n: int = 2048, seconds: float = 2.0) -> float:
    """FLOP/s of the fastest of repeated (n, n) @ (n, n) multiplications in `dtype`: the ceiling a
    model's matrix multiplications can reach on this machine."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best, spent = float("inf"), 0.0
    for i in range(1000):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter() - start
        if i > 0:  # the first run pays for allocation and packing
            best = min(best, t)
        spent += t
        if spent > seconds and i >= 3:
            break
    return 2 * n**3 / best
