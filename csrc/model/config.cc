#include "model/config.h"

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/json_file.h"
#include "model/config_defaults.h"

namespace unime::model {

using core::get_or;
using core::get_required;

nlohmann::json with_defaults(const nlohmann::json& config, const std::string& table) {
  nlohmann::json out = config;
  const auto& defaults = config_defaults();
  if (auto it = defaults.find(table); it != defaults.end())
    for (const auto& [key, value] : it->items())
      if (!out.contains(key)) out[key] = value;
  return out;
}

DecoderConfig DecoderConfig::from_json(const nlohmann::json& raw, const std::string& source) {
  if (!raw.is_object()) throw InvalidInputError(source + ": config must be a JSON object");
  DecoderConfig c;
  c.model_type = get_required<std::string>(raw, "model_type", source);
  if (c.model_type != "llama" && c.model_type != "mistral")
    throw InvalidInputError(source + ": decoder model_type '" + c.model_type + "' is not supported (llama, mistral)");
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
    throw InvalidInputError(source + ": sizes (vocab_size, hidden_size, intermediate_size, num_hidden_layers, "
                            "num_attention_heads, num_key_value_heads) must be positive");
  c.head_dim = get_or<int64_t>(json, "head_dim", c.hidden_size / c.num_attention_heads, source);
  if (c.head_dim <= 0 || c.head_dim % 2 != 0)
    throw InvalidInputError(source + ": head_dim must be a positive even number (rotary pairs), got " +
                            std::to_string(c.head_dim));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    throw InvalidInputError(source + ": num_attention_heads (" + std::to_string(c.num_attention_heads) +
                            ") must be a multiple of num_key_value_heads (" +
                            std::to_string(c.num_key_value_heads) + ")");
  c.rms_norm_eps = get_or<double>(json, "rms_norm_eps", 1e-6, source);
  c.rope_theta = get_or<double>(json, "rope_theta", 10000.0, source);
  c.attention_bias = get_or<bool>(json, "attention_bias", false, source);
  c.mlp_bias = get_or<bool>(json, "mlp_bias", false, source);
  c.hidden_act = get_or<std::string>(json, "hidden_act", "silu", source);
  c.torch_dtype = get_or<std::string>(json, "torch_dtype", "", source);
  if (c.hidden_act != "silu")
    throw InvalidInputError(source + ": hidden_act '" + c.hidden_act + "' is not supported (only 'silu')");
  if (c.model_type == "mistral") {
    if (json.contains("sliding_window") && !json["sliding_window"].is_null())
      c.sliding_window = get_required<int64_t>(json, "sliding_window", source);
  }
  // Rotary scaling variants change the maths; refuse the ones we have not implemented rather than
  // silently computing different embeddings.
  if (json.contains("rope_scaling") && !json["rope_scaling"].is_null()) {
    const auto& rs = json["rope_scaling"];
    std::string type = rs.is_object() ? get_or<std::string>(rs, "rope_type", get_or<std::string>(rs, "type", "", source), source) : "";
    if (type != "default")
      throw InvalidInputError(source + ": rope_scaling " + rs.dump() + " is not supported yet (only the default rotary embedding)");
  }
  if (json.contains("partial_rotary_factor") && get_or<double>(json, "partial_rotary_factor", 1.0, source) != 1.0)
    throw InvalidInputError(source + ": partial_rotary_factor != 1 is not supported");
  return c;
}

}  // namespace unime::model
