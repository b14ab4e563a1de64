"""Encode throughput: unime vs Hugging Face transformers on the same decoder and batch.

    python benchmarks/bench_encode.py [--device cpu|cuda] [--layers 4] [--hidden 512] [--repeats 5]

Builds one random MistralForCausalLM with transformers, saves it, loads the same checkpoint into
unime, and encodes the same mixed-length, right-padded batch with both (transformers with its
default SDPA attention). Prints real tokens per second for unime (packed: the default, computing on
real tokens only; padded: the same batch as transformers sees it), for transformers, and the ratio
unime packed / transformers.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from transformers import MistralConfig, MistralForCausalLM

import unime
from timing import median_seconds


def make_batch(vocab: int, batch: int, max_len: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(max_len // 8, max_len + 1, (batch,), generator=g)
    ids = torch.randint(1, vocab, (batch, max_len), generator=g)
    mask = (torch.arange(max_len)[None] < lengths[:, None]).long()
    return ids * mask, mask


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-len", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dtypes", default="float32,bfloat16")
    args = p.parse_args()

    torch.manual_seed(0)
    config = MistralConfig(vocab_size=32000, hidden_size=args.hidden, intermediate_size=args.hidden * 7 // 2,
                           num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64,
                           num_key_value_heads=max(1, args.hidden // 256))
    hf = MistralForCausalLM(config).eval()
    ids, mask = make_batch(config.vocab_size, args.batch, args.max_len)
    tokens = int(mask.sum())
    print(f"machine: {torch.get_num_threads()} torch threads, device {args.device}; torch {torch.__version__}")
    print(f"decoder: {args.layers} layers, hidden {args.hidden}; batch {args.batch} x {args.max_len} "
          f"({tokens} real tokens)")
    print(f"{'dtype':<10}{'unime tok/s':>14}{'unime padded':>14}{'transformers tok/s':>20}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp, safe_serialization=True)
        for name in args.dtypes.split(","):
            dtype = getattr(torch, name)
            ours = unime.Model.from_pretrained(tmp, dtype=dtype, device=args.device)
            ref = hf.to(device=args.device, dtype=dtype)
            d_ids, d_mask = ids.to(args.device), mask.to(args.device)

            def run_ours(packed=True):
                with torch.inference_mode():
                    ours.encode_ids(d_ids, d_mask, packed=packed)

            def run_hf():
                with torch.inference_mode():
                    # The headless MistralModel: the LM head's logits are not part of embedding.
                    h = ref.model(input_ids=d_ids, attention_mask=d_mask).last_hidden_state
                    idx = d_mask.sum(1) - 1
                    torch.nn.functional.normalize(h[torch.arange(h.shape[0], device=h.device), idx], dim=-1)

            t_ours = median_seconds(run_ours, args.device, repeats=args.repeats, warmup=1)
            t_padded = median_seconds(lambda: run_ours(packed=False), args.device, repeats=args.repeats, warmup=1)
            t_hf = median_seconds(run_hf, args.device, repeats=args.repeats, warmup=1)
            print(f"{name:<10}{tokens / t_ours:>14.0f}{tokens / t_padded:>14.0f}{tokens / t_hf:>20.0f}"
                  f"{t_hf / t_ours:>8.2f}")


if __name__ == "__main__":
    main()
