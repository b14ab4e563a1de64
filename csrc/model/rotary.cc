#include "model/rotary.h"

#include <ATen/ATen.h>

#include "core/errors.h"

namespace unime::model {

DefaultRotaryEmbedding::DefaultRotaryEmbedding(int64_t head_dim, double theta) {
  // Same op order as transformers: int64 arange -> float -> / d, then base ** that (fp32).
  auto exponent = at::arange(0, head_dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(head_dim);
  inv_freq_ = 1.0 / at::pow(theta, exponent);
}

RotaryTables DefaultRotaryEmbedding::tables(const at::Tensor& positions, at::ScalarType dtype) const {
  auto freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq_.to(positions.device());  // (..., d/2) fp32
  auto emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

std::unique_ptr<RotaryEmbedding> make_rotary_embedding(const RotaryConfig& config, int64_t head_dim) {
  if (config.type == "default") return std::make_unique<DefaultRotaryEmbedding>(head_dim, config.theta);
  throw InvalidInputError("rotary embedding type '" + config.type + "' is not supported");
}

at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const auto half = x.size(-1) / 2;
  auto rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

}  // namespace unime::model
