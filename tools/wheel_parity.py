"""The encode parity check of the wheel smoke test (tools/wheel_smoke.sh), in two halves.

    .venv/bin/python tools/wheel_parity.py make DIR     # the development environment (transformers)
    SMOKE/bin/python tools/wheel_parity.py check DIR    # the fresh environment with the wheel only

`make` saves, with transformers 4.48.3 and without unime: the tiny random LLaVA-NeXT that the
quickstart makes (DIR/quickstart-model), and the tests' tiny LLaVA-NeXT pipeline with LLaVA-1.6's real
tokenizer (DIR/parity-model, tests/python/tiny_models.py) together with a mixed batch (texts, images,
image+text, as PNG files) and transformers' pooled, L2-normalised embeddings of it in UniME's prompts.
`check` encodes the same batch with the installed unime (numpy and unime only) and fails unless every
vector is within MAX_ABS of transformers' and every cosine is at least MIN_COS.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import numpy as np

MAX_ABS = 1e-5
MIN_COS = 0.99999
TEXTS = ["A dog runs across the park.", "Ünïcödé, 数字 123 and code: x = f(y)!", "short"]
IMAGE_PROMPT = "[INST] <image>\nSummary above image in one word: [/INST]"
TEXT_PROMPT = "[INST] {}\nSummary above sentence in one word: [/INST]"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make(out: str) -> None:
    import torch
    import torch.nn.functional as F
    from PIL import Image

    sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
    from tiny_models import save_tiny_llava_next_pipeline
    from tokenizer_assets import tokenizer_json

    # The quickstart's default model, from the source tree's unime/demo/assets.py loaded by path, so
    # this half needs no built unime.
    spec = importlib.util.spec_from_file_location("unime_demo_assets",
                                                  os.path.join(ROOT, "python", "unime", "demo", "assets.py"))
    assets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(assets)
    assets.build_llava_next(os.path.join(out, "quickstart-model"), hidden=64, layers=2, vision_hidden=64,
                            vision_layers=3, image_size=336, seed=0)

    path = os.path.join(out, "parity-model")
    hf, processor = save_tiny_llava_next_pipeline(path, tokenizer_json("mistral_legacy"))
    rng = np.random.default_rng(0)
    images = []
    for k, (h, w) in enumerate([(40, 70), (70, 33), (17, 90), (56, 56)]):
        name = os.path.join(out, f"image{k}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(name)
        images.append(name)
    items = [(None, images[0]), (TEXTS[0], None), (None, images[1]), (TEXTS[1], None), (None, images[2]),
             (TEXTS[2], None), ("What is in the picture?", images[3])]

    def prompt(text, image):
        if text is not None and image is not None:
            return f"<image>\n{text}\n"  # image+text: the MMEB form
        return IMAGE_PROMPT if image is not None else TEXT_PROMPT.format(text)

    pixels = [Image.open(im).convert("RGB") for _, im in items if im is not None]
    inputs = processor(text=[prompt(t, im) for t, im in items], images=pixels, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = hf(**inputs, output_hidden_states=True).hidden_states[-1]
    np.save(os.path.join(out, "reference.npy"), F.normalize(hidden[:, -1], dim=-1).numpy())
    with open(os.path.join(out, "items.json"), "w", encoding="utf-8") as f:
        json.dump({"model": path, "texts": [t for t, _ in items], "images": [im for _, im in items]}, f)
    print(f"wheel_parity: saved {path}, {len(items)} inputs and transformers' embeddings")


def check(out: str) -> None:
    import unime

    with open(os.path.join(out, "items.json"), encoding="utf-8") as f:
        items = json.load(f)
    ref = np.load(os.path.join(out, "reference.npy"))
    model = unime.Model.from_pretrained(items["model"])
    ours = unime.encode(model, items["texts"], items["images"], batch_size=3).numpy()
    max_abs = float(np.abs(ours - ref).max())
    cos = (ours * ref).sum(-1) / (np.linalg.norm(ours, axis=-1) * np.linalg.norm(ref, axis=-1))
    print(f"wheel_parity: unime {unime.__version__} from {os.path.dirname(unime.__file__)}: {len(ref)} inputs, "
          f"max abs diff to transformers {max_abs:.2e} (limit {MAX_ABS:g}), min cosine {cos.min():.7f}")
    if not (max_abs <= MAX_ABS and cos.min() >= MIN_COS):
        sys.exit("wheel_parity: the wheel's embeddings differ from transformers'")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        sys.exit(__doc__)
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
