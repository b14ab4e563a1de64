"""Op throughput: unime's registered ops against the plain-PyTorch maths they replace.

    python benchmarks/bench_ops.py [--device cuda]

rms_norm: torch.ops.unime.rms_norm (fused CUDA kernel / CPU kernel) vs the reference maths
(tests/reference/rms_norm.py, what transformers' LlamaRMSNorm computes), on decoder-sized inputs.
gated_silu / quick_gelu: the fused activations vs the unfused expressions the models used
(F.silu(gate) * up; x * sigmoid(1.702 x)), on the shapes of the mixed-workload benchmark's Mistral MLP
and CLIP MLP (bench_encode_mixed.py).
Prints GB/s of input read + output written (fastest of 50 runs, see benchmarks/timing.py), for
each, and the ratio.

attention (CPU, bf16): the AVX512-BF16 kernel (csrc/ops/cpu/attention_cpu.cc) vs torch's CPU flash
kernel through the same packed-attention call (switched with unime._C._use_cpu_bf16_attention), on
the mixed benchmark's shapes: 33 CLIP tiles of 577 tokens, LLaVA-NeXT image sequences (causal, GQA
8:2, head_dim 128), short texts. Prints TFLOP/s (4 n^2 H d per sequence, halved when causal).

rotary (CPU): the fused rotary against the unfused expression (bench_cpu_rotary).
attention (CUDA): the varlen calls against the per-sequence loop (bench_cuda_varlen_attention).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

import unime
from timing import median_seconds, min_seconds

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from reference.rms_norm import rms_norm as rms_norm_reference  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    print(f"device {args.device}; torch {torch.__version__}; unime {unime.__version__}")
    print(f"{'rms_norm shape':<22}{'dtype':<10}{'unime GB/s':>12}{'reference GB/s':>16}{'ratio':>8}")
    shapes = [(4096, 4096), (16384, 4096), (8192, 1024)] if args.device == "cuda" else [(2048, 4096), (4096, 1024)]
    for shape in shapes:
        for dtype in (torch.bfloat16, torch.float32):
            x = torch.randn(shape, device=args.device, dtype=dtype)
            w = torch.randn(shape[-1], device=args.device, dtype=dtype)
            moved = 2 * x.numel() * x.element_size()
            with torch.inference_mode():
                t_ours = min_seconds(lambda: unime.ops.rms_norm(x, w, 1e-5), args.device)
                t_ref = min_seconds(lambda: rms_norm_reference(x, w, 1e-5), args.device)
            name = str(dtype).removeprefix("torch.")
            print(f"{str(shape):<22}{name:<10}{moved / t_ours / 1e9:>12.1f}{moved / t_ref / 1e9:>16.1f}"
                  f"{t_ref / t_ours:>8.2f}")
    print(f"{'activation, shape':<30}{'dtype':<10}{'unime GB/s':>12}{'unfused GB/s':>14}{'ratio':>8}")
    for name, shape, fused, unfused, inputs in [
        ("gated_silu", (4096, 3584), unime.ops.gated_silu, lambda g, u: torch.nn.functional.silu(g) * u, 2),
        ("quick_gelu", (4616, 2048), unime.ops.quick_gelu, lambda x: x * torch.sigmoid(1.702 * x), 1),
    ]:
        for dtype in (torch.bfloat16, torch.float32):
            args_ = [torch.randn(shape, device=args.device, dtype=dtype) * 3 for _ in range(inputs)]
            moved = (inputs + 1) * args_[0].numel() * args_[0].element_size()
            with torch.inference_mode():
                t_ours = min_seconds(lambda: fused(*args_), args.device)
                t_ref = min_seconds(lambda: unfused(*args_), args.device)
            label = f"{name} {shape}"
            print(f"{label:<30}{str(dtype).removeprefix('torch.'):<10}{moved / t_ours / 1e9:>12.1f}"
                  f"{moved / t_ref / 1e9:>14.1f}{t_ref / t_ours:>8.2f}")
    bench_attention(args.device)


def bench_attention(device: str) -> None:
    from unime import _C

    if device != "cpu":
        bench_cuda_varlen_attention(device)
        return
    bench_cpu_rotary()
    print(f"{'attention (bf16)':<44}{'unime TF/s':>12}{'torch TF/s':>12}{'ratio':>8}")
    for label, lengths, heads, kv_heads, dim, causal in [
        ("CLIP: 33 x 577, 8 heads, d 64", [577] * 33, 8, 8, 64, False),
        ("images: 2370/2900/1176, 8:2 heads, d 128", [2370, 2900, 1176], 8, 2, 128, True),
        ("texts: 24 x 120, causal", [120] * 24, 8, 2, 128, True),
    ]:
        T = sum(lengths)
        q = torch.randn(T, heads, dim).bfloat16()
        k, v = torch.randn(T, kv_heads, dim).bfloat16(), torch.randn(T, kv_heads, dim).bfloat16()
        flops = sum(4 * n * n * heads * dim * (0.5 if causal else 1) for n in lengths)
        times = []
        for enabled in (True, False):
            before = _C._use_cpu_bf16_attention(enabled)
            with torch.inference_mode():
                times.append(min_seconds(lambda: _C.nn.packed_attention(q, k, v, lengths, causal=causal), device,
                                         repeats=10))
            _C._use_cpu_bf16_attention(before)
        print(f"{label:<44}{flops / times[0] / 1e12:>12.3f}{flops / times[1] / 1e12:>12.3f}{times[1] / times[0]:>8.2f}")


def bench_cpu_rotary() -> None:
    """The fused CPU rotary (csrc/ops/cpu/rotary_cpu.cc) against the unfused expression
    (unime._C._use_cpu_rotary_kernel off), inference, on q views of a fused qkv projection."""
    from unime import _C

    print(f"{'rotary (CPU, 4096 tokens)':<44}{'fused ms':>12}{'unfused ms':>12}{'ratio':>8}")
    for label, heads, dim, dtype, in_fp32 in [
        ("decoder: 32 heads, d 128, bf16", 32, 128, torch.bfloat16, False),
        ("decoder: 32 heads, d 128, fp32", 32, 128, torch.float32, False),
        ("Qwen2-VL vision: 16 heads, d 80, bf16 in fp32", 16, 80, torch.bfloat16, True),
    ]:
        x = torch.randn(4096, 3, heads, dim).to(dtype)[:, 0]
        tables = torch.float32 if in_fp32 else dtype
        cos, sin = torch.randn(4096, 1, dim).to(tables), torch.randn(4096, 1, dim).to(tables)
        times = []
        for enabled in (True, False):
            before = _C._use_cpu_rotary_kernel(enabled)
            with torch.inference_mode():
                times.append(min_seconds(lambda: _C.nn.apply_rotary(x, cos, sin, in_fp32=in_fp32), "cpu", repeats=20))
            _C._use_cpu_rotary_kernel(before)
        print(f"{label:<44}{times[0] * 1e3:>12.2f}{times[1] * 1e3:>12.2f}{times[1] / times[0]:>8.2f}")


def bench_cuda_varlen_attention(device: str) -> None:
    """Packed attention on a GPU: one varlen call per layer (flash for bf16, the memory-efficient
    kernel for fp32) against one SDPA call per sequence (unime._C._use_cuda_varlen_attention off),
    on a training batch of texts and on a few long image sequences; forward, and forward + backward."""
    from unime import _C

    g = torch.Generator().manual_seed(0)
    texts = torch.randint(20, 200, (64,), generator=g).tolist()
    print(f"{'packed attention (32:8 heads, d 128)':<44}{'varlen ms':>12}{'loop ms':>12}{'ratio':>8}")
    for label, lengths in [("64 texts of 20-200 tokens", texts), ("images: 2370/2900/1176", [2370, 2900, 1176])]:
        T = sum(lengths)
        for dtype in (torch.float32, torch.bfloat16):
            for backward in (False, True):
                q = torch.randn(T, 32, 128, device=device, dtype=dtype, requires_grad=backward)
                k = torch.randn(T, 8, 128, device=device, dtype=dtype, requires_grad=backward)
                v = torch.randn(T, 8, 128, device=device, dtype=dtype, requires_grad=backward)
                grad = torch.randn(T, 32, 128, device=device, dtype=dtype)

                def step():
                    out = _C.nn.packed_attention(q, k, v, lengths, causal=True)
                    if backward:
                        out.backward(grad)

                times = []
                for enabled in (True, False):
                    before = _C._use_cuda_varlen_attention(enabled)
                    times.append(median_seconds(step, device, repeats=20))
                    _C._use_cuda_varlen_attention(before)
                what = f"{label}, {str(dtype).removeprefix('torch.')}{', fwd+bwd' if backward else ''}"
                print(f"{what:<44}{times[0] * 1e3:>12.2f}{times[1] * 1e3:>12.2f}{times[1] / times[0]:>8.2f}")


if __name__ == "__main__":
    main()
