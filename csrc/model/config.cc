#include "model/config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/json_file.h"
#include "core/util/strings.h"
#include "model/config_defaults.h"

namespace unime::model {

using core::get_or;
using core::get_required;
using core::quote;

nlohmann::json with_defaults(const nlohmann::json& config, const std::string& table) {
  nlohmann::json out = config;
  const auto& defaults = config_defaults();
  if (auto it = defaults.find(table); it != defaults.end())
    for (const auto& [key, value] : it->items())
      if (!out.contains(key)) out[key] = value;
  return out;
}

bool is_decoder_model_type(const std::string& t) {
  return t == "llama" || t == "mistral" || t == "qwen2" || t == "phi3";
}

namespace {

std::optional<int64_t> optional_int(const nlohmann::json& json, const char* key, const std::string& source) {
  if (!json.contains(key) || json[key].is_null()) return std::nullopt;
  return get_required<int64_t>(json, key, source);
}

// Each family's layout, as its transformers 4.48 modeling file builds it.
void read_family_layout(DecoderConfig& c, const nlohmann::json& json, const std::string& source) {
  const auto& t = c.model_type;
  if (t == "llama") {
    const bool b = get_or<bool>(json, "attention_bias", false, source);
    c.q_bias = c.k_bias = c.v_bias = c.o_bias = b;
    c.mlp_bias = get_or<bool>(json, "mlp_bias", false, source);
  } else if (t == "qwen2") {
    c.q_bias = c.k_bias = c.v_bias = true;  // Qwen2Attention: q/k/v with bias, o_proj without
    // transformers 4.48 applies Qwen2's window only with use_sliding_window, from max_window_layers on.
    if (get_or<bool>(json, "use_sliding_window", false, source))
      throw InvalidInputError(source + ": use_sliding_window = true (Qwen2's per-layer window) is not supported");
  } else if (t == "phi3") {
    c.fused_qkv = c.fused_gate_up = true;
  }
  if (t == "mistral" || t == "phi3") c.sliding_window = optional_int(json, "sliding_window", source);
}

// Phi-3's LongRoPE as transformers 4.48 computes it (Phi3RotaryEmbedding, _compute_longrope_parameters):
// factor = max_position_embeddings / original_max_position_embeddings, attention factor
// sqrt(1 + ln(factor) / ln(original)) unless rope_scaling gives one (1 when factor <= 1).
void read_longrope(DecoderConfig& c, const nlohmann::json& json, const nlohmann::json& rs, const std::string& source) {
  c.rope.type = "longrope";
  const int64_t half = c.head_dim / 2;
  for (const char* key : {"short_factor", "long_factor"}) {
    if (!rs.contains(key) || !rs[key].is_array())
      throw InvalidInputError(source + ": rope_scaling." + key + " must be a list of " + std::to_string(half) +
                              " numbers (LongRoPE)");
    std::vector<double> values;
    for (const auto& v : rs[key]) {
      if (!v.is_number()) throw InvalidInputError(source + ": rope_scaling." + key + " holds a non-number " + v.dump());
      values.push_back(v.get<double>());
    }
    if (static_cast<int64_t>(values.size()) != half)
      throw InvalidInputError(source + ": rope_scaling." + key + " has " + std::to_string(values.size()) +
                              " values; LongRoPE needs head_dim / 2 = " + std::to_string(half));
    (std::string(key) == "short_factor" ? c.rope.short_factor : c.rope.long_factor) = std::move(values);
  }
  c.rope.original_max_position_embeddings =
      get_or<int64_t>(json, "original_max_position_embeddings", c.max_position_embeddings, source);
  if (c.rope.original_max_position_embeddings <= 0 || c.max_position_embeddings <= 0)
    throw InvalidInputError(source +
                            ": LongRoPE needs positive max_position_embeddings and "
                            "original_max_position_embeddings");
  const double factor =
      static_cast<double>(c.max_position_embeddings) / static_cast<double>(c.rope.original_max_position_embeddings);
  if (rs.contains("attention_factor") && !rs["attention_factor"].is_null())
    c.rope.attention_factor = get_required<double>(rs, "attention_factor", source);
  else
    c.rope.attention_factor =
        factor <= 1.0 ? 1.0
                      : std::sqrt(1.0 + std::log(factor) /
                                            std::log(static_cast<double>(c.rope.original_max_position_embeddings)));
}

void read_rope(DecoderConfig& c, const nlohmann::json& json, const std::string& source) {
  c.rope.theta = get_or<double>(json, "rope_theta", 10000.0, source);
  // Rotary scaling variants change the maths; refuse the ones we have not implemented rather than
  // silently computing different embeddings.
  if (json.contains("rope_scaling") && !json["rope_scaling"].is_null()) {
    const auto& rs = json["rope_scaling"];
    std::string type =
        rs.is_object() ? get_or<std::string>(rs, "rope_type", get_or<std::string>(rs, "type", "", source), source) : "";
    if (c.model_type == "phi3" && (type == "longrope" || type == "su")) {
      read_longrope(c, json, rs, source);
    } else if (c.model_type == "phi3" && type == "yarn") {
      throw InvalidInputError(
          source +
          ": rope_scaling type 'yarn' for phi3 is ambiguous (transformers 4.48 computes it "
          "as LongRoPE, Phi-3's original code as YaRN with another attention factor); not supported");
    } else if (type == "longrope" || type == "su") {
      // transformers 4.48 updates the long/short switch per call for Phi-3 only; other families keep
      // the short factors for any length, which is not what a LongRoPE checkpoint was trained with.
      throw InvalidInputError(source + ": rope_scaling " + rs.dump() + " (LongRoPE) is supported for phi3 only");
    } else if (type != "default") {
      throw InvalidInputError(source + ": rope_scaling " + rs.dump() +
                              " is not supported yet (the default rotary embedding, and LongRoPE for phi3)");
    }
  }
  if (json.contains("partial_rotary_factor") && get_or<double>(json, "partial_rotary_factor", 1.0, source) != 1.0)
    throw InvalidInputError(source + ": partial_rotary_factor != 1 is not supported");
}

}  // namespace

DecoderConfig DecoderConfig::from_json(const nlohmann::json& raw, const std::string& source) {
  if (!raw.is_object()) throw InvalidInputError(source + ": config must be a JSON object");
  DecoderConfig c;
  c.model_type = get_required<std::string>(raw, "model_type", source);
  if (!is_decoder_model_type(c.model_type))
    throw InvalidInputError(source + ": decoder model_type " + quote(c.model_type) +
                            " is not supported (llama, mistral, qwen2, phi3)");
  // Keys the file omits take the defaults of that model type's config class, as in transformers.
  const auto json = with_defaults(raw, c.model_type);
  c.vocab_size = get_required<int64_t>(json, "vocab_size", source);
  c.hidden_size = get_required<int64_t>(json, "hidden_size", source);
  c.intermediate_size = get_required<int64_t>(json, "intermediate_size", source);
  c.num_hidden_layers = get_required<int64_t>(json, "num_hidden_layers", source);
  c.num_attention_heads = get_required<int64_t>(json, "num_attention_heads", source);
  c.num_key_value_heads = get_or<int64_t>(json, "num_key_value_heads", c.num_attention_heads, source);
  if (c.num_attention_heads <= 0 || c.hidden_size <= 0 || c.intermediate_size <= 0 || c.vocab_size <= 0 ||
      c.num_hidden_layers <= 0 || c.num_key_value_heads <= 0)
    throw InvalidInputError(source +
                            ": sizes (vocab_size, hidden_size, intermediate_size, num_hidden_layers, "
                            "num_attention_heads, num_key_value_heads) must be positive");
  c.head_dim = get_or<int64_t>(json, "head_dim", c.hidden_size / c.num_attention_heads, source);
  if (c.head_dim <= 0 || c.head_dim % 2 != 0)
    throw InvalidInputError(source + ": head_dim must be a positive even number (rotary pairs), got " +
                            std::to_string(c.head_dim));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    throw InvalidInputError(source + ": num_attention_heads (" + std::to_string(c.num_attention_heads) +
                            ") must be a multiple of num_key_value_heads (" + std::to_string(c.num_key_value_heads) +
                            ")");
  c.max_position_embeddings = get_or<int64_t>(json, "max_position_embeddings", 0, source);
  c.rms_norm_eps = get_or<double>(json, "rms_norm_eps", 1e-6, source);
  c.hidden_act = get_or<std::string>(json, "hidden_act", "silu", source);
  c.torch_dtype = get_or<std::string>(json, "torch_dtype", "", source);
  c.pad_token_id = optional_int(json, "pad_token_id", source);
  if (c.hidden_act != "silu")
    throw InvalidInputError(source + ": hidden_act " + quote(c.hidden_act) + " is not supported (only 'silu')");
  read_family_layout(c, json, source);
  read_rope(c, json, source);
  return c;
}

}  // namespace unime::model
