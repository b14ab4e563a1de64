"""Packed attention on CUDA: the varlen calls (flash attention for fp16/bf16, the memory-efficient
kernel for fp32) against the per-sequence loop on the same device
(switched with unime._C._use_cuda_varlen_attention) and against the float64 reference
(tests/reference/attention.py), forward and backward. Run where a GPU is present."""

from contextlib import contextmanager

import pytest
import torch
from reference.attention import packed_attention as attention_reference

from unime import _C

pytestmark = pytest.mark.gpu

LENGTHS = [37, 1, 64, 5, 120]  # a single-token sequence, lengths on and off the kernels' tiles


@contextmanager
def cuda_varlen(enabled: bool):
    before = _C._use_cuda_varlen_attention(enabled)
    try:
        yield
    finally:
        _C._use_cuda_varlen_attention(before)


def qkv(lengths, dtype, heads=8, kv_heads=2, dim=64, last_only=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    T = sum(lengths)
    shapes = [(len(lengths) if last_only else T, heads, dim), (T, kv_heads, dim), (T, kv_heads, dim)]
    return [torch.randn(s, generator=g, dtype=torch.float64).to(dtype).cuda() for s in shapes]


def max_error(out, ref):
    return (out.double().cpu() - ref.double()).abs().max().item()


CASES = [  # causal, sliding window, last_only
    (True, None, False), (False, None, False), (True, None, True),
    (True, 500, False),  # a window longer than every sequence: the varlen call
    (True, 7, False), (True, 7, True),  # a window that cuts: the loop, in query blocks
]


@pytest.mark.parametrize("causal,window,last_only", CASES,
                         ids=["causal", "bidirectional", "last-only", "long-window", "window", "window-last-only"])
@pytest.mark.parametrize("dtype,dim", [(torch.float32, 64), (torch.float32, 80), (torch.bfloat16, 64),
                                       (torch.float16, 64), (torch.float32, 12), (torch.float16, 12)],
                         ids=["fp32", "fp32-d80", "bf16", "fp16", "fp32-d12", "fp16-d12"])  # d12: the loop
def test_cuda_packed_attention_matches_the_loop_and_the_reference(causal, window, last_only, dtype, dim):
    q, k, v = qkv(LENGTHS, dtype, dim=dim, last_only=last_only)
    call = dict(lengths=LENGTHS, causal=causal, sliding_window=window, last_only=last_only)
    ours = _C.nn.packed_attention(q, k, v, **call)
    with cuda_varlen(False):
        loop = _C.nn.packed_attention(q, k, v, **call)
    ref = attention_reference(q.cpu().double(), k.cpu().double(), v.cpu().double(), LENGTHS, causal=causal,
                              sliding_window=window, last_only=last_only)
    assert ours.shape == ref.shape and ours.dtype == dtype and ours.is_cuda
    if dtype == torch.float32:
        assert max_error(ours, ref) < 2e-5
        assert max_error(loop, ref) < 2e-5
    else:  # half precision: as close to the exact result as the loop is, with the inputs' rounding
        assert max_error(ours, ref) <= 2 * max_error(loop, ref) + 2e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
def test_cuda_packed_attention_gradients_match_the_loop(dtype, causal):
    q, k, v = qkv(LENGTHS, dtype)
    grad_out = torch.randn(q.shape, generator=torch.Generator().manual_seed(1)).to(dtype).cuda()

    def grads():
        leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
        out = _C.nn.packed_attention(*leaves, LENGTHS, causal=causal)
        out.backward(grad_out)
        return [t.grad for t in leaves]

    ours = grads()
    with cuda_varlen(False):
        loop = grads()
    leaves = [t.detach().cpu().double().requires_grad_() for t in (q, k, v)]
    attention_reference(*leaves, LENGTHS, causal=causal).backward(grad_out.cpu().double())
    for name, a, b, r in zip("qkv", ours, loop, leaves):
        if dtype == torch.float32:
            assert max_error(a, r.grad) < 1e-4, name
        else:
            assert max_error(a, r.grad) <= 2 * max_error(b, r.grad) + 2e-2, name


def test_cuda_packed_attention_without_log_sum_exp_in_inference():
    """Inference (what encode() runs) skips the log-sum-exp that a backward needs; the output is the one
    computed with it."""
    q, k, v = qkv(LENGTHS, torch.float32)
    with torch.inference_mode():
        inference = _C.nn.packed_attention(q, k, v, LENGTHS)
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    training = _C.nn.packed_attention(*leaves, LENGTHS)
    assert training.grad_fn is not None
    torch.testing.assert_close(inference, training.detach(), atol=0, rtol=0)
