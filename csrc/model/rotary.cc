#include "model/rotary.h"

#include <ATen/ATen.h>

#include "core/errors.h"
#include "ops/cpu/rotary_cpu.h"

namespace unime::model {

namespace {

// Same op order as transformers: int64 arange -> float -> / d, then base ** that (fp32).
at::Tensor frequency_exponents(int64_t head_dim) {
  return at::arange(0, head_dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(head_dim);
}

RotaryTables scaled_tables(const at::Tensor& positions, const at::Tensor& inv_freq, double scale,
                           at::ScalarType dtype) {
  auto freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq.to(positions.device());  // (..., d/2) fp32
  auto emb = at::cat({freqs, freqs}, -1);
  auto cos = emb.cos(), sin = emb.sin();
  if (scale != 1.0) {
    cos = cos * scale;
    sin = sin * scale;
  }
  return {cos.to(dtype), sin.to(dtype)};
}

}  // namespace

DefaultRotaryEmbedding::DefaultRotaryEmbedding(int64_t head_dim, double theta) {
  inv_freq_ = 1.0 / at::pow(theta, frequency_exponents(head_dim));
}

RotaryTables DefaultRotaryEmbedding::tables(const at::Tensor& positions, at::ScalarType dtype) const {
  return scaled_tables(positions, inv_freq_, 1.0, dtype);
}

LongRopeRotaryEmbedding::LongRopeRotaryEmbedding(int64_t head_dim, const RotaryConfig& config)
    : original_max_positions_(config.original_max_position_embeddings), attention_factor_(config.attention_factor) {
  const auto half = static_cast<size_t>(head_dim / 2);
  if (config.short_factor.size() != half || config.long_factor.size() != half)
    throw InvalidInputError("LongRoPE needs head_dim / 2 = " + std::to_string(half) + " short and long factors, got " +
                            std::to_string(config.short_factor.size()) + " and " +
                            std::to_string(config.long_factor.size()));
  const auto base = at::pow(config.theta, frequency_exponents(head_dim));
  // torch.tensor(list of Python floats, dtype=float32): each factor rounded to fp32, then fp32 maths.
  auto factors = [](const std::vector<double>& f) {
    return at::tensor(at::ArrayRef<double>(f), at::kDouble).to(at::kFloat);
  };
  short_inv_freq_ = 1.0 / (factors(config.short_factor) * base);
  long_inv_freq_ = 1.0 / (factors(config.long_factor) * base);
}

RotaryTables LongRopeRotaryEmbedding::tables(const at::Tensor& positions, at::ScalarType dtype) const {
  const int64_t longest = positions.numel() == 0 ? 0 : positions.max().item<int64_t>() + 1;
  const auto& inv_freq = longest > original_max_positions_ ? long_inv_freq_ : short_inv_freq_;
  return scaled_tables(positions, inv_freq, attention_factor_, dtype);
}

MRopeRotaryEmbedding::MRopeRotaryEmbedding(int64_t head_dim, double theta, std::vector<int64_t> sections)
    : inner_(head_dim, theta), sections_(std::move(sections)) {
  int64_t total = 0;
  for (auto s : sections_) total += s;
  if (sections_.size() != 3 || total * 2 != head_dim)
    throw InvalidInputError("mrope_section must be 3 sizes summing to head_dim / 2 = " + std::to_string(head_dim / 2));
}

RotaryTables MRopeRotaryEmbedding::tables(const at::Tensor& positions, at::ScalarType dtype) const {
  TORCH_CHECK_VALUE(positions.dim() >= 1 && positions.size(0) == 3,
                    "M-RoPE positions must be (3, ...) (temporal, height, width), got ", positions.sizes());
  auto t = inner_.tables(positions, dtype);  // (3, ..., d)
  std::vector<at::Tensor> cos, sin;
  int64_t start = 0;
  for (int64_t i = 0; i < 6; ++i) {  // the sections twice: dims j and j + d/2 share frequency j
    const auto len = sections_[i % 3];
    cos.push_back(t.cos[i % 3].narrow(-1, start, len));
    sin.push_back(t.sin[i % 3].narrow(-1, start, len));
    start += len;
  }
  return {at::cat(cos, -1), at::cat(sin, -1)};
}

std::unique_ptr<RotaryEmbedding> make_rotary_embedding(const RotaryConfig& config, int64_t head_dim) {
  if (config.type == "default") return std::make_unique<DefaultRotaryEmbedding>(head_dim, config.theta);
  if (config.type == "mrope")
    return std::make_unique<MRopeRotaryEmbedding>(head_dim, config.theta, config.mrope_section);
  if (config.type == "longrope") return std::make_unique<LongRopeRotaryEmbedding>(head_dim, config);
  throw InvalidInputError("rotary embedding type '" + config.type + "' is not supported");
}

at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  if (x.scalar_type() == cos.scalar_type() && ops::cpu_rotary_applies(x, cos, sin)) return ops::cpu_rotary(x, cos, sin);
  const auto half = x.size(-1) / 2;
  auto rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

at::Tensor apply_rotary_in_fp32(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  if (cos.scalar_type() == at::kFloat && ops::cpu_rotary_applies(x, cos, sin)) return ops::cpu_rotary(x, cos, sin);
  return apply_rotary(x.to(at::kFloat), cos, sin).to(x.scalar_type());
}

}  // namespace unime::model
