"""A corpus larger than one call: `unime encode` writes N short texts to shards with bounded memory,
a second run is killed (SIGKILL) half-way and started again, and its shards must equal the
uninterrupted run's.

    python benchmarks/encode_corpus_resume.py [--texts 1000000] [--shard-size 50000] [--workdir DIR]

The model is the tests' tiny LLaVA-NeXT (LLaVA-1.6's real Mistral tokenizer, UniME's text prompt),
loaded for texts only. Prints each run's wall time, texts/s and peak RSS, the shards recomputed after
the kill, and whether every shard and id list is identical.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))

WORDS = ("the a red blue small large old new dog cat bird runs sits flies over under near river house tree "
         "bright dark photo picture of with and on in").split()


def write_texts(path: str, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 16, n)
    picks = rng.integers(0, len(WORDS), int(lengths.sum()))
    with open(path, "w", encoding="utf-8") as f:
        at = 0
        for k in lengths:
            f.write(" ".join(WORDS[i] for i in picks[at:at + k]) + "\n")
            at += k


def encode_command(model: str, texts: str, out: str, shard_size: int) -> list[str]:
    # Runs unime's command line with text-only loading: a tiny wrapper so the child loads modality="text".
    code = ("import sys, unime, unime.cli as c; "
            "c._load_model = lambda a: unime.Model.from_pretrained(a.model, dtype=a.dtype, device=a.device, "
            "modality='text'); rc = c.main(sys.argv[1:]); "
            "print('peak_rss_kb', [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]); "
            "sys.exit(rc)")
    return [sys.executable, "-c", code, "encode", "--texts", texts, "--model", model, "--out", out,
            "--shard-size", str(shard_size), "--quiet"]


def run(cmd: list[str], kill_after_shards: int | None = None, out: str | None = None) -> dict:
    """Runs cmd; with kill_after_shards, SIGKILLs it once that many shards are finished."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = False
    if kill_after_shards is not None:
        while proc.poll() is None:
            if len(glob.glob(os.path.join(out, "shard-*.done.json"))) >= kill_after_shards:
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.05)
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - start
    if not killed and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:2])} ... failed ({proc.returncode}):\n{stderr[-3000:]}")
    peak = [int(line.split()[1]) for line in stdout.splitlines() if line.startswith("peak_rss_kb")]
    return {"seconds": seconds, "peak_rss_mb": round(peak[0] / 1024) if peak else None, "killed": killed,
            "stdout": stdout.strip()}


def shard_files(out: str) -> list[str]:
    return sorted(glob.glob(os.path.join(out, "shard-*.npy")))


def compare(a: str, b: str) -> tuple[bool, int]:
    files_a, files_b = shard_files(a), shard_files(b)
    same = [os.path.basename(f) for f in files_a] == [os.path.basename(f) for f in files_b]
    rows = 0
    for fa, fb in zip(files_a, files_b):
        x, y = np.load(fa), np.load(fb)
        rows += len(x)
        same = same and np.array_equal(x, y)
        same = same and open(fa[:-4] + ".ids.jsonl").read() == open(fb[:-4] + ".ids.jsonl").read()
    return same, rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser()
    p.add_argument("--texts", type=int, default=1_000_000)
    p.add_argument("--shard-size", type=int, default=50_000)
    p.add_argument("--workdir", default=None)
    args = p.parse_args(argv)
    from tiny_models import save_tiny_llava_next_pipeline
    from tokenizer_assets import tokenizer_json

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        model = os.path.join(tmp, "model")
        save_tiny_llava_next_pipeline(model, tokenizer_json("mistral_legacy"))
        texts = os.path.join(tmp, "texts.txt")
        write_texts(texts, args.texts)
        shards = (args.texts + args.shard_size - 1) // args.shard_size
        whole, part = os.path.join(tmp, "whole"), os.path.join(tmp, "part")
        first = run(encode_command(model, texts, whole, args.shard_size))
        killed = run(encode_command(model, texts, part, args.shard_size), kill_after_shards=shards // 2, out=part)
        done_at_kill = len(glob.glob(os.path.join(part, "shard-*.done.json")))
        mtimes = {f: os.path.getmtime(f) for f in shard_files(part)[:done_at_kill]}
        resumed = run(encode_command(model, texts, part, args.shard_size))
        recomputed = sum(os.path.getmtime(f) != t for f, t in mtimes.items())
        same, rows = compare(whole, part)
        manifest = json.load(open(os.path.join(part, "manifest.json")))
        result = {"texts": args.texts, "shards": shards, "rows": rows, "identical": same,
                  "complete": manifest["complete"], "count": manifest["count"],
                  "uninterrupted_s": round(first["seconds"], 1), "uninterrupted_texts_per_s":
                  round(args.texts / first["seconds"]), "uninterrupted_peak_rss_mb": first["peak_rss_mb"],
                  "killed_after_shards": done_at_kill, "killed_run_s": round(killed["seconds"], 1),
                  "resumed_s": round(resumed["seconds"], 1), "resumed_peak_rss_mb": resumed["peak_rss_mb"],
                  "finished_shards_recomputed": recomputed}
    for k, v in result.items():
        print(f"{k:>28}: {v}")
    return result


if __name__ == "__main__":
    main()
