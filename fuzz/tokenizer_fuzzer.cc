// libFuzzer target for the tokenizer (build and run: tools/run_fuzz.sh).
//
// Two kinds of input, told apart by the first byte:
//   '{'   a tokenizer.json: loaded with Tokenizer::from_string; if it loads, a few fixed texts are
//         encoded and their ids decoded;
//   else  text (any bytes, often invalid UTF-8) encoded by two fixed tokenizers that cover the
//         supported components: a Llama-style one (legacy normaliser, byte fallback, added tokens
//         with every flag, template, decoders) and a Qwen2-style byte-level one (NFC, the Split
//         regex, ByteLevel); the ids are decoded, and the text's bytes are also decoded as ids.
// Rejections must be unime::InvalidInputError; any other exception escaping means a validation
// gap and aborts the run. Invariants of accepted input trap when violated.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.h"
#include "core/tokenizer/pre_tokenizer.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/utf8.h"

namespace {

using nlohmann::json;
using unime::core::Tokenizer;

#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

json added(const char* content, int id, bool special, bool normalized, bool lstrip, bool rstrip, bool single_word) {
  return {{"id", id},         {"content", content}, {"special", special},        {"normalized", normalized},
          {"lstrip", lstrip}, {"rstrip", rstrip},   {"single_word", single_word}};
}

json llama_like() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  std::vector<std::string> pieces = {"▁", "a", "b", "c", "d", "e", " ", "▁a", "ab", "abc", "▁ab", "ca", "\xE4\xB8\xAD"};
  for (const auto& p : pieces) vocab[p] = int(vocab.size());
  json merges = json::array({json::array({"a", "b"}), json::array({"▁", "a"}), json::array({"ab", "c"}),
                             json::array({"▁a", "b"}), json::array({"c", "a"})});
  return {
      {"added_tokens",
       json::array(
           {added("<unk>", 0, true, false, false, false, false), added("<s>", 1, true, false, false, false, false),
            added("<img>", 400, true, false, true, true, false), added("<|u|>", 401, true, false, false, true, false),
            added("ca", 402, false, true, false, false, true), added("e e", 403, false, true, true, false, false)})},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "▁"}},
                                     {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}})}}},
      {"pre_tokenizer", nullptr},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"vocab", vocab},
        {"merges", merges}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                                  {{"type", "ByteFallback"}},
                                  {{"type", "Fuse"}},
                                  {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
  };
}

json qwen_like() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[unime::core::byte_level_char(uint8_t(b))] = b;
  vocab["\xC4\xA0t"] = 256;  // "Ġt"
  vocab["he"] = 257;
  vocab["\xC4\xA0the"] = 258;
  json merges =
      json::array({json::array({"\xC4\xA0", "t"}), json::array({"h", "e"}), json::array({"\xC4\xA0t", "he"})});
  const char* pattern =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  return {
      {"added_tokens", json::array({added("<|im_start|>", 259, true, false, false, false, false)})},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array(
             {{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"vocab", vocab}, {"merges", merges}}},
      {"post_processor", {{"type", "ByteLevel"}}},
      {"decoder", {{"type", "ByteLevel"}}},
  };
}

// fixed: one of the well-formed tokenizers above. For those, every id has a token and the only
// encode errors are the input's (invalid UTF-8, too long). A fuzzed file may name template ids
// that are in no vocabulary (tokenizers accepts that too) and may fail at encode time for its own
// reasons (e.g. an unk_token missing from the vocabulary when the input needs it, which
// tokenizers also reports as an error): a clean InvalidInputError is the contract there.
void exercise(const Tokenizer& t, std::string_view text, bool fixed) {
  for (bool special : {true, false}) {
    std::vector<int32_t> ids;
    try {
      ids = t.encode(text, special);
    } catch (const unime::InvalidInputError&) {
      if (fixed)
        FUZZ_CHECK(unime::core::utf8::find_invalid(text) != std::string_view::npos ||
                   unime::core::utf8::count_chars(text) > t.max_input_chars());
      continue;
    }
    if (fixed) {
      for (int32_t id : ids) FUZZ_CHECK(t.id_to_token(id).has_value());
    }
    std::string decoded = t.decode(ids, !special);
    FUZZ_CHECK(unime::core::utf8::find_invalid(decoded) == std::string::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (!input.empty() && input[0] == '{') {
    try {
      Tokenizer t = Tokenizer::from_string(input);
      t.set_max_input_chars(4096);
      for (const char* text : {"", "Hello world", " a  b\n\tc ", "\xE4\xB8\xAD\xE6\x96\x87 e\xCC\x81", "<s><img>ab</s>",
                               "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9"}) {
        exercise(t, text, false);
      }
    } catch (const unime::InvalidInputError&) {
    }
    return 0;
  }
  static const Tokenizer llama = Tokenizer::from_string(llama_like().dump());
  static const Tokenizer qwen = Tokenizer::from_string(qwen_like().dump());
  exercise(llama, input, true);
  exercise(qwen, input, true);
  // The bytes as ids too: decode must take any id list.
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 2 <= size && ids.size() < 512; i += 2) ids.push_back(int32_t(data[i]) * 2 + data[i + 1] - 8);
  FUZZ_CHECK(unime::core::utf8::find_invalid(llama.decode(ids, false)) == std::string::npos);
  FUZZ_CHECK(unime::core::utf8::find_invalid(qwen.decode(ids, false)) == std::string::npos);
  return 0;
}
