#include "model/decoder.h"

#include <ATen/ATen.h>
#include <cmath>
#include <torch/nn/modules/container/modulelist.h>

#include "core/errors.h"
#include "model/activation_checkpoint.h"
#include "ops/ops.h"

namespace unime::model {

namespace {
// (B, Hkv, L, d) -> (B, Hkv*rep, L, d); head h reads kv head h / rep, as transformers' repeat_kv.
at::Tensor repeat_kv(const at::Tensor& x, int64_t rep) {
  if (rep == 1) return x;
  auto s = x.sizes();
  return x.unsqueeze(2).expand({s[0], s[1], rep, s[2], s[3]}).reshape({s[0], s[1] * rep, s[2], s[3]});
}
}  // namespace

Attention::Attention(const DecoderConfig& c)
    : num_heads_(c.num_attention_heads),
      num_kv_heads_(c.num_key_value_heads),
      head_dim_(c.head_dim),
      mask_{/*causal=*/true, c.sliding_window} {
  const auto q_out = num_heads_ * head_dim_, kv_out = num_kv_heads_ * head_dim_;
  if (c.fused_qkv) {
    qkv_proj = register_module("qkv_proj", std::make_shared<Linear>(c.hidden_size, q_out + 2 * kv_out, c.q_bias));
  } else {
    q_proj = register_module("q_proj", std::make_shared<Linear>(c.hidden_size, q_out, c.q_bias));
    k_proj = register_module("k_proj", std::make_shared<Linear>(c.hidden_size, kv_out, c.k_bias));
    v_proj = register_module("v_proj", std::make_shared<Linear>(c.hidden_size, kv_out, c.v_bias));
  }
  o_proj = register_module("o_proj", std::make_shared<Linear>(q_out, c.hidden_size, c.o_bias));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> Attention::project(const at::Tensor& x) const {
  if (!qkv_proj) return {q_proj->forward(x), k_proj->forward(x), v_proj->forward(x)};
  const auto q_out = num_heads_ * head_dim_, kv_out = num_kv_heads_ * head_dim_;
  auto qkv = qkv_proj->forward(x);
  return {qkv.narrow(-1, 0, q_out), qkv.narrow(-1, q_out, kv_out), qkv.narrow(-1, q_out + kv_out, kv_out)};
}

at::Tensor Attention::forward(const at::Tensor& x, const RotaryTables& rope, const at::Tensor& mask) const {
  const auto B = x.size(0), L = x.size(1);
  auto [q, k, v] = project(x);
  q = q.reshape({B, L, -1, head_dim_}).transpose(1, 2);  // (B, H, L, d)
  k = k.reshape({B, L, -1, head_dim_}).transpose(1, 2);  // (B, Hkv, L, d)
  v = v.reshape({B, L, -1, head_dim_}).transpose(1, 2);
  q = apply_rotary(q, rope.cos, rope.sin);
  k = apply_rotary(k, rope.cos, rope.sin);
  const auto rep = num_heads_ / num_kv_heads_;
  auto out = at::scaled_dot_product_attention(q, repeat_kv(k, rep), repeat_kv(v, rep), mask, /*dropout_p=*/0.0,
                                              /*is_causal=*/false, /*scale=*/1.0 / std::sqrt(double(head_dim_)));
  return o_proj->forward(out.transpose(1, 2).reshape({B, L, -1}));
}

at::Tensor Attention::forward_packed(const at::Tensor& x, const RotaryTables& rope, const PackedSequences& packed,
                                     bool last_only) const {
  const auto T = x.size(0);
  auto cos = rope.cos.unsqueeze(1), sin = rope.sin.unsqueeze(1);  // (T, 1, d)
  at::Tensor q, k, v;
  if (qkv_proj || !last_only) {
    std::tie(q, k, v) = project(x);
    if (last_only) q = q.index_select(0, packed.last_index);
  } else {
    // Queries only where outputs are needed: each sequence's last token.
    k = k_proj->forward(x), v = v_proj->forward(x);
    q = q_proj->forward(x.index_select(0, packed.last_index));
  }
  k = apply_rotary(k.reshape({T, -1, head_dim_}), cos, sin);  // (T, Hkv, d)
  v = v.reshape({T, -1, head_dim_});
  if (last_only) cos = cos.index_select(0, packed.last_index), sin = sin.index_select(0, packed.last_index);
  const auto Tq = q.size(0);
  q = apply_rotary(q.reshape({Tq, -1, head_dim_}), cos, sin);  // (Tq, H, d)
  auto out = packed_attention(q, k, v, packed, mask_, last_only, 1.0 / std::sqrt(double(head_dim_)));
  return o_proj->forward(out.reshape({Tq, -1}));
}

MLP::MLP(const DecoderConfig& c) {
  if (c.fused_gate_up) {
    gate_up_proj =
        register_module("gate_up_proj", std::make_shared<Linear>(c.hidden_size, 2 * c.intermediate_size, c.mlp_bias));
  } else {
    gate_proj = register_module("gate_proj", std::make_shared<Linear>(c.hidden_size, c.intermediate_size, c.mlp_bias));
    up_proj = register_module("up_proj", std::make_shared<Linear>(c.hidden_size, c.intermediate_size, c.mlp_bias));
  }
  down_proj = register_module("down_proj", std::make_shared<Linear>(c.intermediate_size, c.hidden_size, c.mlp_bias));
}

at::Tensor MLP::forward(const at::Tensor& x) const {
  if (gate_up_proj) {
    auto gu = gate_up_proj->forward(x);
    const auto half = gu.size(-1) / 2;
    return down_proj->forward(ops::gated_silu(gu.narrow(-1, 0, half), gu.narrow(-1, half, half)));
  }
  return down_proj->forward(ops::gated_silu(gate_proj->forward(x), up_proj->forward(x)));
}

DecoderLayer::DecoderLayer(const DecoderConfig& c) {
  self_attn = register_module("self_attn", std::make_shared<Attention>(c));
  mlp = register_module("mlp", std::make_shared<MLP>(c));
  input_layernorm = register_module("input_layernorm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm =
      register_module("post_attention_layernorm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps));
}

at::Tensor DecoderLayer::forward(const at::Tensor& x, const RotaryTables& rope, const at::Tensor& mask) const {
  auto h = x + self_attn->forward(input_layernorm->forward(x), rope, mask);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

at::Tensor DecoderLayer::forward_packed(const at::Tensor& x, const RotaryTables& rope, const PackedSequences& packed,
                                        bool last_only) const {
  auto residual = last_only ? x.index_select(0, packed.last_index) : x;
  auto h = residual + self_attn->forward_packed(input_layernorm->forward(x), rope, packed, last_only);
  return h + mlp->forward(post_attention_layernorm->forward(h));
}

Decoder::Decoder(const DecoderConfig& c) : config_(c), rotary_(make_rotary_embedding(c.rope, c.head_dim)) {
  embed_tokens = register_module("embed_tokens", std::make_shared<Embedding>(c.vocab_size, c.hidden_size));
  auto list = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layers.push_back(std::make_shared<DecoderLayer>(c));
    list->push_back(layers.back());
  }
  norm = register_module("norm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps));
}

void Decoder::check_input_ids(const at::Tensor& input_ids) const {
  TORCH_CHECK_VALUE(input_ids.dim() == 2, "input_ids must be (batch, length), got shape ", input_ids.sizes());
  TORCH_CHECK_VALUE(input_ids.scalar_type() == at::kLong || input_ids.scalar_type() == at::kInt,
                    "input_ids must be int64 or int32, got ", input_ids.scalar_type());
  if (input_ids.numel() > 0) {
    auto lo = input_ids.min().item<int64_t>(), hi = input_ids.max().item<int64_t>();
    if (lo < 0 || hi >= config_.vocab_size)
      throw InvalidInputError("input_ids: token id " + std::to_string(lo < 0 ? lo : hi) +
                              " is outside the vocabulary [0, " + std::to_string(config_.vocab_size) + ")");
  }
}

at::Tensor Decoder::run_layer(const std::function<at::Tensor(const at::Tensor&)>& fn, const at::Tensor& h) const {
  return checkpointing_ ? checkpointed(fn, h) : fn(h);
}

at::Tensor Decoder::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                            const at::Tensor& position_ids) const {
  check_input_ids(input_ids);
  return forward_embeds(embed_tokens->forward(input_ids), attention_mask, position_ids);
}

at::Tensor Decoder::last_token_hidden(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                      const at::Tensor& position_ids) const {
  check_input_ids(input_ids);
  TORCH_CHECK_VALUE(attention_mask.sizes() == input_ids.sizes(), "attention_mask must have input_ids' shape ",
                    input_ids.sizes(), ", got ", attention_mask.sizes());
  auto packed = pack_sequences(attention_mask, input_ids.device());
  auto tokens = input_ids.reshape(-1).index_select(0, packed.token_index);
  at::Tensor positions;
  if (position_ids.defined()) {
    TORCH_CHECK_VALUE(position_ids.sizes() == input_ids.sizes(), "position_ids must have input_ids' shape ",
                      input_ids.sizes(), ", got ", position_ids.sizes());
    positions = position_ids.to(input_ids.device()).reshape(-1).index_select(0, packed.token_index);
  }
  return last_token_hidden_packed(embed_tokens->forward(tokens), packed, positions);
}

at::Tensor Decoder::last_token_hidden_packed(const at::Tensor& packed_embeds, const PackedSequences& packed,
                                             const at::Tensor& positions) const {
  TORCH_CHECK_VALUE(packed_embeds.dim() == 2 && packed_embeds.size(1) == config_.hidden_size,
                    "packed embeddings must be (tokens, ", config_.hidden_size, "), got ", packed_embeds.sizes());
  auto rope = rotary_->tables(positions.defined() ? positions : packed.positions, packed_embeds.scalar_type());
  auto h = packed_embeds;
  for (size_t i = 0; i < layers.size(); ++i) {
    const bool last = i + 1 == layers.size();
    // Captured by value: under checkpointing the backward pass calls this again after we return.
    h = run_layer([layer = layers[i], rope, packed,
                   last](const at::Tensor& x) { return layer->forward_packed(x, rope, packed, last); },
                  h);
  }
  return norm->forward(h);
}

at::Tensor Decoder::forward_embeds(const at::Tensor& inputs_embeds, const at::Tensor& attention_mask,
                                   const at::Tensor& position_ids) const {
  TORCH_CHECK_VALUE(inputs_embeds.dim() == 3 && inputs_embeds.size(2) == config_.hidden_size,
                    "inputs_embeds must be (batch, length, ", config_.hidden_size, "), got ", inputs_embeds.sizes());
  const auto B = inputs_embeds.size(0), L = inputs_embeds.size(1);
  TORCH_CHECK_VALUE(attention_mask.sizes() == inputs_embeds.sizes().slice(0, 2),
                    "attention_mask must be (batch, length) = ", inputs_embeds.sizes().slice(0, 2), ", got ",
                    attention_mask.sizes());
  auto positions =
      position_ids.defined()
          ? position_ids.to(inputs_embeds.device())
          : at::arange(L, at::TensorOptions().dtype(at::kLong).device(inputs_embeds.device())).expand({B, L});
  TORCH_CHECK_VALUE(positions.size(-1) == L && positions.size(-2) == B, "position_ids must end in (batch, length) = (",
                    B, ", ", L, "), got ", positions.sizes());
  auto table = rotary_->tables(positions, inputs_embeds.scalar_type());  // (..., B, L, d)
  RotaryTables rope{table.cos.unsqueeze(-3), table.sin.unsqueeze(-3)};   // broadcast over heads
  auto mask = build_attention_mask(attention_mask.to(inputs_embeds.device()), config_.sliding_window);
  auto h = inputs_embeds;
  for (size_t i = 0; i < layers.size(); ++i)
    h = run_layer([layer = layers[i], rope, mask](const at::Tensor& x) { return layer->forward(x, rope, mask); }, h);
  return norm->forward(h);
}

at::Tensor build_attention_mask(const at::Tensor& attention_mask, std::optional<int64_t> sliding_window) {
  const auto L = attention_mask.size(1);
  auto opts = at::TensorOptions().dtype(at::kLong).device(attention_mask.device());
  auto i = at::arange(L, opts).unsqueeze(1);  // query
  auto j = at::arange(L, opts).unsqueeze(0);  // key
  auto allowed = j <= i;
  if (sliding_window) allowed = allowed & ((i - j) < *sliding_window);
  auto keys = attention_mask.ne(0).unsqueeze(1).unsqueeze(1);  // (B, 1, 1, L)
  return (allowed.unsqueeze(0).unsqueeze(0) & keys) | (i == j).unsqueeze(0).unsqueeze(0);
}

}  // namespace unime::model
