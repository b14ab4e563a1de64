"""UniME objectives: unime's registered ops against the plain-PyTorch references, forward + backward.

    python benchmarks/bench_losses.py [--device cuda]

similarity_kl (stage 1, n x n batch similarities), hard_negative_infonce (stage 2, k=8, beta=0.1,
global batch B) and judge_alignment (UniME-V2, 1 + 8 candidates, the released eps=1e-8) vs
tests/reference/losses.py, timed in the same run, with the defaults (unit-vector inputs), then with
normalize=True on un-normalised inputs (the reference normalises with F.normalize first). Prints
milliseconds per forward+backward for each and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn.functional as F

import unime
from timing import median_seconds

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from reference import losses as ref  # noqa: E402


def fwd_bwd(loss_fn, *inputs):
    def run():
        xs = [x.detach().requires_grad_(x.is_floating_point()) for x in inputs]
        torch.autograd.grad(loss_fn(*xs), [x for x in xs if x.requires_grad])

    return run


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    dev = args.device
    print(f"device {dev}; torch {torch.__version__}; threads {torch.get_num_threads()}; unime {unime.__version__}")
    print(f"{'case':<46}{'unime ms':>10}{'reference ms':>14}{'ratio':>8}")
    sizes = [256, 1024] if dev == "cpu" else [1024, 4096]
    for n in sizes:
        s = F.normalize(torch.randn(n, 1536, device=dev), dim=-1)
        t = F.normalize(torch.randn(n, 4096, device=dev), dim=-1)
        cases = [
            (f"similarity_kl n={n} ds=1536 dt=4096", unime.ops.similarity_kl, ref.similarity_kl, (s, t)),
            (f"hard_negative_infonce B={n} d=1536 k=8", lambda a, b: unime.ops.hard_negative_infonce(a, b),
             lambda a, b: ref.hard_negative_infonce(a, b)[0], (s, F.normalize(s + 0.3 * torch.randn_like(s), dim=-1))),
        ]
        c = F.normalize(torch.randn(n, 9, 1536, device=dev), dim=-1)
        j = torch.rand(n, 9, device=dev)
        cases.append((f"judge_alignment B={n} 1+8 cands d=1536", unime.ops.judge_alignment, ref.judge_alignment,
                      (s, c, j)))
        # normalize=True: the same losses on inputs scaled away from unit norm.
        s2, t2, c2 = 3 * s, 0.5 * t, 2 * c
        p2 = 2 * F.normalize(s + 0.3 * torch.randn_like(s), dim=-1)
        cases += [
            (f"similarity_kl normalize=True n={n}", lambda a, b: unime.ops.similarity_kl(a, b, normalize=True),
             lambda a, b: ref.similarity_kl(F.normalize(a, dim=-1), F.normalize(b, dim=-1)), (s2, t2)),
            (f"hard_negative_infonce normalize=True B={n}",
             lambda a, b: unime.ops.hard_negative_infonce(a, b, normalize=True),
             lambda a, b: ref.hard_negative_infonce(F.normalize(a, dim=-1), F.normalize(b, dim=-1))[0], (s2, p2)),
            (f"judge_alignment normalize=True B={n}",
             lambda a, b, m: unime.ops.judge_alignment(a, b, m, normalize=True),
             lambda a, b, m: ref.judge_alignment(F.normalize(a, dim=-1), F.normalize(b, dim=-1), m), (s2, c2, j)),
        ]
        for name, ours, theirs, inputs in cases:
            t_ours = median_seconds(fwd_bwd(ours, *inputs), dev)
            t_ref = median_seconds(fwd_bwd(theirs, *inputs), dev)
            print(f"{name:<46}{t_ours * 1e3:>10.2f}{t_ref * 1e3:>14.2f}{t_ref / t_ours:>8.2f}")


if __name__ == "__main__":
    main()
