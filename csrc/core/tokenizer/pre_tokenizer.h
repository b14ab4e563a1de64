// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): split a normalised piece of input into the
// words the model tokenises independently.
//
// Supported types: Sequence, Metaspace (prepend_scheme always/first/never, split or not),
// Split (String pattern, or one of the regexes of split_regex.h; every behavior; invert), and
// ByteLevel (add_prefix_space, use_regex). Others are refused with an InvalidInputError naming the
// type. Offsets are not tracked: the tokenizer returns ids only.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace unime::core {

// One piece of text on its way through pre-tokenization.
struct Piece {
  std::string text;  // well-formed UTF-8
  // The piece begins at byte 0 of the original input (Metaspace's prepend_scheme "first").
  bool at_start = false;
  // The model must see each byte of `text` through the GPT-2 byte -> character table (set by
  // ByteLevel, which leaves the mapping to the model so that no mapped copy is built).
  bool byte_level = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their split. Empty pieces are dropped, as in tokenizers.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

// Builds the pre-tokenizer described by `config`; null JSON gives nullptr. `where` is the JSON
// path used in error messages.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& config, const std::string& where);

// The GPT-2 byte -> character table: bytes that are printable Latin-1 map to themselves, the
// others to U+0100 + k in byte order. byte_level_char(b) is the UTF-8 of that character.
const std::string& byte_level_char(unsigned char b);
// The inverse: the byte of a table character, or -1.
int byte_level_byte(uint32_t cp);
// `text` with every byte mapped through the table.
std::string byte_level_encode(std::string_view text);

}  // namespace unime::core
