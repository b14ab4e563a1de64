// The Llama / Mistral decoder (backbones.md sections 1.2-1.6) as LibTorch modules.
//
// Module paths equal Hugging Face's names below "model." (embed_tokens, layers.N.self_attn.q_proj,
// ...); decoder_weight_map.cc holds the table between the two.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include "model/config.h"
#include "model/layers.h"
#include "model/packed_attention.h"

namespace unime::model {

// cos, sin: (L, head_dim) in the activation dtype, for positions 0..L-1.
struct RotaryTables {
  at::Tensor cos, sin;
};

// Hugging Face's default rotary embedding: inv_freq = 1 / theta^(2i/d) in fp32, angles in fp32,
// cos/sin cast to the activation dtype; dimension i rotates with i + d/2 (rotate_half).
class RotaryEmbedding {
 public:
  RotaryEmbedding(int64_t head_dim, double theta);
  RotaryTables tables(int64_t length, at::ScalarType dtype, at::Device device) const;

 private:
  at::Tensor inv_freq_;  // (head_dim/2,) fp32 on CPU; moved per call (tiny)
};

class Attention : public torch::nn::Module {
 public:
  explicit Attention(const DecoderConfig& c);
  // x: (B, L, hidden); mask: (B, 1, L, L) bool, true = may attend.
  at::Tensor forward(const at::Tensor& x, const RotaryTables& rope, const at::Tensor& mask) const;
  // x: (T, hidden) packed tokens; rope: per-token tables (T, head_dim). Returns (T, hidden), or
  // (B, hidden) for the last token of each sequence only when `last_only`.
  at::Tensor forward_packed(const at::Tensor& x, const RotaryTables& rope, const PackedSequences& packed,
                            bool last_only) const;
  std::shared_ptr<Linear> q_proj, k_proj, v_proj, o_proj;

 private:
  int64_t num_heads_, num_kv_heads_, head_dim_;
  std::optional<int64_t> sliding_window_;
};

class MLP : public torch::nn::Module {
 public:
  explicit MLP(const DecoderConfig& c);
  at::Tensor forward(const at::Tensor& x) const;  // down(silu(gate(x)) * up(x))
  std::shared_ptr<Linear> gate_proj, up_proj, down_proj;
};

class DecoderLayer : public torch::nn::Module {
 public:
  explicit DecoderLayer(const DecoderConfig& c);
  at::Tensor forward(const at::Tensor& x, const RotaryTables& rope, const at::Tensor& mask) const;
  at::Tensor forward_packed(const at::Tensor& x, const RotaryTables& rope, const PackedSequences& packed,
                            bool last_only) const;
  std::shared_ptr<RMSNorm> input_layernorm, post_attention_layernorm;
  std::shared_ptr<Attention> self_attn;
  std::shared_ptr<MLP> mlp;
};

class Decoder : public torch::nn::Module {
 public:
  explicit Decoder(const DecoderConfig& c);

  // input_ids: (B, L) int64; attention_mask: (B, L), nonzero = real token (left or right padding).
  // Returns the last hidden state after the final norm, (B, L, hidden), in the weights' dtype.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask) const;
  // The same from precomputed input embeddings (B, L, hidden): multimodal backbones merge image
  // features into the token embeddings first.
  at::Tensor forward_embeds(const at::Tensor& inputs_embeds, const at::Tensor& attention_mask) const;

  // The final-norm hidden state of each sequence's last real token, (B, hidden), computed on the
  // packed real tokens only: no work on padding, and the last layer runs for the last tokens only.
  // Positions count from each sequence's first real token (for left padding this differs from
  // forward()'s by a constant shift, which rotary attention does not see, up to rounding).
  at::Tensor last_token_hidden(const at::Tensor& input_ids, const at::Tensor& attention_mask) const;
  // The same from packed input embeddings (T, hidden) laid out as `packed`.
  at::Tensor last_token_hidden_packed(const at::Tensor& packed_embeds, const PackedSequences& packed) const;

  const DecoderConfig& config() const { return config_; }
  std::shared_ptr<Embedding> embed_tokens;
  std::shared_ptr<RMSNorm> norm;
  std::vector<std::shared_ptr<DecoderLayer>> layers;

  // input_ids: (B, L) int64/int32 inside the vocabulary; InvalidInputError naming the bad id otherwise.
  void check_input_ids(const at::Tensor& input_ids) const;

 private:
  DecoderConfig config_;
  RotaryEmbedding rotary_;
};

// Boolean attention mask (B, 1, L, L): causal, keys restricted to real tokens, and, when
// `sliding_window` is set, i - j < window. Query rows with no visible key (left padding) may see
// themselves, so no row is fully masked (their outputs never reach real tokens).
at::Tensor build_attention_mask(const at::Tensor& attention_mask, std::optional<int64_t> sliding_window);

}  // namespace unime::model
