// Normalizers of tokenizer.json ("normalizer"): text -> text, applied to each piece of input that
// is not an added token (Hugging Face tokenizers normalises those pieces independently, which is
// why the legacy Llama "Prepend(▁)" puts a "▁" after every special token).
//
// Supported types: Sequence, Prepend, Replace (String pattern), NFC, NFD, Strip. Any other type, or
// a Replace with a Regex pattern, is refused with an InvalidInputError that names it. Offsets are
// not tracked: the tokenizer returns ids only.
#pragma once

#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace unime::core {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Rewrites `text` (well-formed UTF-8) in place. Thread-safe: normalizers are immutable.
  virtual void normalize(std::string& text) const = 0;
};

// Builds the normalizer described by `config` (a JSON object with "type"); null JSON gives
// nullptr. `where` is the JSON path used in error messages, e.g. "normalizer".
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& config, const std::string& where);

// Replaces every non-overlapping occurrence of `pattern` (non-empty) in `text`, left to right.
void replace_all(std::string& text, const std::string& pattern, const std::string& content);

}  // namespace unime::core
