#include "model/layers.h"

#include <ATen/ATen.h>

#include "ops/ops.h"

namespace unime::model {

at::Tensor placeholder(at::IntArrayRef shape) { return at::zeros({}, at::kFloat).expand(shape); }

Linear::Linear(int64_t in_features, int64_t out_features, bool has_bias) {
  weight = register_parameter("weight", placeholder({out_features, in_features}), /*requires_grad=*/false);
  if (has_bias) bias = register_parameter("bias", placeholder({out_features}), false);
}

at::Tensor Linear::forward(const at::Tensor& x) const { return at::linear(x, weight, bias); }

Embedding::Embedding(int64_t num_embeddings, int64_t dim) {
  weight = register_parameter("weight", placeholder({num_embeddings, dim}), false);
}

at::Tensor Embedding::forward(const at::Tensor& ids) const { return at::embedding(weight, ids); }

RMSNorm::RMSNorm(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", placeholder({dim}), false);
}

at::Tensor RMSNorm::forward(const at::Tensor& x) const { return ops::rms_norm(x, weight, eps); }

}  // namespace unime::model
