"""The fused activations (unime.ops.gated_silu, unime.ops.quick_gelu) against the unfused PyTorch
expressions they replace in the models: values per dtype (reduced precision rounds each step as the
unfused expression does), strided and broadcast inputs, NaN, gradients, opcheck, errors; and that the
CPU kernels run on torch's threads."""

import pytest
import torch
import torch.nn.functional as F

import unime
from unime import ops

TOL = {
    torch.float64: dict(atol=1e-12, rtol=1e-12),
    torch.float32: dict(atol=1e-6, rtol=1e-6),
    torch.bfloat16: dict(atol=1e-30, rtol=2**-7),  # at most one unit in the last place
    torch.float16: dict(atol=1e-30, rtol=2**-10),
}
SHAPES = [(1,), (3, 33), (2, 5, 64), (7, 1023), (0, 16), ()]


def unfused_gated_silu(gate, up):
    return F.silu(gate) * up  # decoder MLP (Llama, Mistral, Phi-3, Qwen2)


def unfused_quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)  # transformers' QuickGELUActivation (CLIP, Qwen2-VL vision)


@pytest.fixture(autouse=True, params=["native", "without AVX-512"])
def cpu_kernels(request):
    """Every test twice: with the CPU's own best kernels, and with the AVX-512 paths switched off, so
    that an AVX-512 machine runs the AVX2 (fp32) and fallback paths too."""
    previous = unime._C._use_avx512_kernels(request.param == "native")
    yield request.param
    unime._C._use_avx512_kernels(previous)


def devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def assert_matches(ours, ref, dtype):
    assert ours.dtype == ref.dtype and ours.shape == ref.shape and ours.is_contiguous()
    torch.testing.assert_close(ours, ref, **TOL[dtype])
    if dtype in (torch.bfloat16, torch.float16) and ref.numel() >= 1000:
        # The intermediate roundings are those of the unfused expression: almost every value is
        # bit-identical (only exp's last bit can move a rounding).
        assert (ours == ref).float().mean().item() > 0.99


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("shape", SHAPES)
def test_gated_silu_matches_unfused(device, dtype, shape):
    gate = (torch.randn(shape, device=device) * 4).to(dtype)
    up = torch.randn(shape, device=device).to(dtype)
    assert_matches(ops.gated_silu(gate, up), unfused_gated_silu(gate, up), dtype)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", list(TOL))
@pytest.mark.parametrize("shape", SHAPES)
def test_quick_gelu_matches_unfused(device, dtype, shape):
    x = (torch.randn(shape, device=device) * 4).to(dtype)
    assert_matches(ops.quick_gelu(x), unfused_quick_gelu(x), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_strided_and_broadcast_inputs(dtype):
    # The decoder's fused gate_up projection hands over both halves of one tensor (row stride 2h);
    # a transposed or broadcast input goes through a copy or a zero row stride.
    gu = (torch.randn(3, 17, 2 * 45) * 3).to(dtype)
    gate, up = gu[..., :45], gu[..., 45:]
    assert_matches(ops.gated_silu(gate, up), unfused_gated_silu(gate, up), dtype)
    x = (torch.randn(40, 24) * 3).to(dtype).t()
    assert_matches(ops.quick_gelu(x), unfused_quick_gelu(x), dtype)
    row = torch.randn(1, 50).to(dtype).expand(6, 50)
    g = (torch.randn(6, 50) * 3).to(dtype)
    assert_matches(ops.gated_silu(g, row), unfused_gated_silu(g, row), dtype)
    assert_matches(ops.quick_gelu(x[::3, 1:]), unfused_quick_gelu(x[::3, 1:]), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_large_and_special_values(dtype):
    x = torch.tensor([float("nan"), 0.0, -0.0, 1e-3, -1e-3, 30.0, -30.0, 100.0, -100.0, 1e4, -1e4] * 3, dtype=dtype)
    ours, ref = ops.quick_gelu(x), unfused_quick_gelu(x)
    assert torch.isnan(ours[0]) and torch.isnan(ops.gated_silu(x, x)[0])
    torch.testing.assert_close(ours, ref, equal_nan=True, **TOL[dtype])
    up = torch.full_like(x, 0.5)
    torch.testing.assert_close(ops.gated_silu(x, up), unfused_gated_silu(x, up), equal_nan=True, **TOL[dtype])


def test_same_result_on_one_and_two_threads():
    gate, up = torch.randn(300, 700).bfloat16(), torch.randn(300, 700).bfloat16()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ops.gated_silu(gate, up), ops.quick_gelu(gate)
        torch.set_num_threads(2)
        two = ops.gated_silu(gate, up), ops.quick_gelu(gate)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="needs torch to have 2 or more threads")
def test_cpu_kernels_run_on_torchs_threads():
    # at::parallel_for is an inline OpenMP pragma: a build without -fopenmp runs every kernel on one thread.
    assert unime._C._parallel_for_threads() >= 2


@pytest.mark.parametrize("device", devices())
def test_gradcheck(device):
    gate = torch.randn(3, 7, dtype=torch.float64, device=device, requires_grad=True)
    up = torch.randn(3, 7, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(ops.gated_silu, (gate, up))
    assert torch.autograd.gradcheck(ops.quick_gelu, (gate,))


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gradients_match_unfused(device, dtype):
    gate = (torch.randn(4, 9, 31, device=device) * 3).to(dtype).requires_grad_()
    up = torch.randn(4, 9, 31, device=device).to(dtype).requires_grad_()
    g = torch.randn(4, 9, 31, device=device).to(dtype)
    tol = TOL[torch.float32] if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
    for a, b in zip(torch.autograd.grad(ops.gated_silu(gate, up), (gate, up), g),
                    torch.autograd.grad(unfused_gated_silu(gate, up), (gate, up), g)):
        torch.testing.assert_close(a, b, **tol)
    (a,) = torch.autograd.grad(ops.quick_gelu(gate), (gate,), g)
    (b,) = torch.autograd.grad(unfused_quick_gelu(gate), (gate,), g)
    torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("device", devices())
def test_opcheck(device):
    gate = torch.randn(3, 17, device=device, requires_grad=True)
    up = torch.randn(3, 17, device=device, requires_grad=True)
    torch.library.opcheck(torch.ops.unime.gated_silu.default, (gate, up))
    torch.library.opcheck(torch.ops.unime.quick_gelu.default, (gate,))


def test_argument_errors():
    x = torch.randn(2, 8)
    with pytest.raises(ValueError, match="gated_silu: gate and up must have the same shape"):
        ops.gated_silu(x, torch.randn(2, 7))
    with pytest.raises(ValueError, match="gated_silu: gate is Float but up is Double"):
        ops.gated_silu(x, x.double())
    with pytest.raises(ValueError, match="gated_silu: gate must be floating point"):
        ops.gated_silu(torch.ones(2, dtype=torch.long), torch.ones(2, dtype=torch.long))
    with pytest.raises(ValueError, match="quick_gelu: x must be floating point"):
        ops.quick_gelu(torch.ones(2, dtype=torch.int32))


def test_fp32_kernels_over_exps_whole_range():
    """The fp32 kernels' exp (AVX-512's scalef; AVX2's two power-of-two factors) within a few ulp of
    ATen's wherever e^-x neither saturates nor vanishes: relative error only (every value there is a
    normal float), so 2^n is checked up to n = 128 (x = -88.5); then tiny or saturated values beyond."""
    x = torch.linspace(-87.0, 87.0, 200_001)
    torch.testing.assert_close(ops.quick_gelu(x / 1.702), unfused_quick_gelu(x / 1.702), atol=0, rtol=2e-6)
    up = torch.linspace(-2.0, 2.0, x.numel())
    torch.testing.assert_close(ops.gated_silu(x, up), unfused_gated_silu(x, up), atol=0, rtol=2e-6)
    edge = torch.tensor([-88.5, -88.0, -87.9])  # e^88.5 = 2.7e38: n = 128, the largest the clamp allows
    torch.testing.assert_close(ops.gated_silu(edge, torch.ones_like(edge)), F.silu(edge), atol=0, rtol=2e-6)
    far = torch.tensor([-200.0, -104.0, -100.0, -90.0, 88.5, 90.0, 100.0, 200.0, float("inf"), -float("inf")])
    torch.testing.assert_close(ops.gated_silu(far, torch.ones_like(far)), F.silu(far), atol=1e-30, rtol=2e-6,
                               equal_nan=True)  # silu(-inf) is NaN in ATen too
