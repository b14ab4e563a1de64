"""Shared pieces of the trainer tests: a tiny LLaVA-NeXT checkpoint with the real LLaVA-1.6
tokenizer, and deterministic examples for each stage (random images of odd sizes, short texts)."""

import numpy as np
import torch
from tiny_models import save_tiny_llava_next_pipeline
from tokenizer_assets import tokenizer_json

from unime.train import Example, Input

WORDS = ("red blue green small large dog cat car tree house river sky plane boat bird man woman child "
         "runs sleeps jumps eats stands sits flies swims").split()


def make_checkpoint(path):
    """(transformers model, LlavaNextProcessor) of a tiny LLaVA-NeXT saved at `path` with its tokenizer."""
    return save_tiny_llava_next_pipeline(path, tokenizer_json("mistral_legacy"))


def sentence(rng, n=5):
    return " ".join(rng.choice(WORDS, n))


def image(rng):
    h, w = rng.integers(20, 70, 2)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def distill_examples(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Example(id=str(i), text=sentence(rng, 3 + i % 4)) for i in range(n)]


def instruct_examples(n, seed=0, negatives=0):
    """MMEB-shaped: an image query with an instruction, a caption positive; or the reverse."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        if i % 2 == 0:
            q = Input(prompt="<|image_1|>\nFind an image caption describing the given everyday image.\n",
                      image=image(rng))
            p = Input(prompt=sentence(rng))
        else:
            q = Input(prompt=f"Find me an everyday image that matches the given caption: {sentence(rng)}\n")
            p = Input(prompt="<|image_1|>\nRepresent the given image.\n", image=image(rng))
        negs = [Input(prompt=sentence(rng, 4)) for _ in range(negatives)]
        out.append(Example(id=f"ex{i}", query=q, positive=p, negatives=negs))
    return out


def judge_examples(n, candidates=4, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        q = Input(prompt="<|image_1|>\nFind an image caption describing the given everyday image.\n", image=image(rng))
        cands = [Input(prompt=sentence(rng)) for _ in range(candidates)]
        scores = [float(0.9 - 0.1 * k + 0.05 * rng.random()) for k in range(candidates)]
        out.append(Example(id=f"q{i}", query=q, candidates=cands, scores=scores))
    return out


def teacher_table(n, dim=24, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g)


def hf_prompts(inputs):
    """Raw MMEB prompts with LLaVA's placeholder, and their images, for transformers' processor."""
    prompts = [x.prompt.replace("<|image_1|>", "<image>") for x in inputs]
    images = [x.image for x in inputs if x.image is not None]
    return prompts, images
