#include "model/weight_map.h"

#include <cctype>
#include <stdexcept>

namespace unime::model {

bool match_pattern(const std::string& pattern, const std::string& name, std::string* layer) {
  static const std::string kLayer = "{L}";
  auto at = pattern.find(kLayer);
  if (at == std::string::npos) return pattern == name;
  const auto head = pattern.substr(0, at), tail = pattern.substr(at + kLayer.size());
  if (name.size() <= head.size() + tail.size()) return false;
  if (name.compare(0, head.size(), head) != 0) return false;
  if (name.compare(name.size() - tail.size(), tail.size(), tail) != 0) return false;
  auto digits = name.substr(head.size(), name.size() - head.size() - tail.size());
  for (char ch : digits)
    if (!std::isdigit(static_cast<unsigned char>(ch))) return false;
  // "01" is not layer 1: reject leading zeros so the mapping stays one-to-one.
  if (digits.size() > 1 && digits[0] == '0') return false;
  if (layer) *layer = digits;
  return true;
}

namespace {
std::string substitute(const std::string& pattern, const std::string& layer) {
  auto at = pattern.find("{L}");
  if (at == std::string::npos) return pattern;
  return pattern.substr(0, at) + layer + pattern.substr(at + 3);
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// The HF pattern (below the prefix) of `module_path` in `section`, with the layer substituted.
std::optional<std::string> hf_suffix(const WeightSection& section, const std::string& module_path) {
  if (!starts_with(module_path, section.module_prefix)) return std::nullopt;
  const auto rest = module_path.substr(section.module_prefix.size());
  std::string layer;
  for (const auto& r : section.rules)
    if (match_pattern(r.module, rest, &layer)) return substitute(r.hf, layer);
  return std::nullopt;
}
}  // namespace

WeightMap::WeightMap(std::vector<WeightRule> rules, std::string hf_prefix, std::string module_prefix,
                     std::vector<std::string> ignorable)
    : sections_{{std::move(rules), {std::move(hf_prefix)}, std::move(module_prefix)}},
      ignorable_(std::move(ignorable)) {}

WeightMap::WeightMap(std::vector<WeightSection> sections, std::vector<std::string> ignorable)
    : sections_(std::move(sections)), ignorable_(std::move(ignorable)) {
  for (const auto& s : sections_)
    if (s.hf_prefixes.empty()) throw std::logic_error("weight-map section without an HF prefix");
}

std::optional<std::string> WeightMap::to_hf(const std::string& module_path) const {
  auto all = hf_candidates(module_path);
  if (all.empty()) return std::nullopt;
  return all.front();
}

std::vector<std::string> WeightMap::hf_candidates(const std::string& module_path) const {
  for (const auto& section : sections_)
    if (auto suffix = hf_suffix(section, module_path)) {
      std::vector<std::string> out;
      for (const auto& prefix : section.hf_prefixes) out.push_back(prefix + *suffix);
      return out;
    }
  return {};
}

std::optional<std::string> WeightMap::to_module(const std::string& hf_name) const {
  std::string layer;
  for (const auto& section : sections_)
    for (const auto& prefix : section.hf_prefixes) {
      if (!starts_with(hf_name, prefix)) continue;
      const auto rest = hf_name.substr(prefix.size());
      for (const auto& r : section.rules)
        if (match_pattern(r.hf, rest, &layer)) return section.module_prefix + substitute(r.module, layer);
    }
  return std::nullopt;
}

bool WeightMap::is_ignorable(const std::string& hf_name) const {
  for (const auto& p : ignorable_)
    if (match_pattern(p, hf_name, nullptr)) return true;
  return false;
}

WeightMap WeightMap::with_prefixes(std::string hf_prefix, std::string module_prefix,
                                   std::vector<std::string> ignorable) const {
  if (sections_.size() != 1) throw std::logic_error("with_prefixes needs a single-section weight map");
  return WeightMap(rules(), std::move(hf_prefix), std::move(module_prefix), std::move(ignorable));
}

}  // namespace unime::model
