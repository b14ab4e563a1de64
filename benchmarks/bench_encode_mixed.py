"""The encoding engine on a mixed workload: unime against transformers 4.48.3 (LlavaNextProcessor +
LlavaNextForConditionalGeneration, padded batches as UniME evaluates) on the same LLaVA-NeXT weights,
images and prompts, with the work counted in FLOPs and set against the machine's matmul peak.

    python benchmarks/bench_encode_mixed.py [--layers 4] [--hidden 1024] [--vision-layers 4]
        [--vision-hidden 512] [--batch 8] [--repeats 3] [--dtypes float32,bfloat16]

Workload: 8 images from 200x800 to 1280x720 with LLaVA-1.6's real preprocessing (336-px tiles of
14-px patches, its five grid pinpoints: 1176 to 2928 image tokens each) and UniME's image prompt,
and 24 texts of 5 to 120 words with UniME's text prompt. The model has LLaVA-1.6's shapes at a
smaller width and depth (CLIP --vision-layers x --vision-hidden, Mistral --layers x --hidden with
head_dim 128 and GQA 4:1).

Work: FLOPs of transformers' forward at batch size 1 (torch's FlopCounterMode; the LM head left
out), as the issue defines it; unime's own count is printed too (it skips the last
CLIP layer, whose output LLaVA never uses, and computes the last decoder layer for the last token
only). Prints inputs/s for both, the ratio, and unime's achieved FLOP/s (transformers' work / unime's
time) as a fraction of the (2048 x 2048) matmul peak torch reaches in the same run, and the same for
the FLOPs unime executes ("own of peak"). transformers runs padded batches of --batch (as UniME
evaluates) and, for "hf bs1", one input at a time; "ratio" is against the padded batches. "max ratio"
is the ratio unime would reach running its own FLOPs at 100% of the measured peak: the ceiling of any
implementation that does the same work.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))

import unime  # noqa: E402
from flops import count_flops, matmul_peak  # noqa: E402
from timing import median_seconds  # noqa: E402
from tokenizer_assets import tokenizer_json  # noqa: E402
from workload import IMAGE_SIZES, random_image, texts  # noqa: E402

PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]  # LLaVA-1.6's
IMAGE_PROMPT = "[INST] <image>\nSummary above image in one word: [/INST]"
TEXT_PROMPT = "[INST] {}\nSummary above sentence in one word: [/INST]"


def workload(seed: int = 0):
    rng = np.random.default_rng(seed)
    images = [random_image(rng, h, w) for h, w in IMAGE_SIZES]
    sentences = texts(rng)
    return [None] * len(images) + sentences, images + [None] * len(sentences)


def save_model(path, args):
    """The model's checkpoint saved at `path` (CPU, float32); returns transformers' processor for it."""
    return make_model(path, args)[1]


def make_model(path, args, device="cpu", dtype=torch.float32):
    """A random LLaVA-NeXT of args' shape, made on `device` in `dtype` and saved at `path` with its
    tokenizer and image processor; returns (the transformers model, its processor)."""
    from transformers import (CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
                              LlavaNextImageProcessor, LlavaNextProcessor, MistralConfig, PreTrainedTokenizerFast)

    torch.manual_seed(0)
    heads = args.hidden // 128
    text = MistralConfig(vocab_size=32064, hidden_size=args.hidden, intermediate_size=args.hidden * 7 // 2,
                         num_hidden_layers=args.layers, num_attention_heads=heads,
                         num_key_value_heads=max(1, heads // 4), rope_theta=1e6, sliding_window=None,
                         pad_token_id=32001)
    vision = CLIPVisionConfig(hidden_size=args.vision_hidden, intermediate_size=args.vision_hidden * 4,
                              num_hidden_layers=args.vision_layers, num_attention_heads=args.vision_hidden // 64,
                              image_size=336, patch_size=14, projection_dim=args.hidden)
    config = LlavaNextConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), image_token_index=32000,
                             image_grid_pinpoints=PINPOINTS, vision_feature_layer=-2, attn_implementation="sdpa")
    with torch.device(device):
        model = LlavaNextForConditionalGeneration._from_config(config, torch_dtype=dtype)
    model.save_pretrained(path, safe_serialization=True)
    image_processor = LlavaNextImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                                              image_grid_pinpoints=PINPOINTS)  # 336-px tiles, CLIP mean/std
    image_processor.save_pretrained(path)
    shutil.copy(tokenizer_json("mistral_legacy"), os.path.join(path, "tokenizer.json"))
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(path, "tokenizer.json"), bos_token="<s>",
                                  eos_token="</s>", unk_token="<unk>", pad_token="<pad>", padding_side="left",
                                  model_input_names=["input_ids", "attention_mask"])
    return model, LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=14,
                                     vision_feature_select_strategy="default", image_token="<image>",
                                     num_additional_image_tokens=1)


def main() -> None:
    from PIL import Image
    from transformers import LlavaNextForConditionalGeneration

    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--vision-layers", type=int, default=4)
    p.add_argument("--vision-hidden", type=int, default=512)
    p.add_argument("--batch", type=int, default=8, help="transformers' batch size (unime: its defaults)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtypes", default="float32,bfloat16")
    args = p.parse_args()
    texts, images = workload()
    prompts = [IMAGE_PROMPT if t is None else TEXT_PROMPT.format(t) for t in texts]
    n = len(prompts)
    print(f"machine: {torch.get_num_threads()} torch threads; torch {torch.__version__}; LLaVA-NeXT-shaped model: "
          f"CLIP {args.vision_layers} x {args.vision_hidden} (336-px tiles), Mistral {args.layers} x {args.hidden}; "
          f"{sum(i is not None for i in images)} images + {sum(i is None for i in images)} texts")
    header = (f"{'dtype':<10}{'peak TF/s':>10}{'work GF':>9}{'unime GF':>10}{'unime in/s':>12}{'hf in/s':>9}"
              f"{'hf bs1':>8}{'ratio':>7}{'max ratio':>10}{'unime TF/s':>12}{'of peak':>9}{'own of peak':>13}"
              f"{'min cos':>9}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m")
        processor = save_model(path, args)
        pil = [None if i is None else Image.fromarray(i) for i in images]
        for name in args.dtypes.split(","):
            dtype = getattr(torch, name)
            peak = matmul_peak(dtype)
            model = unime.Model.from_pretrained(path, dtype=dtype)
            hf = LlavaNextForConditionalGeneration.from_pretrained(path, torch_dtype=dtype,
                                                                   attn_implementation="sdpa").eval()

            def hf_forward(s, e):
                ims = [im for im in pil[s:e] if im is not None]
                inputs = processor(text=prompts[s:e], images=ims or None, padding=True, return_tensors="pt")
                if "pixel_values" in inputs:
                    inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
                # UniME's pooling: the last position of the last hidden state; the LM head on it only.
                hidden = hf(**inputs, output_hidden_states=True, num_logits_to_keep=1).hidden_states[-1]
                return hidden[:, -1].float()

            def run_unime():
                return model.encode(texts, images, show_progress=False)

            def run_transformers(batch=args.batch):
                with torch.inference_mode():
                    out = [hf_forward(s, min(n, s + batch)) for s in range(0, n, batch)]
                return F.normalize(torch.cat(out), dim=-1)

            work = sum(count_flops(lambda i=i: hf_forward(i, i + 1)) for i in range(n))
            ours_work = count_flops(lambda: model.encode(texts, images, show_progress=False, batch_size=1))
            ours_t = median_seconds(run_unime, repeats=args.repeats, warmup=1)
            ref_t = median_seconds(run_transformers, repeats=args.repeats, warmup=1)
            ref1_t = median_seconds(lambda: run_transformers(1), repeats=args.repeats, warmup=1)
            cos = F.cosine_similarity(run_unime().float(), run_transformers(), dim=-1).min().item()
            achieved = work / ours_t
            rows.append(f"{name:<10}{peak / 1e12:>10.3f}{work / 1e9:>9.1f}{ours_work / 1e9:>10.1f}{n / ours_t:>12.2f}"
                        f"{n / ref_t:>9.2f}{n / ref1_t:>8.2f}{ref_t / ours_t:>7.2f}{ref_t * peak / ours_work:>10.2f}"
                        f"{achieved / 1e12:>12.3f}{achieved / peak:>9.1%}"
                        f"{ours_work / ours_t / peak:>13.1%}"
                        f"{cos:>9.5f}")
            print(header if len(rows) == 1 else "", rows[-1], sep="\n" if len(rows) == 1 else "")


if __name__ == "__main__":
    main()
