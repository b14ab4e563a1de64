"""Training-step throughput: unime.Trainer vs a reference trainer (transformers + peft + torch AdamW, the
plain objective; tests/reference/trainer.py) on the same LLaVA-NeXT-shaped model, batches and LoRA.

    python benchmarks/bench_train.py [--batch 32] [--chunk 8] [--hidden 256] [--layers 4] [--steps 4] [--device cuda]

Stage 2 (hard-negative InfoNCE, k = 8), LoRA r = 16 on the language model's q/k/v/o/gate/up/down, fp32
(on the CPU by default). Each side of the batch (image + instruction queries, caption positives) is embedded; unime runs
GradCache with --chunk inputs per chunk, and the reference is timed both without GradCache (one
autograd graph for the batch) and with it (VLM2Vec's two passes, written out). Prints seconds per step,
examples/s and the ratios; --memory also prints each side's peak RSS for growing batches at a fixed
chunk (each in its own process).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "python"))

import unime  # noqa: E402
from unime.train import Example, Input  # noqa: E402

WORDS = "red blue green small large dog cat car tree house river sky plane boat bird man woman child".split()


def make_model(path: str, hidden: int, layers: int, seed: int = 0):
    from transformers import (CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
                              LlavaNextImageProcessor, MistralConfig)

    torch.manual_seed(seed)
    pin = [[56, 112], [112, 56], [112, 112]]
    config = LlavaNextConfig(
        text_config=MistralConfig(vocab_size=32064, hidden_size=hidden, intermediate_size=hidden * 11 // 4,
                                  num_hidden_layers=layers, num_attention_heads=hidden // 64,
                                  num_key_value_heads=max(1, hidden // 256), sliding_window=None,
                                  pad_token_id=32001, max_position_embeddings=4096).to_dict(),
        vision_config=CLIPVisionConfig(hidden_size=128, intermediate_size=512, num_hidden_layers=3,
                                       num_attention_heads=4, image_size=56, patch_size=14).to_dict(),
        image_token_index=32000, image_grid_pinpoints=pin)
    LlavaNextForConditionalGeneration(config).save_pretrained(path, safe_serialization=True)
    LlavaNextImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56},
                            image_grid_pinpoints=pin).save_pretrained(path)
    # LLaVA-1.6's tokenizer, the tests' cached conversion of mistral-common's model (the demo's too).
    from tokenizer_assets import tokenizer_json

    shutil.copy(tokenizer_json("mistral_legacy"), os.path.join(path, "tokenizer.json"))


def examples(n: int, seed: int = 0) -> list[Example]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = rng.integers(40, 120, 2)
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        caption = " ".join(rng.choice(WORDS, 12))
        out.append(Example(id=str(i), query=Input(prompt="<|image_1|>\nFind an image caption describing the given "
                                                         "everyday image.\n", image=img),
                           positive=Input(prompt=caption)))
    return out


CONFIG = dict(stage="instruct", lora_r=16, lora_alpha=32, lora_dropout=0.0, learning_rate=1e-4, weight_decay=0.0,
              warmup_steps=0, max_steps=1000, lr_schedule="linear", max_grad_norm=1.0, adam_epsilon=1e-8,
              hard_negatives=8, false_negative_margin=0.1, temperature=0.02,
              lora_targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])


def reference(path: str, trainer: "unime.Trainer", device: str = "cpu"):
    from reference.trainer import ReferenceTrainer
    from transformers import (LlavaNextForConditionalGeneration, LlavaNextImageProcessor, LlavaNextProcessor,
                              PreTrainedTokenizerFast)

    model = trainer.model
    adapters = {"base_model.model." + model.hf_name(p): t.detach().clone() for p, t in trainer.trainable_parameters()}
    targets = "^(?:" + "|".join(model.hf_module_path(m).replace(".", r"\.") for m in trainer.adapted_modules) + ")$"
    hf = LlavaNextForConditionalGeneration.from_pretrained(path, torch_dtype=torch.float32,
                                                           attn_implementation="sdpa").to(device)
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{path}/tokenizer.json", bos_token="<s>", eos_token="</s>",
                                  unk_token="<unk>", pad_token="<pad>", padding_side="left",
                                  model_input_names=["input_ids", "attention_mask"])
    processor = LlavaNextProcessor(image_processor=LlavaNextImageProcessor.from_pretrained(path), tokenizer=tok,
                                   patch_size=14, vision_feature_select_strategy="default", image_token="<image>",
                                   num_additional_image_tokens=1)
    return ReferenceTrainer(hf, processor, targets, adapters, dict(CONFIG, batch_size=len(adapters)))


def reference_loss(ref, batch, chunk: int):
    """The batch's stage-2 loss on the reference; chunk > 0: VLM2Vec's GradCache (no-grad pass, loss on
    detached embeddings, then chunk by chunk re-forward and backward of dot(emb, grad)), returning a
    zero-gradient surrogate so that ReferenceTrainer.step's backward adds nothing."""
    from reference import losses

    def side(inputs):
        prompts = [x.prompt.replace("<|image_1|>", "<image>") for x in inputs]
        images = [x.image for x in inputs if x.image is not None]
        return prompts, images

    q_in, p_in = [e.query for e in batch], [e.positive for e in batch]
    loss = lambda q, p: losses.hard_negative_infonce(q, p, None, 8, 0.1, 0.02)[0]  # noqa: E731
    if chunk <= 0:
        return loss(ref.embed(*side(q_in)), ref.embed(*side(p_in)))
    reps = []
    with torch.no_grad():
        for inputs in (q_in, p_in):
            reps.append(torch.cat([ref.embed(*side(inputs[i:i + chunk])) for i in range(0, len(inputs), chunk)]))
    q, p = (r.detach().requires_grad_() for r in reps)
    value = loss(q, p)
    value.backward()
    for inputs, rep in ((q_in, q), (p_in, p)):
        for i in range(0, len(inputs), chunk):
            (ref.embed(*side(inputs[i:i + chunk])) * rep.grad[i:i + chunk]).sum().backward()
    return value.detach().requires_grad_()


def time_steps(fn, steps: int, device: str = "cpu") -> float:
    if device.startswith("cuda"):
        step = fn

        def fn():
            step()
            torch.cuda.synchronize()

    fn()  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mb(args, batch: int, which: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--measure-memory", which, "--batch", str(batch), "--chunk",
                          str(args.chunk), "--hidden", str(args.hidden), "--layers", str(args.layers), "--model",
                          args.model], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure_memory(args) -> None:
    """Peak RSS during one step above the RSS before it (Linux: clear_refs 5 resets the peak)."""
    model = unime.Model.from_pretrained(args.model)
    data = examples(args.batch)
    trainer = unime.Trainer(model, config=dict(CONFIG, batch_size=args.batch,
                                               chunk_size=args.chunk if args.measure_memory == "chunked" else 0))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kb("VmRSS")
    trainer.step(data)
    print((_status_kb("VmHWM") - before) / 1024)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--chunk", type=int, default=8)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--device", default="cpu")
    p.add_argument("--memory", default="", help="comma-separated batch sizes for the peak-memory table")
    p.add_argument("--measure-memory", default="", help=argparse.SUPPRESS)
    p.add_argument("--model", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure_memory:
        measure_memory(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        args.model = args.model or os.path.join(tmp, "model")
        make_model(args.model, args.hidden, args.layers)
        data = examples(args.batch)
        print(f"machine: {torch.get_num_threads()} torch threads, device {args.device}; torch {torch.__version__}; "
              f"model: LLaVA-NeXT, LM "
              f"{args.layers} x {args.hidden}, CLIP 3 x 128 on 56-px tiles; batch {args.batch}, chunk {args.chunk}, "
              "LoRA r 16 on q/k/v/o/gate/up/down, fp32")
        results = {}
        for chunk in (args.chunk, 0):
            trainer = unime.Trainer(unime.Model.from_pretrained(args.model, device=args.device),
                                    config=dict(CONFIG, batch_size=args.batch, chunk_size=chunk))
            results[f"unime chunk={chunk}"] = time_steps(lambda: trainer.step(data), args.steps, args.device)
            ref = reference(args.model, trainer, args.device)
            results[f"reference chunk={chunk}"] = time_steps(
                lambda: ref.step(lambda r: reference_loss(r, data, chunk)), args.steps, args.device)
        for name, sec in results.items():
            print(f"{name:<24}{sec:>9.3f} s/step {args.batch / sec:>9.1f} examples/s")
        for chunk in (args.chunk, 0):
            ratio = results[f"reference chunk={chunk}"] / results[f"unime chunk={chunk}"]
            print(f"ratio (reference / unime), chunk={chunk}: {ratio:.2f}x")
        print(f"ratio unime GradCache vs reference without: "
              f"{results['reference chunk=0'] / results[f'unime chunk={args.chunk}']:.2f}x")
        if args.memory:
            print(f"peak RSS above the step's starting RSS (MB), chunk {args.chunk} vs no chunking:")
            for batch in [int(b) for b in args.memory.split(",")]:
                # Without chunks the activations of the whole batch are kept: past 256 examples they
                # outgrow a 24 GB machine, so that column stops there.
                full = f"{peak_rss_mb(args, batch, 'full'):>8.0f}" if batch <= 256 else "       -"
                print(f"  batch {batch:>5}: GradCache {peak_rss_mb(args, batch, 'chunked'):>8.0f}   no chunks {full}")


if __name__ == "__main__":
    main()
