#include "model/activation_checkpoint.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/autograd.h>

namespace unime::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Fn = std::function<at::Tensor(const at::Tensor&)>;

struct SavedRng {
  at::Device device{at::kCPU};
  at::Tensor cpu_state, device_state;
};

SavedRng save_rng(const at::Tensor& x) {
  SavedRng s;
  s.device = x.device();
  s.cpu_state = at::globalContext().defaultGenerator(at::kCPU).get_state();
  if (!x.is_cpu()) s.device_state = at::globalContext().defaultGenerator(x.device()).get_state();
  return s;
}

// Runs f with the generators set to `s`, then puts back the states they had.
at::Tensor with_rng(const SavedRng& s, const Fn& f, const at::Tensor& x) {
  at::Generator cpu_gen = at::globalContext().defaultGenerator(at::kCPU);
  auto cpu_now = cpu_gen.get_state();
  cpu_gen.set_state(s.cpu_state);
  at::Tensor device_now;
  if (s.device_state.defined()) {
    at::Generator g = at::globalContext().defaultGenerator(s.device);
    device_now = g.get_state();
    g.set_state(s.device_state);
  }
  auto out = f(x);
  cpu_gen.set_state(cpu_now);
  if (device_now.defined()) {
    at::Generator g = at::globalContext().defaultGenerator(s.device);
    g.set_state(device_now);
  }
  return out;
}

// What the backward needs beyond the input: the block and the RNG state it ran with.
struct Saved : torch::CustomClassHolder {
  Fn fn;
  SavedRng rng;
};

class CheckpointFunction : public torch::autograd::Function<CheckpointFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const Fn& fn) {
    auto saved = c10::make_intrusive<Saved>();
    saved->fn = fn;
    saved->rng = save_rng(x);
    ctx->saved_data["saved"] = c10::IValue::make_capsule(saved);
    ctx->save_for_backward({x});
    at::NoGradGuard no_grad;
    return fn(x);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = c10::static_intrusive_pointer_cast<Saved>(ctx->saved_data["saved"].toCapsule());
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    at::Tensor out;
    {
      at::AutoGradMode grad(true);
      out = with_rng(saved->rng, saved->fn, x);
    }
    // Reentrant backward through the recomputed block: accumulates the parameters' .grad.
    torch::autograd::backward({out}, {grad_outputs[0]});
    return {x.grad(), at::Tensor()};
  }
};

}  // namespace

at::Tensor checkpointed(const Fn& fn, const at::Tensor& x) {
  if (!at::GradMode::is_enabled() || !x.requires_grad()) return fn(x);
  return CheckpointFunction::apply(x, fn);
}

}  // namespace unime::model
