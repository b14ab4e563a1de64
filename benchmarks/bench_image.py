"""LLaVA-NeXT image preprocessing throughput: unime vs transformers' LlavaNextImageProcessor.

    python benchmarks/bench_image.py [--images 32] [--threads 0] [--repeats 3]

Both sides start from the same decoded RGB uint8 arrays (decoding is Pillow's either way) of mixed
sizes (VGA photos, phone-like portraits, large scans, small icons), produce the same float32
pixel_values (checked here), and are timed on the same machine in the same run. Prints images/s
for transformers, unime on one thread, unime on --threads threads (0 = one per core), and the
ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from transformers import LlavaNextImageProcessor

import unime
from unime.images import llava_next_preprocess

SIZES = [(480, 640), (640, 480), (1080, 1920), (3024, 4032), (768, 1024), (336, 336), (96, 128), (1256, 950)]


def make_images(n: int) -> list:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=SIZES[i % len(SIZES)] + (3,), dtype=np.uint8) for i in range(n)]


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    images = make_images(args.images)
    hf = LlavaNextImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    config = unime.images.LlavaNextImageConfig()

    def run_hf():
        return hf(images=images, input_data_format="channels_last", return_tensors="pt")["pixel_values"]

    ref = run_hf()
    ours = llava_next_preprocess(images, config, num_threads=1)["pixel_values"]
    assert torch.equal(ours, ref), "pixel values differ from transformers"

    n = len(images)
    t_hf, _ = best_of(run_hf, args.repeats)
    t_1, _ = best_of(lambda: llava_next_preprocess(images, config, num_threads=1), args.repeats)
    t_n, _ = best_of(lambda: llava_next_preprocess(images, config, num_threads=args.threads), args.repeats)
    threads = args.threads or os.cpu_count()
    print(f"{n} images, sizes cycling {SIZES}, {os.cpu_count()} cores; best of {args.repeats}")
    print(f"transformers 4.48.3 LlavaNextImageProcessor: {n / t_hf:8.1f} images/s")
    print(f"unime, 1 thread:                           {n / t_1:8.1f} images/s  ({t_hf / t_1:.1f}x)")
    print(f"unime, {threads} threads:                          {n / t_n:8.1f} images/s  ({t_hf / t_n:.1f}x)")


if __name__ == "__main__":
    main()
