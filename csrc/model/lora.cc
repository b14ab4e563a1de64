#include "model/lora.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <regex>
#include <set>

#include "core/errors.h"
#include "core/util/strings.h"

namespace unime::model {

using core::ends_with;
using core::starts_with;

std::string hf_module_path(const Backbone& backbone, const std::string& module_path) {
  auto hf = backbone.weight_map().to_hf(module_path + ".weight");
  if (!hf || !ends_with(*hf, ".weight")) return module_path;
  return hf->substr(0, hf->size() - 7);
}

namespace {

bool in_components(const Backbone& backbone, const std::string& path, const std::vector<std::string>& names) {
  if (names.empty()) return true;
  for (const auto& c : backbone.components())
    for (const auto& n : names)
      if (c.name == n && starts_with(path, c.module_path)) return true;
  return false;
}

void check_components(const Backbone& backbone, const std::vector<std::string>& names) {
  std::vector<std::string> known;
  for (const auto& c : backbone.components()) known.push_back(c.name);
  for (const auto& n : names)
    if (std::find(known.begin(), known.end(), n) == known.end())
      throw InvalidInputError("LoRA component " + core::quote(n) + " is not part of this model (" +
                              core::join(known, ", ") + ")");
}

}  // namespace

std::vector<std::string> add_lora(Backbone& backbone, const LoraTargets& targets, const LoraConfig& config,
                                  at::ScalarType dtype, uint64_t seed) {
  config.validate();
  check_components(backbone, targets.components);
  if (targets.regex.empty() && targets.modules.empty())
    throw InvalidInputError("LoRA target_modules is empty: name the Linear layers to adapt (e.g. q_proj, v_proj)");
  std::optional<std::regex> re;
  if (!targets.regex.empty()) {
    try {
      re.emplace(targets.regex);
    } catch (const std::regex_error& e) {
      throw InvalidInputError("LoRA target_modules regex " + core::quote(targets.regex) + " is invalid: " + e.what());
    }
  }
  std::vector<std::pair<std::string, std::shared_ptr<Linear>>> chosen;
  std::set<std::string> matched_names;
  for (const auto& item : backbone.named_modules("", /*include_self=*/false)) {
    auto linear = std::dynamic_pointer_cast<Linear>(item.value());
    if (!linear || ends_with(item.key(), ".lora_A") || ends_with(item.key(), ".lora_B")) continue;
    if (!in_components(backbone, item.key(), targets.components)) continue;
    const auto hf = hf_module_path(backbone, item.key());
    bool hit = false;
    if (re) {
      hit = std::regex_match(hf, *re);
    } else {
      for (const auto& name : targets.modules)
        if (hf == name || ends_with(hf, "." + name)) hit = true, matched_names.insert(name);
    }
    if (hit) chosen.emplace_back(item.key(), linear);
  }
  if (chosen.empty())
    throw InvalidInputError(
        "LoRA target_modules " + (re ? core::quote(targets.regex) : core::join(targets.modules, ", ")) +
        " matched no Linear layer" + (targets.components.empty() ? "" : " in " + core::join(targets.components, ", ")));
  // As PEFT: names that match nothing are allowed once something matched (one target list serves
  // several families: Phi-3's qkv_proj beside Llama's q_proj). A name that no supported family uses
  // and that matched nothing is refused as a likely typo.
  static const std::set<std::string> known = {
      "q_proj",       "k_proj", "v_proj", "o_proj",   "gate_proj", "up_proj", "down_proj", "qkv_proj",
      "gate_up_proj", "fc1",    "fc2",    "out_proj", "qkv",       "proj",    "linear_1",  "linear_2"};
  if (!re)
    for (const auto& name : targets.modules)
      if (!matched_names.count(name) && !known.count(name))
        throw InvalidInputError("LoRA target module " + core::quote(name) + " matched no Linear layer");
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<std::string> paths;
  for (auto& [path, linear] : chosen) {
    if (linear->has_lora()) throw InvalidInputError(path + " already has a LoRA adapter");
    linear->add_lora(config, dtype, generator);
    paths.push_back(path);
  }
  return paths;
}

std::vector<std::pair<std::string, std::shared_ptr<Linear>>> lora_layers(Backbone& backbone) {
  std::vector<std::pair<std::string, std::shared_ptr<Linear>>> out;
  for (const auto& item : backbone.named_modules("", false))
    if (auto linear = std::dynamic_pointer_cast<Linear>(item.value()); linear && linear->has_lora())
      out.emplace_back(item.key(), linear);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> lora_parameters(Backbone& backbone) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [path, linear] : lora_layers(backbone)) {
    out.emplace_back(path + ".lora_A.weight", linear->lora_A->weight);
    out.emplace_back(path + ".lora_B.weight", linear->lora_B->weight);
  }
  return out;
}

void merge_lora(Backbone& backbone) {
  for (auto& [_, linear] : lora_layers(backbone)) linear->merge();
}

void unmerge_lora(Backbone& backbone) {
  for (auto& [_, linear] : lora_layers(backbone)) linear->unmerge();
}

}  // namespace unime::model
