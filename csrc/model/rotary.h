// Rotary position embeddings as an interface over a positions tensor (backbones.md 1.3): each
// variant turns token positions into the cos/sin tables that attention applies with rotate_half.
// The default one and LongRoPE (Phi-3 / Phi-3.5) are here; M-RoPE (Qwen2-VL, 3-D positions) implements
// the same interface.
#pragma once

#include <vector>

#include <ATen/core/Tensor.h>
#include <memory>

#include "model/config.h"

namespace unime::model {

// cos, sin: (..., head_dim) in the activation dtype, one row per position of the positions tensor.
struct RotaryTables {
  at::Tensor cos, sin;
};

class RotaryEmbedding {
 public:
  virtual ~RotaryEmbedding() = default;
  // positions: int64 of any shape (...) (M-RoPE: (3, ...)), on the activations' device. Returns
  // tables of shape (..., head_dim).
  virtual RotaryTables tables(const at::Tensor& positions, at::ScalarType dtype) const = 0;
};

// Hugging Face's default rotary embedding: inv_freq = 1 / theta^(2i/d) in fp32, angles
// position * inv_freq in fp32 (one product per entry, as transformers' matmul of a rank-1 pair),
// cos/sin cast to the activation dtype; dimension i rotates with i + d/2 (rotate_half).
class DefaultRotaryEmbedding : public RotaryEmbedding {
 public:
  DefaultRotaryEmbedding(int64_t head_dim, double theta);
  RotaryTables tables(const at::Tensor& positions, at::ScalarType dtype) const override;

 private:
  at::Tensor inv_freq_;  // (head_dim/2,) fp32 on CPU; moved per call (tiny)
};

// Phi-3's LongRoPE (transformers 4.48 Phi3RotaryEmbedding): inv_freq = 1 / (factor_i * theta^(2i/d)),
// with the long factors when the call's longest position + 1 exceeds original_max_position_embeddings
// (a property of the whole call, as in transformers, where it is the padded batch's length), else the
// short ones; cos and sin multiplied by attention_factor in fp32 before the cast.
class LongRopeRotaryEmbedding : public RotaryEmbedding {
 public:
  LongRopeRotaryEmbedding(int64_t head_dim, const RotaryConfig& config);
  RotaryTables tables(const at::Tensor& positions, at::ScalarType dtype) const override;

 private:
  at::Tensor short_inv_freq_, long_inv_freq_;  // (head_dim/2,) fp32 on CPU
  int64_t original_max_positions_;
  double attention_factor_;
};

// Qwen2-VL's M-RoPE (transformers 4.48 Qwen2VLRotaryEmbedding + apply_multimodal_rotary_pos_emb):
// positions (3, ...) of (temporal, height, width); the default tables of each component, then
// the head dimension split into sections [s0, s1, s2, s0, s1, s2] taking component k mod 3.
class MRopeRotaryEmbedding : public RotaryEmbedding {
 public:
  MRopeRotaryEmbedding(int64_t head_dim, double theta, std::vector<int64_t> sections);
  RotaryTables tables(const at::Tensor& positions, at::ScalarType dtype) const override;

 private:
  DefaultRotaryEmbedding inner_;
  std::vector<int64_t> sections_;
};

// The rotary embedding `config.rope` describes; InvalidInputError for an unknown type.
std::unique_ptr<RotaryEmbedding> make_rotary_embedding(const RotaryConfig& config, int64_t head_dim);

// x * cos + rotate_half(x) * sin, rotate_half(x) = cat(-x[d/2:], x[:d/2]); in x's dtype (cos and
// sin of that dtype). For inference on CPU one fused pass with the same roundings (ops/cpu/rotary_cpu.h).
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// The same computed in fp32 (fp32 cos and sin) and returned in x's dtype: transformers' vision rotary,
// which converts q and k to fp32 and casts the result back.
at::Tensor apply_rotary_in_fp32(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace unime::model
