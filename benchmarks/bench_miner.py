"""The hard-negative miner: unime.ops.mine_hard_negatives against the whole-matrix reference
(tests/reference/miner.py) on a size both can hold, then the chunked miner alone at full size.

    python benchmarks/bench_miner.py [--device cuda] [--queries 100000] [--corpus 100000] [--dim 64]

Prints time and ratio for the comparison (same run), then time and peak memory (peak RSS on CPU,
peak allocated on CUDA) of the chunked miner. Q x N scores are never held whole: one tile plus the
(Q, k) result.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

import unime

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from reference.miner import mine_hard_negatives as mine_reference  # noqa: E402


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--queries", type=int, default=100_000)
    p.add_argument("--corpus", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--compare-size", type=int, default=8192)
    args = p.parse_args()
    dev, k = args.device, args.k
    print(f"device {dev}; torch {torch.__version__}; threads {torch.get_num_threads()}; unime {unime.__version__}")
    g = torch.Generator().manual_seed(0)

    m = args.compare_size  # 0: skip the comparison (measure the chunked miner's peak RSS alone)
    if m > 0:
        compare(args, g, dev, k, m)
    full_size(args, g, dev, k)


def compare(args, g, dev, k, m):
    q = F.normalize(torch.randn(m, args.dim, generator=g), dim=-1).to(dev)
    c = F.normalize(torch.randn(m, args.dim, generator=g), dim=-1).to(dev)
    pos = torch.arange(m, device=dev)
    max_score = (q * c).sum(-1) + 0.1
    t_ours, ours = timed(lambda: unime.ops.mine_hard_negatives(q, c, k, max_score=max_score, exclude=pos[:, None]), dev)
    t_ref, theirs = timed(lambda: mine_reference(q, c, k, max_score=max_score, exclude=pos[:, None]), dev)
    same = (ours[0] == theirs[0]).float().mean().item()
    print(f"compare {m} x {m} d={args.dim} k={k}: unime {t_ours:.3f} s, reference {t_ref:.3f} s, "
          f"ratio {t_ref / t_ours:.2f}, identical indices {same:.4%}")


def full_size(args, g, dev, k):
    nq, nc = args.queries, args.corpus
    q = F.normalize(torch.randn(nq, args.dim, generator=g), dim=-1).to(dev)
    c = F.normalize(torch.randn(nc, args.dim, generator=g), dim=-1).to(dev)
    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t, (idx, _) = timed(lambda: unime.ops.mine_hard_negatives(q, c, k, exclude=torch.arange(nq, device=dev)[:, None]),
                        dev)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    inputs_mb = (q.numel() + c.numel()) * 4 / 2**20
    scores_mb = nq * nc * 4 / 2**20
    peak = (f"peak CUDA allocated {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if dev == "cuda"
            else f"peak RSS {rss_after:.0f} MiB (before the call {rss_before:.0f} MiB)")
    print(f"chunked {nq} x {nc} d={args.dim} k={k}: {t:.2f} s, {peak}; inputs {inputs_mb:.0f} MiB, "
          f"the whole score matrix would be {scores_mb:.0f} MiB; {int((idx >= 0).sum())} picks")


if __name__ == "__main__":
    main()
