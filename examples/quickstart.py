"""unime quickstart: load a decoder checkpoint, embed sentences, print their cosine similarities.

    python examples/quickstart.py                 # a tiny random Mistral made on the spot (default)
    python examples/quickstart.py --model DIR     # any local Llama/Mistral checkpoint directory

Token ids come from a stand-in byte tokenizer (UTF-8 bytes + 3) until unime.Tokenizer lands, so
with the tiny random model the numbers show the pipeline working, not semantic similarity.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch

import unime

SENTENCES = [
    "A dog runs across the park.",
    "A puppy is running on the grass.",
    "The stock market fell sharply today.",
    "Summarize above sentence in one word:",
]


def make_tiny_mistral(path: str, seed: int = 0) -> str:
    """Writes a tiny random MistralForCausalLM checkpoint (config.json + model.safetensors)."""
    config = dict(
        model_type="mistral", architectures=["MistralForCausalLM"], vocab_size=259, hidden_size=64,
        intermediate_size=160, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        rms_norm_eps=1e-5, rope_theta=10000.0, sliding_window=4096, torch_dtype="float32",
    )
    g = torch.Generator().manual_seed(seed)
    hd = config["hidden_size"] // config["num_attention_heads"]
    shapes = {"model.embed_tokens.weight": (config["vocab_size"], config["hidden_size"]),
              "model.norm.weight": (config["hidden_size"],)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (64,), p + "post_attention_layernorm.weight": (64,),
            p + "self_attn.q_proj.weight": (4 * hd, 64), p + "self_attn.k_proj.weight": (2 * hd, 64),
            p + "self_attn.v_proj.weight": (2 * hd, 64), p + "self_attn.o_proj.weight": (64, 4 * hd),
            p + "mlp.gate_proj.weight": (160, 64), p + "mlp.up_proj.weight": (160, 64),
            p + "mlp.down_proj.weight": (64, 160),
        })
    tensors = {name: (1.0 + 0.1 * torch.randn(shape, generator=g)) if "norm" in name
               else 0.1 * torch.randn(shape, generator=g) for name, shape in shapes.items()}
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    unime.save_safetensors(os.path.join(path, "model.safetensors"), tensors, {"format": "pt"})
    return path


def byte_tokens(sentences: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded (ids, mask) from UTF-8 bytes; id 1 (BOS) first, as Llama-family tokenizers do."""
    rows = [[1] + [b + 3 for b in s.encode("utf-8")] for s in sentences]
    length = max(map(len, rows))
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, length - len(row):] = torch.tensor(row)
        mask[i, length - len(row):] = 1
    return ids, mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint directory (default: a tiny random Mistral)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or make_tiny_mistral(os.path.join(tmp, "tiny-mistral"))
        model = unime.Model.from_pretrained(path, dtype=args.dtype, device=args.device)
        print(model)
        ids, mask = byte_tokens(SENTENCES)
        start = time.perf_counter()
        with torch.inference_mode():
            emb = model.encode_ids(ids, mask).float()
        elapsed = time.perf_counter() - start
        print(f"embedded {len(SENTENCES)} sentences ({int(mask.sum())} tokens) in {elapsed * 1e3:.1f} ms; "
              f"embedding shape {tuple(emb.shape)}")
        sim = emb @ emb.T
        width = max(len(s) for s in SENTENCES)
        print("cosine similarity:")
        for s, row in zip(SENTENCES, sim):
            print(f"  {s:<{width}}  " + " ".join(f"{v:6.3f}" for v in row.tolist()))


if __name__ == "__main__":
    main()
