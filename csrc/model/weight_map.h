// A table between Hugging Face checkpoint tensor names and unime module parameter paths.
//
// A map has sections; each pairs a rule table with prefixes. A rule pairs an HF module path with a
// unime module path, "{L}" standing for a layer number on both sides. A rule maps a module prefix:
// "layers.{L}" <-> "layers.{L}" covers "layers.3.self_attn.q_proj.weight", its bias, and the LoRA
// adapters PEFT names "layers.3.self_attn.q_proj.lora_A.weight", because everything after the
// matched prefix (at a "." boundary) passes through unchanged. The most specific (longest) rule
// wins, so a table lists only the places where the two naming schemes differ.
//
// A section's module prefix is the submodule's path ("decoder."); its HF prefixes are the places
// that component is stored in the checkpoints we accept, the first being canonical:
// "language_model.model." (transformers <= 4.51 LLaVA) and "model.language_model." (newer) for the
// same decoder. One table thus serves every wrapper and layout of a component. Names the model
// does not need (lm_head, rotary inv_freq buffers) are listed as ignorable so that they are
// reported apart from truly unexpected tensors.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace unime::model {

struct WeightRule {
  std::string hf;      // e.g. "encoder.layers.{L}.self_attn.q_proj" (below the section's prefix)
  std::string module;  // e.g. "layers.{L}.q_proj"
};

struct WeightSection {
  std::vector<WeightRule> rules;
  std::vector<std::string> hf_prefixes;  // alternatives, canonical first; at least one (may be "")
  std::string module_prefix;
};

class WeightMap {
 public:
  // A single-section map.
  WeightMap(std::vector<WeightRule> rules, std::string hf_prefix = "", std::string module_prefix = "",
            std::vector<std::string> ignorable = {});
  WeightMap(std::vector<WeightSection> sections, std::vector<std::string> ignorable);

  // The canonical HF name of a module parameter, or nullopt when no rule matches.
  std::optional<std::string> to_hf(const std::string& module_path) const;
  // Every HF name the parameter may have, canonical first (one per HF prefix of its section).
  std::vector<std::string> hf_candidates(const std::string& module_path) const;
  // The module parameter path of an HF tensor name under any accepted prefix, or nullopt. The path
  // need not exist in a given module (a name under a mapped prefix always maps).
  std::optional<std::string> to_module(const std::string& hf_name) const;
  // True for HF names that are known and deliberately not loaded (full names; may contain {L}).
  bool is_ignorable(const std::string& hf_name) const;

  // A single-section map's rules under other prefixes, with that wrapper's own ignorable names.
  WeightMap with_prefixes(std::string hf_prefix, std::string module_prefix, std::vector<std::string> ignorable) const;
  // The first section's rules, for tests that walk a table in both directions.
  const std::vector<WeightRule>& rules() const { return sections_.front().rules; }
  const std::vector<WeightSection>& sections() const { return sections_; }

 private:
  std::vector<WeightSection> sections_;
  std::vector<std::string> ignorable_;
};

// Matches `name` against `pattern` where "{L}" matches a run of decimal digits without a leading
// zero; on success stores the digits in *layer (if non-null). Exposed for tests.
bool match_pattern(const std::string& pattern, const std::string& name, std::string* layer);

// Matches the start of `name` against `pattern` ({L} as above) up to a "." boundary or the end;
// on success returns the rest of the name ("" or ".suffix") and stores the digits in *layer.
std::optional<std::string> match_prefix(const std::string& pattern, const std::string& name, std::string* layer);

}  // namespace unime::model
