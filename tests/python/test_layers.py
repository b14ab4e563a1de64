"""Model-layer building blocks against their plain references (tests/reference/attention.py): packed
attention (causal, sliding window, bidirectional block-diagonal, last-token queries) and rotary tables."""

import pytest
import torch
from reference.attention import packed_attention as attention_reference
from reference.attention import rotary_tables as rotary_reference
from tolerances import OP_TOL

from unime import _C

LENGTHS = [5, 1, 9, 3]  # odd lengths, a single-token sequence


def qkv(lengths, heads=6, kv_heads=2, dim=10, dtype=torch.float32, last_only=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = sum(lengths)
    q = torch.randn(len(lengths) if last_only else T, heads, dim, generator=g, dtype=torch.float64).to(dtype)
    k = torch.randn(T, kv_heads, dim, generator=g, dtype=torch.float64).to(dtype)
    v = torch.randn(T, kv_heads, dim, generator=g, dtype=torch.float64).to(dtype)
    return q, k, v


@pytest.mark.parametrize("causal,window", [(True, None), (True, 3), (False, None)],
                         ids=["causal", "causal-window3", "bidirectional"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_packed_attention_matches_reference(causal, window, dtype):
    q, k, v = qkv(LENGTHS, dtype=dtype)
    ours = _C.nn.packed_attention(q, k, v, LENGTHS, causal=causal, sliding_window=window)
    ref = attention_reference(q, k, v, LENGTHS, causal=causal, sliding_window=window)
    torch.testing.assert_close(ours, ref, **OP_TOL[dtype] if dtype == torch.float64 else dict(atol=1e-5, rtol=1e-5))


@pytest.mark.parametrize("window", [None, 2])
def test_last_token_queries_match_reference(window):
    q, k, v = qkv(LENGTHS, last_only=True)
    ours = _C.nn.packed_attention(q, k, v, LENGTHS, causal=True, sliding_window=window, last_only=True)
    ref = attention_reference(q, k, v, LENGTHS, causal=True, sliding_window=window, last_only=True)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_bidirectional_attention_never_crosses_sequences():
    """Changing one sequence's keys and values leaves every other sequence's output unchanged."""
    q, k, v = qkv(LENGTHS)
    base = _C.nn.packed_attention(q, k, v, LENGTHS, causal=False)
    k2, v2 = k.clone(), v.clone()
    k2[6:15] += 1.0  # the third sequence (tokens 6..14)
    v2[6:15] -= 2.0
    out = _C.nn.packed_attention(q, k2, v2, LENGTHS, causal=False)
    torch.testing.assert_close(out[:6], base[:6], atol=0, rtol=0)
    torch.testing.assert_close(out[15:], base[15:], atol=0, rtol=0)
    assert not torch.allclose(out[6:15], base[6:15])


def test_packed_attention_is_differentiable():
    q, k, v = (t.double().requires_grad_() for t in qkv([3, 4], heads=2, kv_heads=1, dim=4))
    for causal in (True, False):
        assert torch.autograd.gradcheck(lambda a, b, c: _C.nn.packed_attention(a, b, c, [3, 4], causal=causal),
                                        (q, k, v))


def test_packed_attention_argument_errors():
    q, k, v = qkv(LENGTHS)
    with pytest.raises(ValueError, match="packed tokens"):
        _C.nn.packed_attention(q, k, v, [5, 1, 9])
    with pytest.raises(ValueError, match="multiple of Hkv"):
        _C.nn.packed_attention(q[:, :5], k, v, LENGTHS)
    with pytest.raises(ValueError, match="last_only needs causal"):
        _C.nn.packed_attention(q[:4], k, v, LENGTHS, causal=False, last_only=True)
    with pytest.raises(ValueError, match="length 0"):
        _C.nn.packed_attention(q, k, v, [18, 0])


def test_rotary_tables_match_transformers_definition():
    positions = torch.tensor([[0, 1, 2, 7], [3, 3, 40, 1000]])
    cos, sin = _C.nn.rotary_tables(positions, head_dim=12, theta=1e6)
    ref_cos, ref_sin = rotary_reference(positions, 12, 1e6)
    torch.testing.assert_close(cos, ref_cos, atol=0, rtol=0)
    torch.testing.assert_close(sin, ref_sin, atol=0, rtol=0)
    # transformers' own module agrees too
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    rope = LlamaRotaryEmbedding(LlamaConfig(hidden_size=48, num_attention_heads=4, rope_theta=1e6))
    hf_cos, hf_sin = rope(torch.zeros(1, dtype=torch.float32), positions)
    torch.testing.assert_close(cos, hf_cos, atol=0, rtol=0)
    torch.testing.assert_close(sin, hf_sin, atol=0, rtol=0)


@pytest.mark.parametrize("block", [1, 3, 7, 0])
@pytest.mark.parametrize("window", [1, 4, 11])
def test_sliding_window_attention_in_query_blocks_equals_unblocked(block, window):
    """The sliding-window path runs in query blocks that each see their band of keys (memory linear in
    length): every block size gives the dense reference's result, at the blocks' edges too."""
    lengths = [40, 13, 1, 29]
    q, k, v = qkv(lengths, heads=4, kv_heads=2, dim=8, dtype=torch.float64, seed=3)
    ours = _C.nn.packed_attention(q, k, v, lengths, causal=True, sliding_window=window, query_block=block)
    ref = attention_reference(q, k, v, lengths, causal=True, sliding_window=window)
    torch.testing.assert_close(ours, ref, **OP_TOL[torch.float64])


def test_sliding_window_attention_is_differentiable_in_blocks():
    q, k, v = (t.double().requires_grad_() for t in qkv([9, 4], heads=2, kv_heads=1, dim=4))
    assert torch.autograd.gradcheck(
        lambda a, b, c: _C.nn.packed_attention(a, b, c, [9, 4], causal=True, sliding_window=3, query_block=2),
        (q, k, v))


def test_cuda_varlen_switch_returns_the_previous_setting_and_leaves_the_cpu_path_alone():
    """The process-wide switch that tests and benchmarks use to compare the CUDA varlen calls with the
    per-sequence loop (tests/python/test_attention_gpu.py); on the CPU, where the loop is the only path,
    results are bit-identical either way."""
    q, k, v = qkv(LENGTHS)
    base = _C.nn.packed_attention(q, k, v, LENGTHS)
    assert _C._use_cuda_varlen_attention(False) is True
    try:
        off = _C.nn.packed_attention(q, k, v, LENGTHS)
    finally:
        assert _C._use_cuda_varlen_attention(True) is False
    torch.testing.assert_close(off, base, atol=0, rtol=0)


def unfused_rotary(x, cos, sin):  # transformers' apply_rotary_pos_emb: x * cos + rotate_half(x) * sin
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


HAS_AVX512F = "avx512f" in open("/proc/cpuinfo").read()


@pytest.mark.skipif(not HAS_AVX512F, reason="the fused rotary needs AVX-512F; other CPUs run the unfused expression")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
@pytest.mark.parametrize("dim", [128, 96, 80, 40, 12, 2])  # half-widths on and off 16 lanes
def test_fused_rotary_is_bit_identical_to_the_unfused_expression(dtype, dim):
    """Inference on CPU takes one fused pass (ops/cpu/rotary_cpu.cc) that keeps every rounding of the
    unfused expression: bit-identical results on q/k views of a fused projection (strided heads and
    tokens), with tables from rotary_tables at large positions."""
    g = torch.Generator().manual_seed(dim)
    tokens, heads = 37, 5
    qkv = (torch.randn(tokens, 3 * heads * dim, generator=g) * 4).to(dtype)
    x = qkv.view(tokens, 3, heads, dim)[:, 1]  # (T, H, d) with token stride 3 H d
    cos, sin = _C.nn.rotary_tables(torch.randint(0, 100_000, (tokens,), generator=g), dim, 1e6, dtype=dtype)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    with torch.inference_mode():
        fused = _C.nn.apply_rotary(x, cos, sin)
        before = _C._use_cpu_rotary_kernel(False)
        try:
            unfused = _C.nn.apply_rotary(x, cos, sin)
        finally:
            _C._use_cpu_rotary_kernel(before)
    assert fused.dtype == dtype and fused.shape == x.shape
    assert torch.equal(fused, unfused_rotary(x, cos, sin))
    assert torch.equal(unfused, unfused_rotary(x, cos, sin))


@pytest.mark.skipif(not HAS_AVX512F, reason="the fused rotary needs AVX-512F; other CPUs run the unfused expression")
@pytest.mark.parametrize("dim", [80, 40])
def test_fused_rotary_in_fp32_matches_the_vision_towers_cast(dim):
    """Qwen2-VL's vision rotary: bf16 q/k converted to fp32, rotated with fp32 tables, cast back; the
    fused pass rounds once at the end, as the cast does."""
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(29, 3, 4, dim, generator=g) * 3).bfloat16()[:, 0]
    angles = torch.rand(29, dim // 2, generator=g) * 200
    emb = torch.cat([angles, angles], -1).unsqueeze(1)
    cos, sin = emb.cos(), emb.sin()
    with torch.inference_mode():
        fused = _C.nn.apply_rotary(x, cos, sin, in_fp32=True)
    assert fused.dtype == torch.bfloat16
    assert torch.equal(fused, unfused_rotary(x.float(), cos, sin).bfloat16())


def test_rotary_with_gradients_takes_the_unfused_differentiable_path():
    x = torch.randn(6, 2, 8, dtype=torch.float64, requires_grad=True)
    cos, sin = (t.double().unsqueeze(1) for t in _C.nn.rotary_tables(torch.arange(6), 8, 1e4))
    assert torch.autograd.gradcheck(lambda a: _C.nn.apply_rotary(a, cos, sin), (x,))
    xf = x.detach().float().requires_grad_()
    out = _C.nn.apply_rotary(xf, cos.float(), sin.float())
    assert out.grad_fn is not None
    out.sum().backward()
    assert xf.grad is not None
