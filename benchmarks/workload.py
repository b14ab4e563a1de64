"""The mixed encoding workload the model benchmarks share (bench_encode_mixed, bench_phi3_v,
bench_qwen2_vl): 8 images from 200x800 to 1280x720 and 24 texts of 5 to 120 words. Each benchmark
adds its backbone's prompts and makes the pixels."""

from __future__ import annotations

import numpy as np

IMAGE_SIZES = [(200, 800), (1280, 720), (720, 1280), (480, 640), (640, 480), (336, 336), (300, 900), (1000, 750)]
WORDS = "the a red blue small dog cat runs over under river house bright image photo of near with".split()


def random_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def texts(rng: np.random.Generator) -> list[str]:
    """24 sentences of 5 to 120 random words."""
    return [" ".join(rng.choice(WORDS, n)) + "." for n in np.linspace(5, 120, 24).astype(int)]
