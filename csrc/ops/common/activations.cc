// The fused activations' device-generic parts: argument checks, and the reference maths in ATen ops,
// registered as the kernel for every backend without its own (CUDA, Meta). Each step rounds to the
// input dtype, as the unfused PyTorch expressions they replace do, so a reduced-precision model gives
// the same values fused or not.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/ops.h"

namespace unime::ops {

void check_gated_silu_args(const at::Tensor& gate, const at::Tensor& up) {
  TORCH_CHECK_VALUE(at::isFloatingType(gate.scalar_type()), "unime.gated_silu: gate must be floating point, got ",
                    gate.scalar_type());
  TORCH_CHECK_VALUE(gate.sizes() == up.sizes(), "unime.gated_silu: gate and up must have the same shape, got ",
                    gate.sizes(), " and ", up.sizes());
  TORCH_CHECK_VALUE(gate.scalar_type() == up.scalar_type(), "unime.gated_silu: gate is ", gate.scalar_type(),
                    " but up is ", up.scalar_type());
  TORCH_CHECK_VALUE(gate.device() == up.device(), "unime.gated_silu: gate is on ", gate.device(), " but up is on ",
                    up.device());
}

void check_quick_gelu_args(const at::Tensor& x) {
  TORCH_CHECK_VALUE(at::isFloatingType(x.scalar_type()), "unime.quick_gelu: x must be floating point, got ",
                    x.scalar_type());
}

at::Tensor gated_silu_reference(const at::Tensor& gate, const at::Tensor& up) {
  check_gated_silu_args(gate, up);
  return at::silu(gate) * up;
}

at::Tensor quick_gelu_reference(const at::Tensor& x) {
  check_quick_gelu_args(x);
  return x * at::sigmoid(kQuickGeluAlpha * x);
}

TORCH_LIBRARY_IMPL(unime, CompositeExplicitAutograd, m) {
  m.impl("gated_silu", &gated_silu_reference);
  m.impl("quick_gelu", &quick_gelu_reference);
}

}  // namespace unime::ops
