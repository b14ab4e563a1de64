// Autograd for unime::rms_norm, registered in C++ so that Python and the C++ trainer both get
// gradients from every backend kernel (CPU, CUDA).
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "ops/ops.h"

namespace unime::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, double eps) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({x, weight});
    ctx->saved_data["eps"] = eps;
    return rms_norm(x, weight, eps);
  }

  // With n = x * r, r = rsqrt(mean(x^2) + eps) (in fp32) and y = w * n:
  //   dw = sum over rows of g * n
  //   dx = r * (g*w - n * mean(g*w * n, -1))
  // The cast of n to x's dtype in the forward is treated as identity (straight-through).
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const auto& x = saved[0];
    const auto& weight = saved[1];
    double eps = ctx->saved_data["eps"].toDouble();
    auto compute = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    auto xf = x.to(compute);
    auto g = grad_outputs[0].to(compute);
    auto r = at::rsqrt(xf.pow(2).mean(-1, true) + eps);
    auto n = xf * r;
    at::Tensor grad_x, grad_w;
    if (ctx->needs_input_grad(0)) {
      auto gw = g * weight.to(compute);
      grad_x = (r * (gw - n * (gw * n).mean(-1, true))).to(x.scalar_type());
    }
    if (ctx->needs_input_grad(1)) {
      grad_w = (g * n.to(x.scalar_type()).to(compute)).reshape({-1, x.size(-1)}).sum(0).to(weight.scalar_type());
    }
    return {grad_x, grad_w, at::Tensor()};
  }
};

at::Tensor rms_norm_autograd(const at::Tensor& x, const at::Tensor& weight, double eps) {
  return RmsNormFunction::apply(x, weight, eps);
}

}  // namespace

TORCH_LIBRARY_IMPL(unime, Autograd, m) { m.impl("rms_norm", &rms_norm_autograd); }

}  // namespace unime::ops
