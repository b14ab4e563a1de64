// The decoder of Llama, Mistral, Qwen2 and Phi-3 (backbones.md 1.2-1.6) as LibTorch modules,
// configured by DecoderConfig: per-projection biases, fused qkv / gate_up projections kept as the
// checkpoint stores them, the rotary embedding behind an interface, a sliding window.
//
// Module paths equal Hugging Face's names below "model." (embed_tokens, layers.N.self_attn.q_proj
// or .qkv_proj, ...); decoder_weight_map.cc holds the table between the two.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "model/config.h"
#include "model/layers.h"
#include "model/packed_attention.h"
#include "model/rotary.h"

namespace unime::model {

class Attention : public torch::nn::Module {
 public:
  explicit Attention(const DecoderConfig& c);
  // x: (B, L, hidden); rope tables (B, 1, L, head_dim); mask: (B, 1, L, L) bool, true = may attend.
  at::Tensor forward(const at::Tensor& x, const RotaryTables& rope, const at::Tensor& mask) const;
  // x: (T, hidden) packed tokens; rope: per-token tables (T, head_dim). Returns (T, hidden), or
  // (B, hidden) for the last token of each sequence only when `last_only`.
  at::Tensor forward_packed(const at::Tensor& x, const RotaryTables& rope, const PackedSequences& packed,
                            bool last_only) const;
  // Either the three projections or the fused one (Phi-3), never both.
  std::shared_ptr<Linear> q_proj, k_proj, v_proj, qkv_proj, o_proj;

 private:
  // (..., H*d), (..., Hkv*d), (..., Hkv*d) projections of x.
  std::tuple<at::Tensor, at::Tensor, at::Tensor> project(const at::Tensor& x) const;
  int64_t num_heads_, num_kv_heads_, head_dim_;
  AttentionMaskSpec mask_;
};

class MLP : public torch::nn::Module {
 public:
  explicit MLP(const DecoderConfig& c);
  at::Tensor forward(const at::Tensor& x) const;  // down(silu(gate(x)) * up(x))
  // gate_proj + up_proj, or the fused gate_up_proj (Phi-3: gate rows first).
  std::shared_ptr<Linear> gate_proj, up_proj, gate_up_proj, down_proj;
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
  // position_ids: (B, L) int64 or undefined (then 0..L-1 for every row, as transformers 4.48 does).
  // Returns the last hidden state after the final norm, (B, L, hidden), in the weights' dtype.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                     const at::Tensor& position_ids = {}) const;
  // The same from precomputed input embeddings (B, L, hidden): multimodal backbones merge image
  // features into the token embeddings first.
  at::Tensor forward_embeds(const at::Tensor& inputs_embeds, const at::Tensor& attention_mask,
                            const at::Tensor& position_ids = {}) const;

  // The final-norm hidden state of each sequence's last real token, (B, hidden), computed on the
  // packed real tokens only: no work on padding, and the last layer runs for the last tokens only.
  // Without position_ids, positions count from each sequence's first real token (for left padding
  // this differs from forward()'s by a constant shift, which rotary attention does not see, up to
  // rounding).
  at::Tensor last_token_hidden(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                               const at::Tensor& position_ids = {}) const;
  // The same from packed input embeddings (T, hidden) laid out as `packed`; `positions`: (T,) int64
  // (or what the rotary embedding takes, e.g. (3, T)), default packed.positions.
  at::Tensor last_token_hidden_packed(const at::Tensor& packed_embeds, const PackedSequences& packed,
                                      const at::Tensor& positions = {}) const;

  const DecoderConfig& config() const { return config_; }
  const RotaryEmbedding& rotary() const { return *rotary_; }
  std::shared_ptr<Embedding> embed_tokens;
  std::shared_ptr<RMSNorm> norm;
  std::vector<std::shared_ptr<DecoderLayer>> layers;

  // input_ids: (B, L) int64/int32 inside the vocabulary; InvalidInputError naming the bad id otherwise.
  void check_input_ids(const at::Tensor& input_ids) const;
  // Recompute each layer's activations in the backward pass instead of keeping them (training).
  void set_gradient_checkpointing(bool on) { checkpointing_ = on; }

 private:
  // fn(h), under activation checkpointing when it is on: fn must own what it uses (it runs again in
  // the backward pass, after the caller's locals are gone).
  at::Tensor run_layer(const std::function<at::Tensor(const at::Tensor&)>& fn, const at::Tensor& h) const;
  DecoderConfig config_;
  std::shared_ptr<RotaryEmbedding> rotary_;
  bool checkpointing_ = false;
};

// Boolean attention mask (B, 1, L, L): causal, keys restricted to real tokens, and, when
// `sliding_window` is set, i - j < window. Query rows with no visible key (left padding) may see
// themselves, so no row is fully masked (their outputs never reach real tokens).
at::Tensor build_attention_mask(const at::Tensor& attention_mask, std::optional<int64_t> sliding_window);

}  // namespace unime::model
