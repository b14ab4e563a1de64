#include <map>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "model/backbone.h"
#include "model/decoder_backbone.h"
#include "model/llava_next.h"

namespace unime::model {
namespace {

const std::map<std::string, BackboneFactory>& factories() {
  static const std::map<std::string, BackboneFactory> table = {
      {"llama", make_decoder_backbone},
      {"mistral", make_decoder_backbone},
      {"llava_next", make_llava_next_backbone},
  };
  return table;
}

}  // namespace

int64_t Backbone::image_token_count(int64_t, int64_t) const {
  throw InvalidInputError("this model takes no images (text-only backbone)");
}

std::vector<std::string> supported_model_types() {
  std::vector<std::string> out;
  for (const auto& [name, _] : factories()) out.push_back(name);
  return out;
}

std::shared_ptr<Backbone> create_backbone(const nlohmann::json& config, const std::string& source) {
  auto it = config.find("model_type");
  if (it == config.end() || !it->is_string()) throw InvalidInputError(source + ": no string field 'model_type'");
  auto type = it->get<std::string>();
  auto found = factories().find(type);
  if (found == factories().end()) {
    std::string known;
    for (const auto& name : supported_model_types()) known += (known.empty() ? "" : ", ") + name;
    throw InvalidInputError(source + ": model_type '" + type + "' is not supported (supported: " + known + ")");
  }
  return found->second(config, source);
}

}  // namespace unime::model
