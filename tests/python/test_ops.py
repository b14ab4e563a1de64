"""Registered ops against their plain-PyTorch references: values, gradients, opcheck, CUDA."""

import pytest
import torch
from reference.rms_norm import rms_norm as rms_norm_reference

import unime
from unime import ops

# Tolerances per dtype for op-vs-reference comparisons (the kernel may reduce in another order).
TOL = {
    torch.float64: dict(atol=1e-12, rtol=1e-12),
    torch.float32: dict(atol=1e-6, rtol=1e-6),
    torch.bfloat16: dict(atol=1e-2, rtol=1.6e-2),
    torch.float16: dict(atol=1e-3, rtol=1e-3),
}

SHAPES = [(1, 1), (3, 33), (2, 5, 64), (7, 1023), (2, 3, 4097)]


def devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("shape", SHAPES)
def test_rms_norm_matches_reference(device, dtype, shape):
    x = torch.randn(shape, dtype=dtype, device=device) * 3
    w = torch.randn(shape[-1], dtype=dtype, device=device)
    torch.testing.assert_close(ops.rms_norm(x, w, 1e-5), rms_norm_reference(x, w, 1e-5), **TOL[dtype])


@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("shape", SHAPES)
def test_rms_norm_without_avx512_matches_reference(dtype, shape):
    """The loop an AVX-512 CPU never runs for bf16, reached by switching the AVX-512 paths off."""
    x = torch.randn(shape, dtype=dtype) * 3
    w = torch.randn(shape[-1], dtype=dtype)
    previous = unime._C._use_avx512_kernels(False)
    try:
        torch.testing.assert_close(ops.rms_norm(x, w, 1e-5), rms_norm_reference(x, w, 1e-5), **TOL[dtype])
    finally:
        unime._C._use_avx512_kernels(previous)


@pytest.mark.parametrize("device", devices())
def test_rms_norm_strided_input(device):
    base = torch.randn(6, 40, device=device)
    x = base[::2, 3:36]  # non-contiguous rows and an odd width
    w = torch.randn(33, device=device)
    torch.testing.assert_close(ops.rms_norm(x, w, 1e-6), rms_norm_reference(x, w, 1e-6), **TOL[torch.float32])


@pytest.mark.parametrize("device", devices())
def test_rms_norm_gradcheck(device):
    x = torch.randn(3, 7, dtype=torch.float64, device=device, requires_grad=True)
    w = torch.randn(7, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: ops.rms_norm(a, b, 1e-5), (x, w))


@pytest.mark.parametrize("device", devices())
def test_rms_norm_gradients_match_reference(device):
    x = torch.randn(4, 9, 31, device=device, requires_grad=True)
    w = torch.randn(31, device=device, requires_grad=True)
    g = torch.randn(4, 9, 31, device=device)
    ours = torch.autograd.grad(ops.rms_norm(x, w, 1e-5), (x, w), g)
    ref = torch.autograd.grad(rms_norm_reference(x, w, 1e-5), (x, w), g)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("device", devices())
def test_rms_norm_opcheck(device):
    x = torch.randn(3, 17, device=device, requires_grad=True)
    w = torch.randn(17, device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.unime.rms_norm.default, (x, w, 1e-5))


def test_rms_norm_argument_errors():
    x = torch.randn(2, 8)
    with pytest.raises(ValueError, match="weight must have shape \\(8,\\)"):
        ops.rms_norm(x, torch.randn(7), 1e-5)
    with pytest.raises(ValueError, match="dtype"):
        ops.rms_norm(x, torch.randn(8, dtype=torch.float64), 1e-5)
    with pytest.raises(ValueError, match="floating point"):
        ops.rms_norm(torch.ones(2, 8, dtype=torch.long), torch.ones(8, dtype=torch.long), 1e-5)


def test_built_with_cuda_flag_is_reported():
    assert isinstance(unime._C.__with_cuda__, bool)


@pytest.mark.gpu
def test_cuda_kernel_is_registered():
    assert unime._C.__with_cuda__, "this build has no CUDA kernels (built without nvcc?)"
    x = torch.randn(4, 4096, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(4096, device="cuda", dtype=torch.bfloat16)
    torch.testing.assert_close(ops.rms_norm(x, w, 1e-5), rms_norm_reference(x, w, 1e-5), **TOL[torch.bfloat16])
