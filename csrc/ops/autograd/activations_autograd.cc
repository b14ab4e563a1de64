// Autograd for the fused activations, so that training (Python or the C++ trainer) runs the fused
// forward too. Gradients are computed in fp32 (fp64 for double) from the saved inputs, treating the
// forward's intermediate roundings as identity (straight-through), as autograd of the unfused
// expression effectively does.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "ops/ops.h"

namespace unime::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::ScalarType compute_type(const at::Tensor& t) { return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

class GatedSiluFunction : public torch::autograd::Function<GatedSiluFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& gate, const at::Tensor& up) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({gate, up});
    return gated_silu(gate, up);
  }

  // y = g s(g) u with s the sigmoid: dy/du = g s(g), dy/dg = u s(g) (1 + g (1 - s(g))).
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const auto ct = compute_type(saved[0]);
    auto g = saved[0].to(ct), u = saved[1].to(ct), dy = grad_outputs[0].to(ct);
    auto s = at::sigmoid(g);
    at::Tensor d_gate, d_up;
    if (ctx->needs_input_grad(0)) d_gate = (dy * u * s * (1 + g * (1 - s))).to(saved[0].scalar_type());
    if (ctx->needs_input_grad(1)) d_up = (dy * g * s).to(saved[1].scalar_type());
    return {d_gate, d_up};
  }
};

class QuickGeluFunction : public torch::autograd::Function<QuickGeluFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({x});
    return quick_gelu(x);
  }

  // y = x s(a x): dy/dx = s(a x) + a x s(a x) (1 - s(a x)).
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto x_saved = ctx->get_saved_variables()[0];
    auto x = x_saved.to(compute_type(x_saved)), dy = grad_outputs[0].to(x.scalar_type());
    auto s = at::sigmoid(kQuickGeluAlpha * x);
    return {(dy * (s + kQuickGeluAlpha * x * s * (1 - s))).to(x_saved.scalar_type())};
  }
};

at::Tensor gated_silu_autograd(const at::Tensor& gate, const at::Tensor& up) {
  return GatedSiluFunction::apply(gate, up);
}

at::Tensor quick_gelu_autograd(const at::Tensor& x) { return QuickGeluFunction::apply(x); }

}  // namespace

TORCH_LIBRARY_IMPL(unime, Autograd, m) {
  m.impl("gated_silu", &gated_silu_autograd);
  m.impl("quick_gelu", &quick_gelu_autograd);
}

}  // namespace unime::ops
