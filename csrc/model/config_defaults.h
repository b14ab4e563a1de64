// Defaults of Hugging Face config classes (transformers 4.48.3), applied to config.json sections
// that omit keys, as transformers does when it builds a config from a dict.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace unime::model {

// {"llama": {...}, "mistral": {...}, "phi3": {...}, "qwen2": {...}, "clip_vision_model": {...}, "llava_next": {...},
//  "llava_next.vision_config": {...}}: literal __init__ defaults only (derived values such as
// head_dim are computed by the config readers). Generated: tools/gen_config_defaults.py.
const nlohmann::json& config_defaults();

}  // namespace unime::model
