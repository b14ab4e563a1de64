"""The CPU bf16 attention kernel (csrc/ops/cpu/attention_cpu.cc) against a float64 reference of the
same bf16 inputs, with torch's own bf16 kernel (SDPA's CPU flash kernel, switched in with
_C._use_cpu_bf16_attention(False)) as the yardstick for the error; and in a model: LLaVA-NeXT
embeddings with either kernel."""

from contextlib import contextmanager

import pytest
import torch
from reference.attention import packed_attention as attention_reference
from tiny_models import save_tiny_llava_next_pipeline
from tokenizer_assets import tokenizer_json

import unime
from unime import _C

HAS_AVX512_BF16 = "avx512_bf16" in open("/proc/cpuinfo").read()
pytestmark = pytest.mark.skipif(not HAS_AVX512_BF16, reason="this CPU has no AVX512-BF16, where torch's kernel runs")

# Lengths around the kernel's 48-query blocks and 64-key tiles; a single-token sequence.
LENGTHS = [1, 7, 48, 49, 64, 130, 301]


@contextmanager
def cpu_kernel(enabled: bool):
    before = _C._use_cpu_bf16_attention(enabled)
    try:
        yield
    finally:
        _C._use_cpu_bf16_attention(before)


def qkv(lengths, heads, kv_heads, dim, last_only=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = sum(lengths)
    q = torch.randn(len(lengths) if last_only else T, heads, dim, generator=g, dtype=torch.float64) * 2
    k = torch.randn(T, kv_heads, dim, generator=g, dtype=torch.float64) * 2
    v = torch.randn(T, kv_heads, dim, generator=g, dtype=torch.float64)
    return q.bfloat16(), k.bfloat16(), v.bfloat16()


def errors(out, ref):
    d = (out.double() - ref).abs()
    return d.max().item(), d.mean().item()


@pytest.mark.parametrize("causal,last_only", [(True, False), (False, False), (True, True)],
                         ids=["causal", "bidirectional", "last-token"])
@pytest.mark.parametrize("heads,kv_heads,dim", [(8, 2, 128), (8, 8, 64), (4, 2, 80), (3, 1, 10)])
def test_matches_float64_as_closely_as_torchs_kernel(causal, last_only, heads, kv_heads, dim):
    q, k, v = qkv(LENGTHS, heads, kv_heads, dim, last_only)
    ref = attention_reference(q.double(), k.double(), v.double(), LENGTHS, causal=causal, last_only=last_only)
    with cpu_kernel(True):
        ours = _C.nn.packed_attention(q, k, v, LENGTHS, causal=causal, last_only=last_only)
    with cpu_kernel(False):
        torchs = _C.nn.packed_attention(q, k, v, LENGTHS, causal=causal, last_only=last_only)
    assert ours.dtype == torch.bfloat16 and ours.shape == ref.shape
    assert not torch.equal(ours, torchs)  # the switch does select another kernel
    (ours_max, ours_mean), (torch_max, torch_mean) = errors(ours, ref), errors(torchs, ref)
    print(f"max / mean abs error: unime {ours_max:.2e} / {ours_mean:.2e}, torch {torch_max:.2e} / {torch_mean:.2e}")
    # Both round the probabilities to bf16 before P V and the output to bf16: the same error budget.
    assert ours_max <= 1.5 * torch_max + 1e-3 and ours_mean <= 1.5 * torch_mean + 1e-5


def test_never_crosses_sequences_and_handles_strided_inputs():
    q, k, v = qkv([5, 40, 9], 4, 2, 64)
    base = _C.nn.packed_attention(q, k, v, [5, 40, 9], causal=False)
    k2, v2 = k.clone(), v.clone()
    k2[5:45] += 1.0
    v2[5:45] -= 2.0
    out = _C.nn.packed_attention(q, k2, v2, [5, 40, 9], causal=False)
    assert torch.equal(out[:5], base[:5]) and torch.equal(out[45:], base[45:])
    wide = torch.zeros(q.shape[0], 4, 96, dtype=torch.bfloat16)  # heads and tokens strided, as a split projection
    wide[..., 16:80] = q
    assert torch.equal(_C.nn.packed_attention(wide[..., 16:80], k, v, [5, 40, 9], causal=False), base)


def test_gradients_still_flow_through_torchs_kernel():
    q, k, v = (t.float().requires_grad_() for t in qkv([6, 3], 2, 1, 8))
    out = _C.nn.packed_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), [6, 3], causal=True)
    out.float().sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_llava_next_embeddings_agree_with_torchs_kernel(tmp_path):
    import numpy as np

    save_tiny_llava_next_pipeline(str(tmp_path), tokenizer_json("mistral_legacy"))
    model = unime.Model.from_pretrained(str(tmp_path), dtype=torch.bfloat16)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(40, 90), (60, 30), (28, 28)]]
    texts = ["a red dog runs over the river", None, "a small house"]
    with cpu_kernel(True):
        ours = model.encode(texts, images, show_progress=False).float()
    with cpu_kernel(False):
        torchs = model.encode(texts, images, show_progress=False).float()
    cos = torch.nn.functional.cosine_similarity(ours, torchs, dim=-1)
    print("cosine per input:", cos.tolist())
    assert cos.min().item() > 0.999
