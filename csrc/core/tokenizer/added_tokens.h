// Added tokens (tokenizer.json "added_tokens"): strings matched in the input before the model
// runs, each with its own id and flags, as Hugging Face tokenizers' AddedVocabulary does.
//
// Ids are assigned as tokenizers assigns them when it loads a file (the "id" fields are not
// trusted): in file order, a token already in the model vocabulary keeps the model's id, a repeated
// content keeps its first id, and a new one gets max(model vocabulary size, last new id + 1).
//
// Matching: tokens with normalized=false are found in the raw input; the pieces between them are
// normalised, and tokens with normalized=true are then found in those pieces, their patterns being
// the normaliser's output for their content. Among matches the leftmost wins, then the longest.
//   single_word  the match counts only if no word character (\w) touches it on either side;
//   lstrip       whitespace before the match joins the token (not past the previous match);
//   rstrip       whitespace after the match joins the token.
// Matching ignores `special`: special tokens in the text are always recognised; `special` only
// decides what decode(skip_special_tokens=true) drops.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace unime::core {

class BpeModel;
class Normalizer;

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false, lstrip = false, rstrip = false, normalized = true, single_word = false;
};

// A [begin, end) byte range of some text, and the added token's id there or -1 for plain text.
struct Span {
  size_t begin, end;
  int32_t id;
};

// Leftmost-longest literal matcher over a fixed set of patterns.
class TokenMatcher {
 public:
  void add(std::string pattern, int32_t token_index);
  bool empty() const { return patterns_.empty(); }
  // The leftmost-longest match starting at or after `from`: sets begin/end/token and returns true.
  bool find(std::string_view text, size_t from, size_t* begin, size_t* end, int32_t* token) const;

 private:
  struct Pattern {
    std::string text;
    int32_t token;
  };
  std::vector<Pattern> patterns_;                   // longest first within each first byte
  std::array<std::vector<uint32_t>, 256> by_byte_;  // first byte -> indices into patterns_
};

class AddedVocabulary {
 public:
  // Parses the "added_tokens" array; `model` gives existing ids, `normalizer` (may be null) the
  // patterns of normalized tokens.
  static AddedVocabulary from_json(const nlohmann::json& list, const BpeModel& model, const Normalizer* normalizer);

  // Splits raw input on the tokens with normalized=false.
  void split_raw(std::string_view text, std::vector<Span>& out) const { split(raw_, text, out); }
  // Splits an already normalised piece on the tokens with normalized=true.
  void split_normalized(std::string_view text, std::vector<Span>& out) const { split(normalized_, text, out); }
  bool has_normalized() const { return !normalized_.empty(); }

  const AddedToken* by_id(int32_t id) const;
  int32_t id_of(std::string_view content) const;  // -1 if not an added token
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  void split(const TokenMatcher& matcher, std::string_view text, std::vector<Span>& out) const;

  std::vector<AddedToken> tokens_;  // distinct contents, file order
  std::unordered_map<std::string, size_t> by_content_;
  std::unordered_map<int32_t, size_t> by_id_;
  TokenMatcher raw_, normalized_;
};

}  // namespace unime::core
