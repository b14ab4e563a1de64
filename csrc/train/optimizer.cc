#include "train/optimizer.h"

#include <ATen/ATen.h>
#include <cmath>

#include "core/errors.h"

namespace unime::train {

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> params, AdamWOptions options)
    : params_(std::move(params)), options_(options) {
  for (const auto& [name, p] : params_) {
    TORCH_CHECK_VALUE(p.requires_grad(), "AdamW: parameter ", name, " does not require grad");
    exp_avg_.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
    exp_avg_sq_.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
  }
}

void AdamW::step(double lr) {
  at::NoGradGuard no_grad;
  ++step_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bias_correction1 = 1.0 - std::pow(b1, static_cast<double>(step_));
  const double bias_correction2 = 1.0 - std::pow(b2, static_cast<double>(step_));
  const double step_size = lr / bias_correction1;
  const double bias_correction2_sqrt = std::sqrt(bias_correction2);
  for (size_t i = 0; i < params_.size(); ++i) {
    auto& p = params_[i].second;
    const auto& g = p.grad();
    if (!g.defined()) continue;
    // The order of torch.optim.adamw._single_tensor_adamw (torch 2.x).
    p.mul_(1.0 - lr * options_.weight_decay);
    exp_avg_[i].lerp_(g, 1.0 - b1);
    exp_avg_sq_[i].mul_(b2).addcmul_(g, g, 1.0 - b2);
    auto denom = (exp_avg_sq_[i].sqrt() / bias_correction2_sqrt).add_(options_.eps);
    p.addcdiv_(exp_avg_[i], denom, -step_size);
  }
}

void AdamW::zero_grad() {
  for (auto& [_, p] : params_) p.mutable_grad() = at::Tensor();
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back(params_[i].first + ".exp_avg", exp_avg_[i].to(at::kCPU).contiguous());
    out.emplace_back(params_[i].first + ".exp_avg_sq", exp_avg_sq_[i].to(at::kCPU).contiguous());
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& state, int64_t step) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    for (auto* pair : {&exp_avg_, &exp_avg_sq_}) {
      const auto key = params_[i].first + (pair == &exp_avg_ ? ".exp_avg" : ".exp_avg_sq");
      auto it = state.find(key);
      if (it == state.end()) throw InvalidInputError("optimizer state has no tensor '" + key + "'");
      if (it->second.sizes() != (*pair)[i].sizes())
        throw InvalidInputError("optimizer state '" + key + "' has the wrong shape");
      (*pair)[i].copy_(it->second);
    }
  }
  step_ = step;
}

double scheduled_lr(double base_lr, const std::string& schedule, int64_t step, int64_t warmup, int64_t total) {
  // The multiplier first, then base * multiplier: LambdaLR's order, so the rounding is the same.
  double factor = 1.0;
  if (step < warmup) {
    factor = static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  } else if (schedule == "cosine") {
    const double progress =
        static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
    factor = std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * 0.5 * 2.0 * progress)));  // num_cycles = 0.5
  } else if (schedule == "linear") {
    factor =
        std::max(0.0, static_cast<double>(total - step) / static_cast<double>(std::max<int64_t>(1, total - warmup)));
  }
  return base_lr * factor;
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (const auto& p : params)
    if (p.grad().defined()) norms.push_back(at::linalg_vector_norm(p.grad(), 2.0));
  if (norms.empty()) return 0.0;
  auto total = at::linalg_vector_norm(at::stack(norms), 2.0);
  if (max_norm > 0) {
    auto coef = at::clamp_max(max_norm / (total + 1e-6), 1.0);
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(coef.to(p.grad().device()));
  }
  return total.item<double>();
}

}  // namespace unime::train
