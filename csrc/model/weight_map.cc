#include "model/weight_map.h"

#include <cctype>
#include <stdexcept>

#include "core/util/strings.h"

namespace unime::model {

using core::starts_with;

namespace {
constexpr const char* kLayer = "{L}";

// Length of the layer number at the start of `s` (digits, no leading zero: "01" is not layer 1,
// which keeps the mapping one-to-one), or 0.
size_t layer_digits(const std::string& s, size_t from) {
  size_t end = from;
  while (end < s.size() && std::isdigit(static_cast<unsigned char>(s[end]))) ++end;
  if (end == from || (end - from > 1 && s[from] == '0')) return 0;
  return end - from;
}

std::string substitute(const std::string& pattern, const std::string& layer) {
  auto at = pattern.find(kLayer);
  if (at == std::string::npos) return pattern;
  return pattern.substr(0, at) + layer + pattern.substr(at + 3);
}
}  // namespace

std::optional<std::string> match_prefix(const std::string& pattern, const std::string& name, std::string* layer) {
  size_t consumed = 0;
  const auto at = pattern.find(kLayer);
  if (at == std::string::npos) {
    if (!starts_with(name, pattern)) return std::nullopt;
    consumed = pattern.size();
  } else {
    const auto head = pattern.substr(0, at), tail = pattern.substr(at + 3);
    if (!starts_with(name, head)) return std::nullopt;
    const size_t digits = layer_digits(name, head.size());
    if (digits == 0) return std::nullopt;
    if (name.compare(head.size() + digits, tail.size(), tail) != 0) return std::nullopt;
    if (layer) *layer = name.substr(head.size(), digits);
    consumed = head.size() + digits + tail.size();
  }
  if (consumed != name.size() && name[consumed] != '.') return std::nullopt;
  return name.substr(consumed);
}

bool match_pattern(const std::string& pattern, const std::string& name, std::string* layer) {
  auto rest = match_prefix(pattern, name, layer);
  return rest && rest->empty();
}

namespace {
struct Match {
  std::string mapped;  // the other side's name, prefix included
  size_t specificity = 0;
};

// The best rule of `section` for `name` (below its prefix), mapping `from` side to `to` side.
std::optional<Match> best_rule(const WeightSection& section, const std::string& name, bool hf_to_module) {
  std::optional<Match> best;
  std::string layer;
  for (const auto& r : section.rules) {
    const auto& from = hf_to_module ? r.hf : r.module;
    const auto& to = hf_to_module ? r.module : r.hf;
    auto rest = match_prefix(from, name, &layer);
    if (!rest) continue;
    if (!best || from.size() > best->specificity) best = Match{substitute(to, layer) + *rest, from.size()};
  }
  return best;
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
  const WeightSection* section = nullptr;
  std::optional<Match> best;
  for (const auto& s : sections_) {
    if (!starts_with(module_path, s.module_prefix)) continue;
    auto m = best_rule(s, module_path.substr(s.module_prefix.size()), /*hf_to_module=*/false);
    if (m && (!best || m->specificity + s.module_prefix.size() > best->specificity)) {
      best = Match{m->mapped, m->specificity + s.module_prefix.size()};
      section = &s;
    }
  }
  if (!best) return {};
  std::vector<std::string> out;
  for (const auto& prefix : section->hf_prefixes) out.push_back(prefix + best->mapped);
  return out;
}

std::optional<std::string> WeightMap::to_module(const std::string& hf_name) const {
  std::optional<Match> best;
  for (const auto& section : sections_)
    for (const auto& prefix : section.hf_prefixes) {
      if (!starts_with(hf_name, prefix)) continue;
      auto m = best_rule(section, hf_name.substr(prefix.size()), /*hf_to_module=*/true);
      if (m && (!best || m->specificity + prefix.size() > best->specificity))
        best = Match{section.module_prefix + m->mapped, m->specificity + prefix.size()};
    }
  if (!best) return std::nullopt;
  return best->mapped;
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
