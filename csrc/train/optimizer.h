// AdamW with decoupled weight decay, the update of torch.optim.AdamW (single-tensor form, same order
// of operations, so a run matches a PyTorch reference to float rounding), over named parameters so
// that its state checkpoints as plain tensors; the learning-rate schedule; gradient clipping.
#pragma once

#include <ATen/core/Tensor.h>
#include <map>
#include <string>
#include <vector>

namespace unime::train {

struct AdamWOptions {
  double lr = 1e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

class AdamW {
 public:
  // params: (name, tensor) with requires_grad; the order is the update order.
  AdamW(std::vector<std::pair<std::string, at::Tensor>> params, AdamWOptions options);

  // One update with learning rate `lr` for every parameter that has a gradient:
  //   p *= 1 - lr * wd;  m = lerp(m, g, 1 - b1);  v = b2 v + (1 - b2) g^2
  //   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
  void step(double lr);
  void zero_grad();  // sets every gradient to undefined
  int64_t steps() const { return step_; }

  // State as named tensors: "<param>.exp_avg", "<param>.exp_avg_sq" (CPU copies) and the step count.
  std::vector<std::pair<std::string, at::Tensor>> state() const;
  // Restores state(); InvalidInputError naming a missing or mis-shaped entry.
  void load_state(const std::map<std::string, at::Tensor>& state, int64_t step);
  const std::vector<std::pair<std::string, at::Tensor>>& params() const { return params_; }

 private:
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<at::Tensor> exp_avg_, exp_avg_sq_;
  AdamWOptions options_;
  int64_t step_ = 0;
};

// The learning rate at optimiser step `step` (0-based), as transformers' schedulers through
// LambdaLR: warmup linear from 0 over `warmup` steps, then "linear" decay to 0 at `total`,
// "cosine" (half a period to 0 at `total`) or "constant".
double scheduled_lr(double base_lr, const std::string& schedule, int64_t step, int64_t warmup, int64_t total);

// torch.nn.utils.clip_grad_norm_: total 2-norm over every gradient (the norm of the per-tensor
// norms), then grads *= min(1, max_norm / (total + 1e-6)). Returns the total norm before clipping.
// max_norm <= 0 only measures.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace unime::train
