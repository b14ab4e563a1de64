// Decoder hyper-parameters read from a Hugging Face config.json: the Llama, Mistral, Qwen2 and Phi-3
// families, as one configurable decoder (which projections have biases, which are fused, which
// rotary embedding, which attention window) rather than one class per family.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace unime::model {

// The rotary embedding of a decoder (backbones.md 1.3): "default", or "longrope" (Phi-3 / Phi-3.5's
// "su"); M-RoPE (Qwen2-VL) plugs in as another type behind the RotaryEmbedding interface.
struct RotaryConfig {
  std::string type = "default";
  double theta = 10000.0;
  // LongRoPE: per-frequency divisors (head_dim / 2 each); the long ones apply when a call's longest
  // position + 1 exceeds original_max_position_embeddings; cos and sin are scaled by attention_factor.
  std::vector<double> short_factor, long_factor;
  int64_t original_max_position_embeddings = 0;
  double attention_factor = 1.0;
  // M-RoPE (Qwen2-VL): frequency index j < mrope_section[0] rotates by the temporal position, the
  // next mrope_section[1] by the height position, the last mrope_section[2] by the width position.
  std::vector<int64_t> mrope_section;
};

struct DecoderConfig {
  std::string model_type;  // "llama" | "mistral" | "qwen2" | "phi3"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;      // == num_attention_heads when absent (plain multi-head)
  int64_t head_dim = 0;                 // hidden_size / num_attention_heads when absent
  int64_t max_position_embeddings = 0;  // the longest input the model takes (0: unknown)
  double rms_norm_eps = 1e-6;
  RotaryConfig rope;
  // Biases per projection: Llama's attention_bias sets all four, Qwen2 has q/k/v only, Mistral and
  // Phi-3 none.
  bool q_bias = false, k_bias = false, v_bias = false, o_bias = false;
  bool mlp_bias = false;
  // Fused projections kept as the checkpoint stores them (so LoRA targets match PEFT's):
  // qkv_proj = [q rows; k rows; v rows], gate_up_proj = [gate rows; up rows] (Phi-3).
  bool fused_qkv = false, fused_gate_up = false;
  // A key j is visible from query i only when i - j < sliding_window (Mistral, Phi-3).
  std::optional<int64_t> sliding_window;
  std::string hidden_act = "silu";
  std::string torch_dtype;  // the checkpoint's stored dtype ("float16", "bfloat16", ...), may be empty
  std::optional<int64_t> pad_token_id;

  // Parses and validates `json` (the whole config.json, or its text_config for multimodal models).
  // `source` names the file in error messages.
  static DecoderConfig from_json(const nlohmann::json& json, const std::string& source);
};

// The decoder model_types from_json reads.
bool is_decoder_model_type(const std::string& model_type);

// `config` with every key of config_defaults()[table] (model/config_defaults.h) that it lacks added.
// A key present with value null stays null (transformers passes None: "derive" or "off").
nlohmann::json with_defaults(const nlohmann::json& config, const std::string& table);

}  // namespace unime::model
