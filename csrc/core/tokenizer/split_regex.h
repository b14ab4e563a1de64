// The pre-tokenizer regexes of byte-level BPE tokenizers, as hand-written matchers.
//
// tokenizer.json's Split pre-tokenizer carries an Oniguruma regex. Rather than embedding a regex
// engine, unime recognises the patterns that the supported families ship, by exact text, and runs
// an equivalent matcher (leftmost-first alternation with backtracking, worked out per pattern in
// split_regex.cc). Any other pattern is refused by the factory with an error naming it.
//   kQwen2  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//           \s*[\r\n]+|\s+(?!\S)|\s+                       (Qwen2 / Qwen2-VL)
//   kLlama3 the same with \p{N}{1,3}                        (Llama-3, tiktoken's cl100k family)
//   kGpt2   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//           (GPT-2; what ByteLevel(use_regex=true) splits with)
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace unime::core {

class SplitRegex {
 public:
  enum class Kind { kQwen2, kLlama3, kGpt2 };

  // The matcher for `pattern`, or nullopt if the pattern is not one of the known ones.
  static std::optional<SplitRegex> from_pattern(std::string_view pattern);
  static SplitRegex gpt2() { return SplitRegex(Kind::kGpt2); }

  // Appends the [begin, end) byte ranges of every match in well-formed UTF-8 `text`, in order.
  // These patterns match every character, so the ranges tile `text` exactly.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

  Kind kind() const { return kind_; }

 private:
  explicit SplitRegex(Kind kind) : kind_(kind) {}
  Kind kind_;
};

}  // namespace unime::core
