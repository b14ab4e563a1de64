#include "model/layers.h"

#include <ATen/ATen.h>
#include <cmath>

#include "core/errors.h"
#include "ops/ops.h"

namespace unime::model {

at::Tensor placeholder(at::IntArrayRef shape) { return at::zeros({}, at::kFloat).expand(shape); }

bool is_placeholder(const at::Tensor& t) {
  // Placeholders broadcast one element; no real parameter of more than one element has all-zero strides.
  if (t.numel() <= 1) return false;
  for (auto s : t.strides())
    if (s != 0) return false;
  return true;
}

double LoraConfig::scaling() const {
  return use_rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

void LoraConfig::validate() const {
  if (rank <= 0) throw InvalidInputError("LoRA rank must be positive, got " + std::to_string(rank));
  if (!(dropout >= 0.0 && dropout < 1.0))
    throw InvalidInputError("LoRA dropout must be in [0, 1), got " + std::to_string(dropout));
  if (!std::isfinite(alpha)) throw InvalidInputError("LoRA alpha must be finite");
  if (init != "kaiming" && init != "gaussian")
    throw InvalidInputError("LoRA init must be 'kaiming' or 'gaussian', got '" + init + "'");
}

Linear::Linear(int64_t in_features, int64_t out_features, bool has_bias)
    : in_features_(in_features), out_features_(out_features) {
  weight = register_parameter("weight", placeholder({out_features, in_features}), /*requires_grad=*/false);
  if (has_bias) bias = register_parameter("bias", placeholder({out_features}), false);
}

at::Tensor Linear::forward(const at::Tensor& x) const {
  if (!lora_A || merged_) return at::linear(x, weight, bias);
  const auto& a = lora_A->weight;
  // PEFT: result = base(x) + lora_B(lora_A(dropout(x))) * scaling, the adapter in its own dtype.
  auto xa = x.to(a.scalar_type());
  if (lora_config_.dropout > 0 && is_training()) xa = at::dropout(xa, lora_config_.dropout, /*train=*/true);
  return ops::lora_linear(x, weight, bias, a, lora_B->weight, lora_config_.scaling(), xa);
}

void Linear::add_lora(const LoraConfig& config, at::ScalarType dtype, const at::Generator& generator) {
  config.validate();
  TORCH_CHECK_VALUE(!lora_A, "this Linear already has a LoRA adapter");
  TORCH_CHECK_VALUE(!is_placeholder(weight), "load the weights before adding a LoRA adapter");
  lora_config_ = config;
  // A is drawn on the CPU (a CPU generator gives the same adapters on every device), then moved.
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  at::Tensor a;
  if (config.init == "gaussian") {
    a = at::empty({config.rank, in_features_}, opts).normal_(0.0, 1.0 / static_cast<double>(config.rank), generator);
  } else {
    // kaiming_uniform_(a=sqrt(5)) as nn.Linear and PEFT: bound = 1 / sqrt(fan_in).
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_features_));
    a = at::empty({config.rank, in_features_}, opts).uniform_(-bound, bound, generator);
  }
  lora_A = register_module("lora_A", std::make_shared<Linear>(in_features_, config.rank, false));
  lora_B = register_module("lora_B", std::make_shared<Linear>(config.rank, out_features_, false));
  lora_A->weight.set_data(a.to(weight.device(), dtype));
  lora_B->weight.set_data(at::zeros({out_features_, config.rank}, opts.dtype(dtype).device(weight.device())));
  lora_A->weight.set_requires_grad(true);
  lora_B->weight.set_requires_grad(true);
}

at::Tensor Linear::delta_weight() const {
  return at::mm(lora_B->weight.to(at::kFloat), lora_A->weight.to(at::kFloat)) * lora_config_.scaling();
}

void Linear::merge() {
  if (!lora_A || merged_) return;
  at::NoGradGuard no_grad;
  weight.set_data((weight.to(at::kFloat) + delta_weight()).to(weight.scalar_type()));
  merged_ = true;
}

void Linear::unmerge() {
  if (!lora_A || !merged_) return;
  at::NoGradGuard no_grad;
  weight.set_data((weight.to(at::kFloat) - delta_weight()).to(weight.scalar_type()));
  merged_ = false;
}

Embedding::Embedding(int64_t num_embeddings, int64_t dim) {
  weight = register_parameter("weight", placeholder({num_embeddings, dim}), false);
}

at::Tensor Embedding::forward(const at::Tensor& ids) const { return at::embedding(weight, ids); }

RMSNorm::RMSNorm(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", placeholder({dim}), false);
}

at::Tensor RMSNorm::forward(const at::Tensor& x) const { return ops::rms_norm(x, weight, eps); }

LayerNorm::LayerNorm(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", placeholder({dim}), false);
  bias = register_parameter("bias", placeholder({dim}), false);
}

at::Tensor LayerNorm::forward(const at::Tensor& x) const { return at::layer_norm(x, {x.size(-1)}, weight, bias, eps); }

}  // namespace unime::model
