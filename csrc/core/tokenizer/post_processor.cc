// TemplateProcessing and friends (see post_processor.h).
#include "core/tokenizer/post_processor.h"

#include <map>

#include "core/tokenizer/json_fields.h"

namespace unime::core {
namespace {

using json_fields::fail;

// special_tokens: {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}, ...}
std::map<std::string, std::vector<int32_t>> parse_special_tokens(const nlohmann::json& config,
                                                                 const std::string& where) {
  std::map<std::string, std::vector<int32_t>> out;
  const auto& specials = json_fields::require(config, "special_tokens", where);
  if (!specials.is_object()) fail(where + ".special_tokens", "expected an object");
  for (auto it = specials.begin(); it != specials.end(); ++it) {
    std::string at = where + ".special_tokens[\"" + it.key() + "\"]";
    const auto& ids = json_fields::require(it.value(), "ids", at);
    if (!ids.is_array()) fail(at + ".ids", "expected an array of ids");
    std::vector<int32_t> v;
    for (const auto& id : ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
        fail(at + ".ids", "expected non-negative 32-bit integer ids");
      }
      v.push_back(int32_t(id.get<int64_t>()));
    }
    out[it.key()] = std::move(v);
  }
  return out;
}

}  // namespace

std::unique_ptr<PostProcessor> PostProcessor::from_json(const nlohmann::json& config, const std::string& where) {
  if (config.is_null()) return nullptr;
  auto p = std::make_unique<PostProcessor>();
  p->append(config, where);
  return p;
}

void PostProcessor::append(const nlohmann::json& config, const std::string& where) {
  std::string type = json_fields::get_type(config, where);
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    const auto& list = json_fields::require(config, "processors", where);
    if (!list.is_array()) fail(where + ".processors", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) append(list[i], where + ".processors[" + std::to_string(i) + "]");
    return;
  }
  if (type != "TemplateProcessing") {
    fail(where, "unsupported component: post_processor type \"" + type + "\"");
  }
  if (has_template_) fail(where, "unsupported component: more than one TemplateProcessing");
  has_template_ = true;
  auto specials = parse_special_tokens(config, where);
  const auto& single = json_fields::require(config, "single", where);
  if (!single.is_array()) fail(where + ".single", "expected an array");
  int sequences = 0;
  for (size_t i = 0; i < single.size(); ++i) {
    std::string at = where + ".single[" + std::to_string(i) + "]";
    const auto& item = single[i];
    if (item.is_object() && item.contains("SpecialToken")) {
      std::string id = json_fields::get_string(item["SpecialToken"], "id", at + ".SpecialToken");
      auto it = specials.find(id);
      if (it == specials.end()) fail(at, "special token \"" + id + "\" is not in special_tokens");
      single_.push_back({false, it->second});
    } else if (item.is_object() && item.contains("Sequence")) {
      std::string id = json_fields::get_string(item["Sequence"], "id", at + ".Sequence");
      if (id != "A") fail(at, "the single template can only hold sequence A, got \"" + id + "\"");
      single_.push_back({true, {}});
      ++sequences;
    } else {
      fail(at, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    }
  }
  if (sequences != 1) fail(where + ".single", "must hold sequence A exactly once");
}

size_t PostProcessor::added_count() const {
  size_t n = 0;
  for (const auto& item : single_) n += item.ids.size();
  return n;
}

std::vector<int32_t> PostProcessor::process(std::vector<int32_t> ids) const {
  if (!has_template_) return ids;
  std::vector<int32_t> out;
  out.reserve(ids.size() + added_count());
  for (const auto& item : single_) {
    if (item.is_sequence) {
      out.insert(out.end(), ids.begin(), ids.end());
    } else {
      out.insert(out.end(), item.ids.begin(), item.ids.end());
    }
  }
  return out;
}

}  // namespace unime::core
