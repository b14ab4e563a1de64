"""Qwen2-VL encoding on a mixed workload: unime against transformers 4.48.3 (Qwen2VLProcessor +
Qwen2VLForConditionalGeneration, padded batches as VLM2Vec / UniME-V2 run it) on the same weights,
images and prompts.

    python benchmarks/bench_qwen2_vl.py [--layers 4] [--hidden 512] [--vision-layers 4] [--batch 4]

Workload: 8 images from 200x800 to 1280x720 with an instruction (the MMEB form: a bare <|image_pad|>)
and 24 texts of 5 to 120 words; 64 to 256 merged tokens per image (see PIXELS). The
model has Qwen2-VL's vision width (1280, 16 heads) with --vision-layers blocks and a Qwen2 decoder of
--layers x --hidden with M-RoPE. Prints inputs per second for each dtype, the ratio unime /
transformers (> 1: unime is faster) and the smallest cosine between the two sides' embeddings.
"""

from __future__ import annotations

import argparse
import os
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

# 64 to 256 merged tokens per image: transformers' vision attention builds one dense (patches x patches)
# mask over every image of a batch, which at UniME-V2's 1280 tokens per image needs tens of GB here.
PIXELS = {"min_pixels": 64 * 28 * 28, "max_pixels": 256 * 28 * 28}


def workload(seed: int = 0):
    rng = np.random.default_rng(seed)
    images = [random_image(rng, h, w) for h, w in IMAGE_SIZES]
    sentences = texts(rng)
    return ["a photo for retrieval"] * len(images) + sentences, images + [None] * len(sentences)


def save_model(path, args):
    from transformers import Qwen2TokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor

    torch.manual_seed(0)
    heads = args.hidden // 128  # Qwen2-VL's head_dim 128, which mrope_section [16, 24, 24] splits
    config = Qwen2VLConfig(
        vocab_size=151657, hidden_size=args.hidden, intermediate_size=args.hidden * 8 // 3,
        num_hidden_layers=args.layers, num_attention_heads=heads, num_key_value_heads=max(1, heads // 4),
        rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}, rope_theta=1e6, rms_norm_eps=1e-6,
        vision_config={"depth": args.vision_layers, "embed_dim": 1280, "num_heads": 16, "mlp_ratio": 4,
                       "hidden_size": args.hidden},
        image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, pad_token_id=151643,
        attn_implementation="sdpa")
    Qwen2VLForConditionalGeneration(config).save_pretrained(path, safe_serialization=True)
    Qwen2VLImageProcessor(**PIXELS).save_pretrained(path)
    import shutil

    shutil.copy(tokenizer_json("qwen2"), os.path.join(path, "tokenizer.json"))
    return Qwen2TokenizerFast(tokenizer_file=os.path.join(path, "tokenizer.json"), pad_token="<|endoftext|>",
                              eos_token="<|im_end|>", unk_token=None, bos_token=None, padding_side="left")


def main() -> None:
    from PIL import Image
    from transformers import Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor

    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--vision-layers", type=int, default=4)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtypes", default="float32,bfloat16")
    args = p.parse_args()
    texts, images = workload()
    instruction = "Represent the given image for retrieval of a matching caption."
    print(f"machine: {torch.get_num_threads()} torch threads; torch {torch.__version__}; Qwen2-VL-shaped model: "
          f"vision 1280 x {args.vision_layers} blocks, decoder {args.layers} x {args.hidden}; batch {args.batch}; "
          f"{sum(i is not None for i in images)} images + {sum(i is None for i in images)} texts")
    print(f"{'dtype':<10}{'unime inputs/s':>16}{'transformers inputs/s':>23}{'ratio':>8}{'min cosine':>12}"
          f"{'work GF':>9}{'unime GF':>10}{'peak TF/s':>11}{'of peak':>9}{'own of peak':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m")
        tok = save_model(path, args)
        processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**PIXELS), tokenizer=tok)
        for name in args.dtypes.split(","):
            dtype = getattr(torch, name)
            model = unime.Model.from_pretrained(path, dtype=dtype)
            instructions = [instruction if i is not None else None for i in images]
            prompts = model.process(texts, images, instructions).prompts
            hf = Qwen2VLForConditionalGeneration.from_pretrained(path, torch_dtype=dtype,
                                                                 attn_implementation="sdpa").eval()

            def run_unime():
                return model.encode(texts, images, instruction=instructions, batch_size=args.batch,
                                    show_progress=False)

            def hf_forward(s, e):
                ims = [Image.fromarray(i) for i in images[s:e] if i is not None]
                inputs = processor(text=list(prompts[s:e]), images=ims or None, padding=True, return_tensors="pt")
                if "pixel_values" in inputs:
                    inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
                hf.rope_deltas = None  # positions from get_rope_index on every call (see docs/models.md)
                hidden = hf(**inputs, output_hidden_states=True).hidden_states[-1]
                return hidden[:, -1].float()

            def run_transformers():
                with torch.inference_mode():
                    out = [hf_forward(s, s + args.batch) for s in range(0, len(prompts), args.batch)]
                return F.normalize(torch.cat(out), dim=-1)

            ours_t = median_seconds(run_unime, repeats=args.repeats, warmup=1)
            ref_t = median_seconds(run_transformers, repeats=args.repeats, warmup=1)
            cos = F.cosine_similarity(run_unime().float(), run_transformers(), dim=-1).min().item()
            n = len(prompts)
            # Work: transformers' FLOPs at batch size 1, less its LM head (count_flops leaves lm_head out).
            work = sum(count_flops(lambda i=i: hf_forward(i, i + 1)) for i in range(n))
            own, peak = count_flops(run_unime), matmul_peak(dtype)  # own: the FLOPs unime executes
            print(f"{name:<10}{n / ours_t:>16.2f}{n / ref_t:>23.2f}{ref_t / ours_t:>8.2f}{cos:>12.5f}"
                  f"{work / 1e9:>9.1f}{own / 1e9:>10.1f}{peak / 1e12:>11.3f}{work / ours_t / peak:>9.1%}"
                  f"{own / ours_t / peak:>13.1%}")


if __name__ == "__main__":
    main()
