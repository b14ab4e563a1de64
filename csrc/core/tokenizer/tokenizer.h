// unime::core::Tokenizer: Hugging Face tokenizer.json tokenization in plain C++ (no Python, no
// LibTorch), giving the same ids as the Rust `tokenizers` library for the supported components.
//
// Pipeline of encode(text):
//   1. guards: UTF-8 validity, and the length limit (in characters) before any work;
//   2. added tokens with normalized=false are split out of the raw text (added_tokens.h);
//   3. every other piece is normalised on its own (normalizer.h), then added tokens with
//      normalized=true are split out of it;
//   4. the remaining pieces are pre-tokenized into words (pre_tokenizer.h);
//   5. each word goes through the BPE model (bpe_model.h);
//   6. with truncation set, the ids are cut to max_length minus what step 7 adds;
//   7. with add_special_tokens, the post-processor's template adds BOS/EOS (post_processor.h).
// Components a tokenizer.json names that this implementation does not have are refused at load
// with an InvalidInputError naming the component and its JSON path; nothing is skipped silently.
//
// A loaded Tokenizer is immutable: every method is const and safe to call from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tokenizer/added_tokens.h"
#include "core/tokenizer/bpe_model.h"
#include "core/tokenizer/token_decoder.h"
#include "core/tokenizer/normalizer.h"
#include "core/tokenizer/post_processor.h"
#include "core/tokenizer/pre_tokenizer.h"

namespace unime::core {

struct Truncation {
  size_t max_length = 0;
  bool left = false;  // keep the last tokens instead of the first ("direction": "Left")
};

class Tokenizer {
 public:
  // Default limit on the input length, in Unicode characters (code points).
  static constexpr size_t kDefaultMaxInputChars = 1'000'000;

  // FileNotFoundError if `path` does not exist; InvalidInputError for malformed JSON, a missing or
  // mistyped field (named by its JSON path) or an unsupported component.
  static Tokenizer from_file(const std::string& path);
  static Tokenizer from_string(std::string_view json_text);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Ids of `text`. InvalidInputError if `text` is not well-formed UTF-8 (naming the byte offset)
  // or longer than max_input_chars() characters (checked before any tokenization).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;

  // encode() of every text on `num_threads` threads (0: the hardware's thread count). Errors are
  // rethrown with the index of the failing input; all lengths are checked before any work.
  std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string_view>& texts,
                                                 bool add_special_tokens = true, size_t num_threads = 0) const;

  // Text of `ids`: tokens through the decoder (joined by spaces when there is none). Ids with no
  // token are skipped, as in tokenizers; skip_special_tokens drops added tokens marked special.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = true) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  // Distinct tokens: the model's plus added tokens not in it (tokenizers' get_vocab_size(true)).
  size_t vocab_size(bool with_added_tokens = true) const;
  const AddedVocabulary& added_tokens() const { return added_; }

  const std::optional<Truncation>& truncation() const { return truncation_; }
  void set_truncation(std::optional<Truncation> truncation);  // max_length must be > 0
  size_t max_input_chars() const { return max_input_chars_; }
  void set_max_input_chars(size_t limit) { max_input_chars_ = limit; }  // 0: no limit

 private:
  Tokenizer() = default;
  void check_length(std::string_view text, const std::string& what) const;
  std::vector<int32_t> encode_checked(std::string_view text, bool add_special_tokens) const;
  void encode_piece(std::string_view text, bool at_start, std::vector<int32_t>& ids) const;

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  AddedVocabulary added_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<TokenDecoder> decoder_;
  std::optional<Truncation> truncation_;
  size_t max_input_chars_ = kDefaultMaxInputChars;
};

}  // namespace unime::core
