"""unime quickstart: embed images and sentences with a LLaVA-NeXT model and print their similarities.

    python examples/quickstart.py               # a tiny random LLaVA-NeXT made on the spot (default)
    python examples/quickstart.py --model DIR   # a real checkpoint, e.g. UniME-LLaVA-1.6-7B downloaded

The default model has random weights, so its similarities show the pipeline working (real photos,
the real LLaVA-1.6 tokenizer, UniME's prompts, anyres tiling), not meaning. Point --model at
DeepGlint-AI/UniME-LLaVA-1.6-7B for real embeddings.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import unime
from unime.demo.assets import build_llava_next

CAPTIONS = [
    "An astronaut in a white spacesuit poses in front of a flag.",
    "A cup of coffee on a saucer, seen from above.",
    "A tabby cat looks at the camera.",
    "A rocket stands on the launch pad.",
]


def sample_images() -> list[np.ndarray]:
    """Real photographs that scikit-image ships (no download), in the order of CAPTIONS."""
    import skimage.data

    return [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]


def make_tiny_llava_next(path: str, seed: int = 0) -> str:
    """A tiny random LlavaNextForConditionalGeneration (CLIP 3 layers, Mistral 2 layers, 336-px tiles)
    saved with transformers, plus the LLaVA-1.6 tokenizer and image processor configuration."""
    return build_llava_next(path, hidden=64, layers=2, vision_hidden=64, vision_layers=3, image_size=336, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint directory (default: a tiny random LLaVA-NeXT)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or make_tiny_llava_next(os.path.join(tmp, "tiny-llava-next"))
        model = unime.Model.from_pretrained(path, dtype=args.dtype, device=args.device)
        print(model)
        images = sample_images()
        start = time.perf_counter()
        image_emb = model.encode(images=images)     # "[INST] <image>\nSummary above image in one word: [/INST]"
        text_emb = model.encode(texts=CAPTIONS)     # "[INST] <text>\nSummary above sentence in one word: [/INST]"
        elapsed = time.perf_counter() - start
        sizes = ", ".join(f"{im.shape[1]}x{im.shape[0]}" for im in images)
        print(f"embedded {len(images)} images ({sizes}) and {len(CAPTIONS)} sentences in {elapsed:.2f} s; "
              f"embedding size {image_emb.shape[-1]}")
        sim = image_emb @ text_emb.T
        print("cosine similarity (rows: images, columns: sentences):")
        for name, row in zip(["astronaut", "coffee", "chelsea", "rocket"], sim):
            print(f"  {name:<10} " + " ".join(f"{v:7.3f}" for v in row.tolist()))


if __name__ == "__main__":
    main()
