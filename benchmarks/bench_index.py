"""unime.Index (FAISS) against brute-force search: build time, memory, query latency, throughput, recall.

    python benchmarks/bench_index.py [--n 200000] [--dim 512] [--kinds flat,ivf,hnsw,ivfpq] [--data clustered]

Data (seeded, float32, L2-normalised like unime's embeddings):
  clustered  the main case, shaped like embeddings: a mixture of --clusters Gaussian clusters with
             log-normal sizes; a point is center + noise with |noise| = --spread (cosine to its center
             about 0.7 at spread 1); queries are fresh draws from the same mixture, not corpus rows.
  isotropic  standard normal vectors: no structure, the known worst case for approximate search
             (a query's 10 nearest neighbours are barely nearer than the rest), reported for honesty.

Per kind: build (train + add) seconds, the serialised index size, the process RSS growth over the
build (current RSS, read from /proc), single-query latency p50/p99 (--single queries, one call each),
batch throughput (--batch queries in one call) and recall@10 against exact search. The peers, from the
same run, are brute force with numpy (matmul + argpartition) and torch (matmul + topk); the ratio is
peer time / unime time for the flat (exact) index. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from timing import median_seconds  # noqa: E402

import faiss  # noqa: E402
from unime.index import Index  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def normalise(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_data(kind: str, n: int, nq: int, dim: int, clusters: int, spread: float, seed: int):
    rng = np.random.default_rng(seed)
    if kind == "isotropic":
        x = rng.standard_normal((n + nq, dim), dtype=np.float32)
    else:
        centers = normalise(rng.standard_normal((clusters, dim), dtype=np.float32))
        weights = rng.lognormal(0.0, 1.0, clusters)
        assign = rng.choice(clusters, size=n + nq, p=weights / weights.sum())
        x = rng.standard_normal((n + nq, dim), dtype=np.float32) * np.float32(spread / np.sqrt(dim))
        x += centers[assign]
    x = normalise(x)
    return np.ascontiguousarray(x[:n]), np.ascontiguousarray(x[n:])


def brute_numpy(x: np.ndarray, q: np.ndarray, k: int, block: int = 256) -> np.ndarray:
    out = np.empty((len(q), k), np.int64)
    for s in range(0, len(q), block):
        scores = q[s:s + block] @ x.T
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1)
        out[s:s + block] = np.take_along_axis(part, order, 1)
    return out


def brute_torch(xt: torch.Tensor, qt: torch.Tensor, k: int, block: int = 256) -> torch.Tensor:
    return torch.cat([torch.topk(qt[s:s + block] @ xt.T, k, dim=1).indices for s in range(0, len(qt), block)])


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist())]))


def index_bytes(index: Index) -> int:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "index.faiss")
        faiss.write_index(index._index, path)
        return os.path.getsize(path)


def measure(spec: str, x: np.ndarray, q: np.ndarray, truth: np.ndarray, args) -> dict:
    """spec: a kind, optionally with constructor options: "ivfpq:pq_m=256"."""
    kind, *opts = spec.split(":")
    options = {key: int(value) for key, value in (o.split("=") for o in opts)}
    if kind == "auto":
        options.setdefault("exact_threshold", args.exact_threshold)
    rss0 = rss_mib()
    t0 = time.perf_counter()
    index = Index(kind=kind, **options)
    index.add(x)  # ids default to row positions, so labels compare with the truth directly
    build = time.perf_counter() - t0
    grown = rss_mib() - rss0
    row = {"kind": kind if kind != "auto" else f"auto ({index.kind})", "build_s": build, "rss_mib": grown,
           "bytes": index_bytes(index), "param": ""}
    if index.kind in ("ivf", "ivfpq"):
        row["param"] = f"nlist {index.nlist}, nprobe {index.nprobe}"
    if index.kind == "ivfpq":
        row["param"] += f", pq_m {index._index.code_size}"
    elif index.kind == "hnsw":
        row["param"] = f"M {index.params['hnsw_m']}, efSearch {index.ef_search}"
    single = []
    for i in range(args.single):
        t = time.perf_counter()
        index.search(q[i], k=args.k, output="arrays")
        single.append(time.perf_counter() - t)
    single.sort()
    row["p50_ms"] = 1e3 * statistics.median(single)
    row["p99_ms"] = 1e3 * single[min(len(single) - 1, int(0.99 * len(single)))]
    batch = q[:args.batch]
    row["batch_qps"] = len(batch) / median_seconds(lambda: index.search(batch, k=args.k, output="arrays"),
                                                   repeats=3, warmup=1)
    ids, _ = index.search(q, k=args.k, output="arrays")
    row["recall"] = recall(ids, truth)
    if index.kind in ("ivf", "ivfpq", "hnsw") and args.tune:
        tuned = index.tune(q[:200], k=args.k)
        row["tuned"] = tuned
    index = None  # free it before the next kind is built
    return row


def peers(x: np.ndarray, q: np.ndarray, args) -> dict:
    xt, qt = torch.from_numpy(x), torch.from_numpy(q)
    out = {}
    for name, one, many in (
        ("numpy", lambda v: brute_numpy(x, v[None], args.k), lambda: brute_numpy(x, q[:args.batch], args.k)),
        ("torch", lambda v: brute_torch(xt, torch.from_numpy(v)[None], args.k),
         lambda: brute_torch(xt, qt[:args.batch], args.k)),
    ):
        single = []
        for i in range(args.single):
            t = time.perf_counter()
            one(q[i])
            single.append(time.perf_counter() - t)
        single.sort()
        out[name] = {"p50_ms": 1e3 * statistics.median(single),
                     "p99_ms": 1e3 * single[min(len(single) - 1, int(0.99 * len(single)))],
                     "batch_qps": args.batch / median_seconds(many, repeats=3, warmup=1)}
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=1000, help="queries for recall")
    p.add_argument("--single", type=int, default=200, help="single-query calls for p50 / p99")
    p.add_argument("--batch", type=int, default=1000, help="queries in the throughput call")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--kinds", default="flat,auto,hnsw,ivfpq,ivfpq:pq_m=256",
                   help="kinds, each optionally with options: ivfpq:pq_m=256")
    p.add_argument("--data", default="clustered,isotropic")
    p.add_argument("--isotropic-kinds", default="auto,hnsw", help="kinds also measured on isotropic data")
    p.add_argument("--clusters", type=int, default=2000)
    p.add_argument("--spread", type=float, default=1.0)
    p.add_argument("--exact-threshold", type=int, default=50_000)
    p.add_argument("--tune", action="store_true", help="also report tune()'s nprobe / efSearch for recall 0.95")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(f"unime.Index bench: n={args.n} dim={args.dim} k={args.k}; faiss {faiss.__version__} "
          f"({faiss.omp_get_max_threads()} threads), torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"numpy {np.__version__}; {os.cpu_count()} cpus")
    rows = []
    for data in args.data.split(","):
        x, q = make_data(data, args.n, args.queries, args.dim, args.clusters, args.spread, args.seed)
        t = time.perf_counter()
        truth = brute_numpy(x, q, args.k)
        print(f"[{data}] exact truth by numpy brute force: {time.perf_counter() - t:.1f} s", flush=True)
        kinds = args.kinds.split(",") if data == "clustered" else args.isotropic_kinds.split(",")
        for kind in kinds:
            row = measure(kind, x, q, truth, args)
            row["data"] = data
            print(row, flush=True)
            rows.append(row)
        if data == "clustered":
            peer = peers(x, q, args)
            print(f"[{data}] peers: {peer}", flush=True)
    print()
    print("| data | kind | parameters | build s | index MiB | RSS growth MiB | p50 ms | p99 ms | batch q/s "
          "| recall@10 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['data']} | {r['kind']} | {r['param']} | {r['build_s']:.1f} | {r['bytes'] / 2**20:.0f} | "
              f"{r['rss_mib']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['batch_qps']:,.0f} | "
              f"{r['recall']:.3f} |")
    if "clustered" in args.data.split(","):
        flat = next((r for r in rows if r["kind"] == "flat" and r["data"] == "clustered"), None)
        print()
        print("| exact search (clustered) | p50 ms | p99 ms | batch q/s | ratio p50 (peer / unime) | ratio q/s |")
        print("| --- | --- | --- | --- | --- | --- |")
        if flat:
            print(f"| unime flat | {flat['p50_ms']:.2f} | {flat['p99_ms']:.2f} | {flat['batch_qps']:,.0f} | | |")
        for name, v in peer.items():
            ratio = (f"{v['p50_ms'] / flat['p50_ms']:.2f} | {flat['batch_qps'] / v['batch_qps']:.2f}" if flat
                     else " | ")
            print(f"| {name} brute force | {v['p50_ms']:.2f} | {v['p99_ms']:.2f} | {v['batch_qps']:,.0f} | {ratio} |")
    tuned = [r for r in rows if "tuned" in r]
    for r in tuned:
        print(f"tune() on 200 queries, {r['data']} {r['kind']}: {r['tuned']}")


if __name__ == "__main__":
    main()
