"""Full-size encoding on a GPU: random-weight LLaVA-1.6-7B and Phi-3.5-V configurations, images/s and
texts/s, model FLOPs utilisation, and the ratio to transformers' padded batch and to batch size 1.

    python benchmarks/bench_encode_gpu.py [--models llava-next,phi3-v] [--size full|tiny]
        [--device cuda] [--dtype bfloat16] [--images 32] [--texts 128] [--batch 8] [--text-batch 64]
        [--repeats 2] [--unime-batch 32] [--max-batch-tokens 16384]

Models (random weights, made on the device and saved as safetensors so unime loads them as it loads a
released checkpoint):
- llava-next: llava-v1.6-mistral-7b's shapes (CLIP ViT-L/14-336, 24 layers run to the penultimate;
  Mistral 32 x 4096, GQA 32:8, 14336 MLP; LLaVA-1.6's five grid pinpoints). The peer is transformers
  4.48.3's LlavaNextProcessor + LlavaNextForConditionalGeneration (sdpa), padded batches of --batch
  images and --text-batch texts, as UniME evaluates, and one input at a time ("bs1").
- phi3-v: Phi-3.5-vision's shapes (CLIP ViT-L/14-336; Phi-3 32 x 3072, 8192 MLP, LongRoPE), num_crops 4.
  The peer is tests/reference/phi3_v.py (the specification with transformers' CLIP and Phi-3 modules,
  sdpa), one input at a time as the original processor takes them; it has no padded batch.

Workload: the mixed benchmark's 8 image sizes (200x800 to 1280x720) repeated to --images, and its 24
texts of 5 to 120 words repeated to --texts, each set timed on its own, end to end (preprocessing
included for both sides; unime overlaps it with the model on a worker thread).

Work: FLOPs of the peer's forward at batch size 1 (torch's FlopCounterMode, LM head left out), counted
once per input. "MFU" = work / unime's time / the device's nominal dense peak for the dtype (H100/H200
SXM bf16: 989 TF/s); "of mm peak" uses the (8192 x 8192) matmul peak torch reaches in the same run
instead. "own" counts the FLOPs unime executes (it skips LLaVA's last CLIP layer and the last decoder
layer but for the last token). min cos: unime's embeddings against the peer's.

--size tiny runs the same code on a small model (the test suite runs it on the CPU).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))

import unime  # noqa: E402
from bench_encode_mixed import IMAGE_PROMPT, TEXT_PROMPT, make_model  # noqa: E402
from flops import count_flops, matmul_peak  # noqa: E402
from timing import median_seconds  # noqa: E402
from tokenizer_assets import tokenizer_json  # noqa: E402
from workload import IMAGE_SIZES, random_image, texts  # noqa: E402

# Nominal dense (no sparsity) tensor-core peaks, FLOP/s, by a substring of the device name.
NOMINAL_PEAK = {torch.bfloat16: [("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12)],
                torch.float16: [("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12)]}

PHI3_V_IMAGE_PROMPT = "<|image_1|>\nRepresent the given image for retrieval of a matching caption.\n"


def nominal_peak(device_name: str, dtype: torch.dtype) -> float | None:
    """The nominal peak of the device torch names (torch.cuda.get_device_name), None if not in the table."""
    return next((peak for key, peak in NOMINAL_PEAK.get(dtype, []) if key in device_name), None)


def workload(n_images: int, n_texts: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = [random_image(rng, *IMAGE_SIZES[i % len(IMAGE_SIZES)]) for i in range(n_images)]
    sentences: list[str] = []
    while len(sentences) < n_texts:
        sentences += texts(rng)
    return images, sentences[:n_texts]


@dataclass
class Peer:
    """A backbone's reference implementation: forward(prompts, images, batch) embeds the inputs in
    batches of `batch` (normalised last-token states, (n, d)); batched: whether it takes batch > 1."""
    forward: Callable[[list, list, int], torch.Tensor]
    batched: bool


# ---- LLaVA-NeXT ------------------------------------------------------------------------------------


def llava_next(path: str, size: str, device: str, dtype: torch.dtype):
    shape = (argparse.Namespace(layers=32, hidden=4096, vision_layers=24, vision_hidden=1024) if size == "full"
             else argparse.Namespace(layers=2, hidden=256, vision_layers=2, vision_hidden=128))
    hf, processor = make_model(path, shape, device=device, dtype=dtype)
    hf.eval()
    desc = (f"LLaVA-NeXT: CLIP {shape.vision_layers} x {shape.vision_hidden}, Mistral {shape.layers} x "
            f"{shape.hidden}")

    def hf_batch(prompts, images):
        ims = [im for im in images if im is not None]
        inputs = processor(text=prompts, images=ims or None, padding=True, return_tensors="pt").to(device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        # UniME's pooling: the last position of the last hidden state; the LM head on it only.
        hidden = hf(**inputs, output_hidden_states=True, num_logits_to_keep=1).hidden_states[-1]
        return hidden[:, -1].float()

    def forward(prompts, images, batch):
        with torch.inference_mode():
            out = [hf_batch(prompts[s:s + batch], images[s:s + batch]) for s in range(0, len(prompts), batch)]
        return F.normalize(torch.cat(out), dim=-1)

    def prompts_for(n_images, sentences):
        # unime's default prompts are UniME's, the ones the peer is given here.
        return ([IMAGE_PROMPT] * n_images, dict(texts=[None] * n_images)), \
            ([TEXT_PROMPT.format(t) for t in sentences], dict(texts=list(sentences)))

    return desc, Peer(forward, batched=True), prompts_for


# ---- Phi-3.5-V ---------------------------------------------------------------------------------------


def phi3_v_config(size: str) -> dict:
    from phi3_v_fixture import TINY_CLIP, TINY_CONFIG

    if size == "full":  # Phi-3.5-vision-instruct, its CLIP ViT-L/14-336 written out for the reference
        head_dim = 96
        clip = dict(TINY_CLIP, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24)
        return dict(TINY_CONFIG, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=32, torch_dtype="bfloat16",
                    rope_scaling=dict(TINY_CONFIG["rope_scaling"], short_factor=[1.0] * (head_dim // 2),
                                      long_factor=[1.0 + i for i in range(head_dim // 2)]),
                    img_processor=dict(TINY_CONFIG["img_processor"], vision_config=clip))
    return TINY_CONFIG


def phi3_v(path: str, size: str, device: str, dtype: torch.dtype):
    import tokenizers

    from phi3_v_fixture import save_weights, write_checkpoint_files
    from reference import phi3_v as ref

    config = phi3_v_config(size)
    tok_json = str(tokenizer_json("phi3"))
    num_crops = 4
    # normal(0, 0.02) weights made on the device (the fixture's per-name CPU generator is far too slow
    # for 4.2 B parameters), saved under the released names. Made under `dtype` as the default, as
    # transformers' from_pretrained does: the rotary inv_freq stays float32 (.to(dtype) would round it).
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            reference = ref.Phi3VReference(config, attn_implementation="sdpa").eval()
    finally:
        torch.set_default_dtype(previous)
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if p.dim() == 1 and "norm" in name:
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, 0.02)
    write_checkpoint_files(path, tok_json, num_crops, config)
    save_weights(path, reference)
    tok = tokenizers.Tokenizer.from_file(tok_json)
    desc = (f"Phi-3.5-V: CLIP {reference.clip.config.num_hidden_layers} x {reference.clip.config.hidden_size}, "
            f"Phi-3 {config['num_hidden_layers']} x {config['hidden_size']}, num_crops {num_crops}")

    def forward(prompts, images, batch):
        assert batch == 1, "the Phi-3.5-V reference takes one input at a time"
        with torch.inference_mode():
            return F.normalize(torch.stack([reference.last_token_state(tok, p, i, num_crops)
                                            for p, i in zip(prompts, images)]), dim=-1)

    def prompts_for(n_images, sentences):
        # MMEB's raw prompts, which unime.encode(prompts=...) takes as they are.
        images = [PHI3_V_IMAGE_PROMPT] * n_images
        return (images, dict(prompts=images)), (list(sentences), dict(prompts=list(sentences)))

    return desc, Peer(forward, batched=False), prompts_for


BACKBONES = {"llava-next": llava_next, "phi3-v": phi3_v}


# ---- the measurement ---------------------------------------------------------------------------------


def measure(name: str, args, peak: float, nominal: float | None) -> list[dict]:
    dtype = getattr(torch, args.dtype)
    images, sentences = workload(args.images, args.texts)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        path = os.path.join(tmp, name)
        desc, peer, prompts_for = BACKBONES[name](path, args.size, args.device, dtype)
        model = unime.Model.from_pretrained(path, dtype=dtype, device=args.device)
        print(f"{name}: {desc}; {len(images)} images + {len(sentences)} texts; {args.dtype}", flush=True)
        (image_prompts, image_inputs), (text_prompts, text_inputs) = prompts_for(len(images), sentences)
        sets = [("images", image_prompts, image_inputs, images, args.batch),
                ("texts", text_prompts, text_inputs, [None] * len(sentences), args.text_batch)]
        for kind, prompts, inputs, ims, batch in sets:
            n = len(prompts)

            def run_unime(batch_size=args.unime_batch, inputs=inputs, ims=ims):
                return model.encode(**inputs, images=ims, batch_size=batch_size,
                                    max_batch_tokens=args.max_batch_tokens, show_progress=False)

            t_ours = median_seconds(run_unime, args.device, repeats=args.repeats, warmup=1)
            t_bs1 = median_seconds(lambda: peer.forward(prompts, ims, 1), args.device, repeats=args.repeats,
                                   warmup=1)
            t_padded = (median_seconds(lambda: peer.forward(prompts, ims, batch), args.device, repeats=args.repeats,
                                       warmup=1) if peer.batched else None)
            reference = peer.forward(prompts, ims, batch if peer.batched else 1)
            cos = F.cosine_similarity(run_unime().float(), reference.to(args.device), dim=-1).min().item()
            work = sum(count_flops(lambda i=i: peer.forward(prompts[i:i + 1], ims[i:i + 1], 1)) for i in range(n))
            own = count_flops(lambda: run_unime(batch_size=1))
            rows.append(dict(model=name, set=kind, n=n, unime_s=t_ours, padded_s=t_padded, bs1_s=t_bs1,
                             work=work, own=own, peak=peak, nominal=nominal, min_cos=cos))
            print(format_row(rows[-1]), flush=True)
        model = peer = None  # free both models (the peer's forward holds its own) before the next backbone
        gc.collect()
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    return rows


def format_row(r: dict) -> str:
    n, t = r["n"], r["unime_s"]
    padded = f"{n / r['padded_s']:>10.2f}{r['padded_s'] / t:>7.2f}" if r["padded_s"] else f"{'-':>10}{'-':>7}"
    mfu = f"{r['work'] / t / r['nominal']:>7.1%}" if r["nominal"] else f"{'-':>7}"
    return (f"{r['model']:<11}{r['set']:<7}{n / t:>10.2f}{padded}{n / r['bs1_s']:>10.2f}{r['bs1_s'] / t:>7.2f}"
            f"{r['work'] / n / 1e9:>10.1f}{r['work'] / t / 1e12:>9.2f}{mfu}{r['work'] / t / r['peak']:>10.1%}"
            f"{r['own'] / t / r['peak']:>8.1%}{r['min_cos']:>9.5f}")


HEADER = (f"{'model':<11}{'set':<7}{'unime/s':>10}{'hf pad/s':>10}{'ratio':>7}{'hf bs1/s':>10}{'ratio':>7}"
          f"{'GF/input':>10}{'TF/s':>9}{'MFU':>7}{'of mm pk':>10}{'own':>8}{'min cos':>9}")


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="llava-next,phi3-v")
    p.add_argument("--size", choices=["full", "tiny"], default="full")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--images", type=int, default=32)
    p.add_argument("--texts", type=int, default=128)
    p.add_argument("--batch", type=int, default=8, help="the peer's padded batch of images")
    p.add_argument("--text-batch", type=int, default=64, help="the peer's padded batch of texts")
    p.add_argument("--unime-batch", type=int, default=32, help="unime's batch_size (inputs per window)")
    p.add_argument("--max-batch-tokens", type=int, default=unime.engine.DEFAULT_MAX_BATCH_TOKENS)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--tmp", default=None, help="folder for the saved checkpoints (default: the system's)")
    args = p.parse_args(argv)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        name = torch.cuda.get_device_name(torch.device(args.device))
    else:
        name = f"{torch.get_num_threads()} CPU threads"
    dtype = getattr(torch, args.dtype)
    peak = matmul_peak(dtype, args.device, n=8192 if args.device.startswith("cuda") else 1024)
    nominal = nominal_peak(name, dtype) if args.device.startswith("cuda") else None
    print(f"device: {name}; torch {torch.__version__}; matmul peak {peak / 1e12:.1f} TF/s in {args.dtype}"
          + (f"; nominal {nominal / 1e12:.0f} TF/s" if nominal else ""), flush=True)
    print(HEADER, flush=True)
    rows = []
    for model in args.models.split(","):
        rows += measure(model, args, peak, nominal)
    print("\n" + HEADER + "\n" + "\n".join(map(format_row, rows)))
    return rows


if __name__ == "__main__":
    main()
