// lora_linear as plain ATen maths for every device (CompositeImplicitAutograd): autograd, Meta and
// torch.compile come from the ops it calls. The base weight is usually frozen; only the adapter's
// two small matmuls add work.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/ops.h"

namespace unime::ops {
namespace {

at::Tensor lora_linear_composite(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                 const at::Tensor& lora_a, const at::Tensor& lora_b, double scaling,
                                 const std::optional<at::Tensor>& lora_x) {
  TORCH_CHECK_VALUE(lora_a.dim() == 2 && lora_b.dim() == 2 && lora_a.size(1) == weight.size(1) &&
                        lora_b.size(0) == weight.size(0) && lora_b.size(1) == lora_a.size(0),
                    "lora_linear: expected lora_a (r, ", weight.size(1), ") and lora_b (", weight.size(0),
                    ", r) for weight ", weight.sizes(), ", got lora_a ", lora_a.sizes(), " and lora_b ",
                    lora_b.sizes());
  auto base = at::linear(x, weight, bias);
  const auto& xa = lora_x.has_value() && lora_x->defined() ? *lora_x : x.to(lora_a.scalar_type());
  TORCH_CHECK_VALUE(xa.sizes() == x.sizes(), "lora_linear: lora_x must have x's shape ", x.sizes(), ", got ",
                    xa.sizes());
  auto delta = at::linear(at::linear(xa, lora_a), lora_b).mul(scaling);
  return base.add(delta.to(base.scalar_type()));
}

}  // namespace

TORCH_LIBRARY_IMPL(unime, CompositeImplicitAutograd, m) { m.impl("lora_linear", &lora_linear_composite); }

}  // namespace unime::ops
