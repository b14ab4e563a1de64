"""Phi-3.5-V encoding on a mixed workload: unime against the reference path (tests/reference/phi3_v.py:
the specification in plain PyTorch with transformers' CLIP and Phi-3 modules, one input at a time as the
original processor takes them) on the same weights, images and prompts.

    python benchmarks/bench_phi3_v.py [--layers 4] [--hidden 512] [--vision-layers 4] [--num-crops 4]

Workload: 8 images from 200x800 to 1280x720 (MMEB-style "<|image_1|>" prompts with an instruction) and
24 texts of 5 to 120 words. The model has Phi-3.5-V's CLIP width (1024, 336-px crops) with
--vision-layers layers (run to the penultimate) and a Phi-3 decoder of --layers x --hidden with LongRoPE.
Prints inputs per second for each dtype and the ratio unime / reference (> 1: unime is faster); the
embeddings of both are compared as the check that they did the same work.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import tokenizers
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))

import unime  # noqa: E402
from phi3_v_fixture import TINY_CONFIG, image, reference_model, save_tiny_checkpoint  # noqa: E402
from flops import count_flops, matmul_peak  # noqa: E402
from timing import median_seconds  # noqa: E402
from tokenizer_assets import tokenizer_json  # noqa: E402
from workload import IMAGE_SIZES, texts  # noqa: E402



def workload(seed: int = 0):
    prompt = "<|image_1|>\nRepresent the given image for retrieval of a matching caption.\n"
    images = [image(100 + i, h, w) for i, (h, w) in enumerate(IMAGE_SIZES)]
    sentences = texts(np.random.default_rng(seed))
    return [prompt] * len(images) + sentences, images + [None] * len(sentences)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--vision-layers", type=int, default=4)
    p.add_argument("--num-crops", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtypes", default="float32,bfloat16")
    args = p.parse_args()
    clip = dict(TINY_CONFIG["img_processor"]["vision_config"], num_hidden_layers=args.vision_layers,
                intermediate_size=4096, num_attention_heads=16)
    config = dict(TINY_CONFIG, hidden_size=args.hidden, intermediate_size=args.hidden * 8 // 3,
                  num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64,
                  num_key_value_heads=args.hidden // 64,
                  rope_scaling=dict(TINY_CONFIG["rope_scaling"], short_factor=[1.0] * 32, long_factor=[2.0] * 32),
                  img_processor=dict(TINY_CONFIG["img_processor"], vision_config=clip))
    prompts, images = workload()
    tok = tokenizers.Tokenizer.from_file(str(tokenizer_json("phi3")))
    print(f"machine: {torch.get_num_threads()} torch threads; torch {torch.__version__}; Phi-3.5-V-shaped model: "
          f"CLIP 1024 x {args.vision_layers} layers, decoder {args.layers} x {args.hidden}; "
          f"num_crops {args.num_crops}; "
          f"{sum(i is not None for i in images)} images + {sum(i is None for i in images)} texts")
    print(f"{'dtype':<10}{'unime inputs/s':>16}{'reference inputs/s':>20}{'ratio':>8}{'min cosine':>12}"
          f"{'work GF':>9}{'unime GF':>10}{'peak TF/s':>11}{'of peak':>9}{'own of peak':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        path = save_tiny_checkpoint(os.path.join(tmp, "m"), str(tokenizer_json("phi3")), args.num_crops, config)
        for name in args.dtypes.split(","):
            dtype = getattr(torch, name)
            model = unime.Model.from_pretrained(path, dtype=dtype)
            reference = reference_model(dtype, config)

            def run_unime():
                return model.encode(prompts=prompts, images=images, batch_size=len(prompts))

            def run_reference():
                out = []
                with torch.inference_mode():
                    for prompt, img in zip(prompts, images):
                        out.append(reference.last_token_state(tok, prompt, img, args.num_crops))
                return F.normalize(torch.stack(out), dim=-1)

            ours_t = median_seconds(run_unime, repeats=args.repeats, warmup=1)
            ref_t = median_seconds(run_reference, repeats=args.repeats, warmup=1)
            cos = F.cosine_similarity(torch.as_tensor(run_unime()).float(), run_reference(), dim=-1).min().item()
            n = len(prompts)
            # Work: the reference's FLOPs at batch size 1 (every crop through every CLIP layer it runs).
            # "of peak" counts the reference's work (which can exceed what is needed: padded crops, an
            # unused CLIP layer); "own of peak" counts the FLOPs unime executes.
            work, own, peak = count_flops(run_reference), count_flops(run_unime), matmul_peak(dtype)
            print(f"{name:<10}{n / ours_t:>16.2f}{n / ref_t:>20.2f}{ref_t / ours_t:>8.2f}{cos:>12.5f}"
                  f"{work / 1e9:>9.1f}{own / 1e9:>10.1f}{peak / 1e12:>11.3f}{work / ours_t / peak:>9.1%}"
                  f"{own / ours_t / peak:>13.1%}")


if __name__ == "__main__":
    main()
