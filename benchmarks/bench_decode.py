"""Image file decoding: unime.images.decode_each (Pillow on worker threads) against the reference
pipelines' one-at-a-time `Image.open(path).convert("RGB")` (transformers, UniME and VLM2Vec decode
so), then a whole `encode()` of the files with a tiny LLaVA-NeXT, where decoding is most of the work.

    python benchmarks/bench_decode.py [--images 16] [--threads 0] [--repeats 3]

Files: JPEGs (quality 90) of a photograph resized to 12 MP (4000 x 3000, a phone camera's), 2 MP
(1920 x 1080) and 0.8 MP (1024 x 768), one set each. Prints images/s for both and the ratio, and the
encode() rates with decoding on one thread and on --threads (0: one per core).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import unime  # noqa: E402
from timing import median_seconds  # noqa: E402
from unime.images import decode_each  # noqa: E402

SIZES = [(4000, 3000), (1920, 1080), (1024, 768)]


def photo() -> Image.Image:
    import skimage.data

    return Image.fromarray(skimage.data.astronaut())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=16)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    threads = args.threads or os.cpu_count()
    print(f"machine: {os.cpu_count()} cores; decode_each on {threads} threads; Pillow {Image.__version__}")
    print(f"{'files':<22}{'unime img/s':>12}{'Pillow 1 thread img/s':>23}{'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        base = photo()
        for w, h in SIZES:
            paths = []
            for i in range(args.images):
                path = os.path.join(tmp, f"{w}x{h}-{i}.jpg")
                base.rotate(i * 7).resize((w, h)).save(path, quality=90)
                paths.append(path)

            def reference(paths=paths):
                return [np.asarray(Image.open(q).convert("RGB")) for q in paths]

            def ours(paths=paths):
                return decode_each(paths, num_threads=args.threads)

            assert all(np.array_equal(a, b) for a, b in zip(ours(), reference()))
            t_ours = median_seconds(ours, repeats=args.repeats, warmup=1)
            t_ref = median_seconds(reference, repeats=args.repeats, warmup=1)
            n = len(paths)
            print(f"{f'{n} x {w}x{h} JPEG':<22}{n / t_ours:>12.1f}{n / t_ref:>23.1f}{t_ref / t_ours:>7.2f}")

        # encode(): the 12 MP files through a tiny LLaVA-NeXT (decoding dominates).
        from bench_encode_mixed import save_model

        model_dir = os.path.join(tmp, "model")
        save_model(model_dir, argparse.Namespace(layers=1, hidden=256, vision_layers=1, vision_hidden=128))
        model = unime.Model.from_pretrained(model_dir)
        paths = [os.path.join(tmp, f"4000x3000-{i}.jpg") for i in range(args.images)]
        rates = {}
        for label, n_threads in (("1 thread", 1), (f"{threads} threads", args.threads)):
            t = median_seconds(lambda: model.encode(images=paths, num_threads=n_threads, show_progress=False),
                               repeats=args.repeats, warmup=1)
            rates[label] = len(paths) / t
        print("encode() of the 12 MP files, tiny LLaVA-NeXT: "
              + ", ".join(f"{k}: {v:.2f} img/s" for k, v in rates.items()))


if __name__ == "__main__":
    main()
