// A table between Hugging Face checkpoint tensor names and unime module parameter paths.
//
// Each rule pairs an HF pattern with a module pattern; "{L}" stands for a layer number and must
// appear in both. Prefixes are prepended to every pattern on each side (HF: "model." for
// LlamaForCausalLM, "language_model.model." for LLaVA; module: the submodule's path, e.g.
// "decoder."), so one table serves every wrapper of a component.
// Names the model does not need (lm_head, rotary inv_freq buffers) are listed as ignorable so
// that they are reported separately from truly unexpected tensors.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace unime::model {

struct WeightRule {
  std::string hf;      // e.g. "layers.{L}.self_attn.q_proj.weight" (below the prefix)
  std::string module;  // e.g. "layers.{L}.self_attn.q_proj.weight"
};

class WeightMap {
 public:
  WeightMap(std::vector<WeightRule> rules, std::string hf_prefix = "", std::string module_prefix = "",
            std::vector<std::string> ignorable = {});

  // Maps a module parameter path to its HF name, or nullopt when no rule matches.
  std::optional<std::string> to_hf(const std::string& module_path) const;
  // Maps an HF tensor name to the module parameter path, or nullopt when no rule matches.
  std::optional<std::string> to_module(const std::string& hf_name) const;
  // True for HF names that are known and deliberately not loaded (full names, with prefix rules).
  bool is_ignorable(const std::string& hf_name) const;

  // The same rules under other prefixes, with that wrapper's own ignorable names.
  WeightMap with_prefixes(std::string hf_prefix, std::string module_prefix, std::vector<std::string> ignorable) const;
  // Every rule, for tests that walk the table in both directions.
  const std::vector<WeightRule>& rules() const { return rules_; }

 private:
  std::vector<WeightRule> rules_;
  std::string hf_prefix_, module_prefix_;
  std::vector<std::string> ignorable_;  // full-name patterns, may contain {L}
};

// Matches `name` against `pattern` where "{L}" matches a run of decimal digits; on success stores
// the digits in *layer (if non-null). Exposed for tests.
bool match_pattern(const std::string& pattern, const std::string& name, std::string* layer);

}  // namespace unime::model
