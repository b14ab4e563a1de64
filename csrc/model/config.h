// Decoder hyper-parameters read from a Hugging Face config.json (Llama / Mistral family).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>

namespace unime::model {

struct DecoderConfig {
  std::string model_type;  // "llama" | "mistral"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // == num_attention_heads when absent (plain multi-head)
  int64_t head_dim = 0;             // hidden_size / num_attention_heads when absent
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool attention_bias = false;  // Llama only; Mistral never has projection biases
  bool mlp_bias = false;
  // Mistral: a key j is visible from query i only when i - j < sliding_window.
  std::optional<int64_t> sliding_window;
  std::string hidden_act = "silu";
  std::string torch_dtype;  // the checkpoint's stored dtype ("float16", "bfloat16", ...), may be empty

  // Parses and validates `json` (the whole config.json, or its text_config for multimodal models).
  // `source` names the file in error messages.
  static DecoderConfig from_json(const nlohmann::json& json, const std::string& source);
};

// `config` with every key of config_defaults()[table] (model/config_defaults.h) that it lacks added.
// A key present with value null stays null (transformers passes None: "derive" or "off").
nlohmann::json with_defaults(const nlohmann::json& config, const std::string& table);

}  // namespace unime::model
