#include "model/weight_map.h"

#include <cctype>

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
}  // namespace

WeightMap::WeightMap(std::vector<WeightRule> rules, std::string hf_prefix, std::string module_prefix,
                     std::vector<std::string> ignorable)
    : rules_(std::move(rules)),
      hf_prefix_(std::move(hf_prefix)),
      module_prefix_(std::move(module_prefix)),
      ignorable_(std::move(ignorable)) {}

namespace {
// Maps `name` (which must start with `from_prefix`) through the first rule whose `from` side matches.
std::optional<std::string> translate(const std::vector<WeightRule>& rules, const std::string& name,
                                     const std::string& from_prefix, const std::string& to_prefix, bool to_hf) {
  if (name.compare(0, from_prefix.size(), from_prefix) != 0) return std::nullopt;
  const auto rest = name.substr(from_prefix.size());
  std::string layer;
  for (const auto& r : rules)
    if (match_pattern(to_hf ? r.module : r.hf, rest, &layer)) return to_prefix + substitute(to_hf ? r.hf : r.module, layer);
  return std::nullopt;
}
}  // namespace

std::optional<std::string> WeightMap::to_hf(const std::string& module_path) const {
  return translate(rules_, module_path, module_prefix_, hf_prefix_, /*to_hf=*/true);
}

std::optional<std::string> WeightMap::to_module(const std::string& hf_name) const {
  return translate(rules_, hf_name, hf_prefix_, module_prefix_, /*to_hf=*/false);
}

bool WeightMap::is_ignorable(const std::string& hf_name) const {
  for (const auto& p : ignorable_)
    if (match_pattern(p, hf_name, nullptr)) return true;
  return false;
}

WeightMap WeightMap::with_prefixes(std::string hf_prefix, std::string module_prefix,
                                   std::vector<std::string> ignorable) const {
  return WeightMap(rules_, std::move(hf_prefix), std::move(module_prefix), std::move(ignorable));
}

}  // namespace unime::model
