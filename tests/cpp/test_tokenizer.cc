// GoogleTest for csrc/core/tokenizer on small hand-written tokenizer.json files. (Parity with
// Hugging Face tokenizers on real files is tested from Python: tests/python/test_tokenizer_*.py.)
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/tokenizer/split_regex.h"
#include "core/tokenizer/tokenizer.h"
#include "core/tokenizer/unicode.h"
#include "core/tokenizer/utf8.h"

namespace unime::core {
namespace {

using Ids = std::vector<int32_t>;
using nlohmann::json;

// A character-level BPE over a..e plus merges, byte tokens for 'A' (0x41) and 0xE2 0x98 0x83
// (U+2603), and the Llama-style legacy normaliser / template / decoder.
json tiny_llama() {
  json vocab = {{"<unk>", 0}, {"<s>", 1},     {"</s>", 2},    {"▁", 3},       {"a", 4},       {"b", 5},
                {"c", 6},     {"d", 7},       {"e", 8},       {"ab", 9},      {"bc", 10},     {"abc", 11},
                {"▁a", 12},   {"<0x41>", 13}, {"<0xE2>", 14}, {"<0x98>", 15}, {"<0x83>", 16}, {"aa", 17}};
  json merges = json::array(
      {json::array({"a", "b"}), json::array({"ab", "c"}), "b c", json::array({"▁", "a"}), json::array({"a", "a"})});
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", json::array({{{"id", 0},
                                     {"content", "<unk>"},
                                     {"special", true},
                                     {"normalized", false},
                                     {"lstrip", false},
                                     {"rstrip", false},
                                     {"single_word", false}},
                                    {{"id", 1},
                                     {"content", "<s>"},
                                     {"special", true},
                                     {"normalized", false},
                                     {"lstrip", false},
                                     {"rstrip", false},
                                     {"single_word", false}},
                                    {{"id", 18},
                                     {"content", "<img>"},
                                     {"special", true},
                                     {"normalized", false},
                                     {"lstrip", true},
                                     {"rstrip", true},
                                     {"single_word", false}}})},
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
        {"pair", json::array()},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                                  {{"type", "ByteFallback"}},
                                  {{"type", "Fuse"}},
                                  {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
  };
}

Tokenizer load(const json& j) { return Tokenizer::from_string(j.dump()); }

std::string error_of(const json& j) {
  try {
    load(j);
  } catch (const InvalidInputError& e) {
    return e.what();
  }
  return "(no error)";
}

std::vector<std::string> split(const SplitRegex& re, std::string_view text) {
  std::vector<std::pair<size_t, size_t>> ranges;
  re.find_all(text, ranges);
  std::vector<std::string> out;
  for (auto [b, e] : ranges) out.emplace_back(text.substr(b, e - b));
  return out;
}

TEST(Utf8, FindsTheFirstIllFormedByte) {
  EXPECT_EQ(utf8::find_invalid("plain ascii, long enough for the 8-byte path"), std::string::npos);
  EXPECT_EQ(utf8::find_invalid("h\xC3\xA9llo \xE2\x98\x83 \xF0\x9F\x98\x80"), std::string::npos);
  EXPECT_EQ(utf8::find_invalid("ab\xFF"), 2u);
  EXPECT_EQ(utf8::find_invalid("\xC0\xAF"), 0u);                             // overlong '/'
  EXPECT_EQ(utf8::find_invalid("x\xED\xA0\x80"), 1u);                        // surrogate U+D800
  EXPECT_EQ(utf8::find_invalid("\xF4\x90\x80\x80"), 0u);                     // above U+10FFFF
  EXPECT_EQ(utf8::find_invalid("12345678\xE2\x98"), 8u);                     // truncated
  EXPECT_EQ(utf8::find_invalid(std::string("a\0b", 3)), std::string::npos);  // NUL is valid
}

TEST(Utf8, LossyRepairReplacesMaximalInvalidPrefixes) {
  EXPECT_EQ(utf8::to_valid_lossy("a\xFF"
                                 "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(utf8::to_valid_lossy("\xE2\x98"), "\xEF\xBF\xBD");  // one U+FFFD for both bytes
  EXPECT_EQ(utf8::to_valid_lossy("\xE2\x98z"), "\xEF\xBF\xBDz");
  EXPECT_EQ(utf8::to_valid_lossy("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Unicode, Properties) {
  EXPECT_TRUE(unicode::is_letter('a'));
  EXPECT_TRUE(unicode::is_letter(0x4E2D));   // 中
  EXPECT_TRUE(unicode::is_letter(0x16D4A));  // Kirat Rai (Unicode 16)
  EXPECT_TRUE(unicode::is_number(0x0663));   // Arabic-Indic three
  EXPECT_TRUE(unicode::is_number(0x216B));   // Roman numeral twelve (Nl)
  EXPECT_FALSE(unicode::is_letter(0x0301));
  EXPECT_TRUE(unicode::is_space(0x3000));
  EXPECT_TRUE(unicode::is_space(0x85));
  EXPECT_FALSE(unicode::is_space(0x200B));
  EXPECT_FALSE(unicode::is_space(0x1C));
  EXPECT_EQ(unicode::combining_class(0x0301), 230);
  EXPECT_EQ(unicode::combining_class(0x0D3B), 0);  // assigned after Unicode 9.0: class 0 here
}

TEST(Unicode, Normalisation) {
  EXPECT_EQ(unicode::nfc("e\xCC\x81"), "\xC3\xA9");  // e + acute -> é
  EXPECT_EQ(unicode::nfd("\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(unicode::nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // 각 from jamo
  EXPECT_EQ(unicode::nfd("\xEA\xB0\x81"), "\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8");
  // a + acute(230) + grave below(220): reordered, then the acute still composes (not blocked).
  EXPECT_EQ(unicode::nfc("a\xCC\x81\xCC\x96"), "\xC3\xA1\xCC\x96");
  EXPECT_EQ(unicode::nfc("\xEF\xAC\x81"), "\xEF\xAC\x81");  // ﬁ is NFC (compatibility only)
  EXPECT_EQ(unicode::nfc("\xE2\x84\xAB"), "\xC3\x85");      // Angstrom sign -> Å (singleton)
  EXPECT_TRUE(unicode::is_nfc_quick("plain text \xE4\xB8\xAD"));
  EXPECT_FALSE(unicode::is_nfc_quick("e\xCC\x81"));
}

TEST(SplitRegex, Qwen2Pattern) {
  auto re = SplitRegex::from_pattern(
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)");
  ASSERT_TRUE(re.has_value());
  using V = std::vector<std::string>;
  EXPECT_EQ(split(*re, "Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(split(*re, "it's I'LL 'Ve"), (V{"it", "'s", " I", "'LL", " '", "Ve"}));
  EXPECT_EQ(split(*re, "x  \n\n  y"), (V{"x", "  \n\n", " ", " y"}));
  EXPECT_EQ(split(*re, "a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(split(*re, "2024 ok!!\n\n"), (V{"2", "0", "2", "4", " ok", "!!\n\n"}));
  EXPECT_EQ(split(*re, " ?? (x)"), (V{" ??", " (", "x", ")"}));
  EXPECT_EQ(split(*re, "\t\tz  "), (V{"\t", "\tz", "  "}));
  EXPECT_EQ(split(*re,
                  "\xE4\xB8\xAD\xE6\x96\x87"
                  "abc123"),
            (V{"\xE4\xB8\xAD\xE6\x96\x87"
               "abc",
               "1", "2", "3"}));
  EXPECT_EQ(split(*re, ""), V{});
}

TEST(SplitRegex, Gpt2PatternAndUnknownPatterns) {
  auto re = SplitRegex::gpt2();
  using V = std::vector<std::string>;
  EXPECT_EQ(split(re, "it's I'LL 'Ve"), (V{"it", "'s", " I", "'", "LL", " '", "Ve"}));
  EXPECT_EQ(split(re, "x  \n\n  y"), (V{"x", "  \n\n ", " y"}));
  EXPECT_EQ(split(re, "2024 ok!!\n\n"), (V{"2024", " ok", "!!", "\n\n"}));
  EXPECT_EQ(split(re, "\t\tz  "), (V{"\t", "\t", "z", "  "}));
  EXPECT_FALSE(SplitRegex::from_pattern(R"(\w+|\s+)").has_value());
}

TEST(Tokenizer, BpeMergesByRankLeftmostFirst) {
  Tokenizer t = load(tiny_llama());
  // "▁abc": ▁+a (rank 3) loses to a+b (rank 0), then ab+c (rank 1).
  EXPECT_EQ(t.encode("abc", false), (Ids{3, 11}));
  EXPECT_EQ(t.encode("abc"), (Ids{1, 3, 11}));
  // "aaa": three equal-rank pairs; the leftmost merges first.
  EXPECT_EQ(t.encode("aaa", false), (Ids{12, 17}));  // ▁a (rank 3) vs a a (rank 4): ▁a first
  EXPECT_EQ(t.encode("a b", false), (Ids{12, 3, 5}));
}

TEST(Tokenizer, ByteFallbackAndFusedUnknowns) {
  Tokenizer t = load(tiny_llama());
  EXPECT_EQ(t.encode("A", false), (Ids{3, 13}));                     // 'A' only as <0x41>
  EXPECT_EQ(t.encode("\xE2\x98\x83", false), (Ids{3, 14, 15, 16}));  // ☃ as three bytes
  EXPECT_EQ(t.encode("xyz", false), (Ids{3, 0}));                    // fused into one <unk>
  auto j = tiny_llama();
  j["model"]["fuse_unk"] = false;
  EXPECT_EQ(load(j).encode("xyz", false), (Ids{3, 0, 0, 0}));
  j["model"]["unk_token"] = nullptr;
  EXPECT_EQ(load(j).encode("xaz", false), (Ids{12}));  // no unk token: unknown chars vanish
}

TEST(Tokenizer, AddedTokensSplitBeforeNormalisation) {
  Tokenizer t = load(tiny_llama());
  // <img> has lstrip and rstrip: the spaces around it belong to it; each side is normalised
  // (and gets its "▁") on its own.
  EXPECT_EQ(t.encode("ab  <img>  c", false), (Ids{3, 9, 18, 3, 6}));
  EXPECT_EQ(t.encode("<s><img>", false), (Ids{1, 18}));
  EXPECT_EQ(t.encode("<s", false), (Ids{3, 0}));
  EXPECT_EQ(t.token_to_id("<img>"), 18);
  EXPECT_EQ(t.id_to_token(18), "<img>");
  EXPECT_EQ(t.vocab_size(), 19u);
  EXPECT_EQ(t.vocab_size(false), 18u);
}

TEST(Tokenizer, Decode) {
  Tokenizer t = load(tiny_llama());
  EXPECT_EQ(t.decode({1, 3, 11, 3, 14, 15, 16}), "abc \xE2\x98\x83");
  EXPECT_EQ(t.decode({1, 3, 11}, false), "<s> abc");
  EXPECT_EQ(t.decode({3, 14, 15}), "\xEF\xBF\xBD\xEF\xBF\xBD");  // cut-off bytes: one U+FFFD each
  EXPECT_EQ(t.decode({12, 999, -1}), "a");                       // unknown ids are skipped
}

TEST(Tokenizer, GuardsCheckedBeforeTokenizing) {
  Tokenizer t = load(tiny_llama());
  EXPECT_THROW(t.encode("ab\xFF"), InvalidInputError);
  t.set_max_input_chars(3);
  EXPECT_NO_THROW(t.encode("\xE4\xB8\xAD\xE4\xB8\xAD\xE4\xB8\xAD"));  // 3 chars, 9 bytes
  try {
    t.encode("abcd");
    FAIL() << "no error";
  } catch (const InvalidInputError& e) {
    EXPECT_NE(std::string(e.what()).find("4 characters long, over the limit of 3"), std::string::npos);
  }
  try {
    t.encode_batch({"a", "b", "abcdef"});
    FAIL() << "no error";
  } catch (const InvalidInputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("input 2 is 6 characters long", 0), 0u) << e.what();
  }
  t.set_max_input_chars(0);
  EXPECT_NO_THROW(t.encode(std::string(5000, 'a')));
}

TEST(Tokenizer, BatchMatchesSingleOnAnyThreadCount) {
  Tokenizer t = load(tiny_llama());
  std::vector<std::string> texts;
  for (int i = 0; i < 300; ++i) texts.push_back(std::string(size_t(i % 17), "abcde<"[i % 6]) + " <img> c");
  std::vector<std::string_view> views(texts.begin(), texts.end());
  for (size_t threads : {0, 1, 2, 7}) {
    auto batch = t.encode_batch(views, true, threads);
    ASSERT_EQ(batch.size(), texts.size());
    for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ(batch[i], t.encode(texts[i])) << i;
  }
  try {
    t.encode_batch({"ok", "bad\xC3"});
    FAIL() << "no error";
  } catch (const InvalidInputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("input 1: text is not valid UTF-8", 0), 0u) << e.what();
  }
}

TEST(Tokenizer, Truncation) {
  Tokenizer t = load(tiny_llama());
  t.set_truncation(Truncation{3, false});
  EXPECT_EQ(t.encode("ab ab ab"), (Ids{1, 3, 9}));  // BOS counts toward max_length
  t.set_truncation(Truncation{3, true});
  EXPECT_EQ(t.encode("ab ab c"), (Ids{1, 3, 6}));
  EXPECT_THROW(t.set_truncation(Truncation{0, false}), InvalidInputError);
}

TEST(Tokenizer, MetaspaceSchemes) {
  auto j = tiny_llama();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", false}};
  Tokenizer first = load(j);
  EXPECT_EQ(first.encode("a<img>a", false), (Ids{12, 18, 4}));  // no ▁ after the added token
  j["pre_tokenizer"]["prepend_scheme"] = "always";
  EXPECT_EQ(load(j).encode("a<img>a", false), (Ids{12, 18, 12}));
  j["pre_tokenizer"]["prepend_scheme"] = "never";
  EXPECT_EQ(load(j).encode("a<img>a", false), (Ids{4, 18, 4}));
}

TEST(Tokenizer, MalformedFilesNameTheField) {
  auto expect = [](json j, const std::string& needle) {
    std::string msg = error_of(j);
    EXPECT_NE(msg.find(needle), std::string::npos) << "got: " << msg;
  };
  EXPECT_NE(error_of(json("not an object")).find("expected a JSON object"), std::string::npos);
  {
    auto j = tiny_llama();
    j.erase("model");
    expect(j, "tokenizer.json: model: missing");
  }
  {
    auto j = tiny_llama();
    j["model"]["merges"][1] = 5;
    expect(j, "model.merges[1]: expected a string");
  }
  {
    auto j = tiny_llama();
    j["model"]["merges"][0] = json::array({"a", "zz"});
    expect(j, "model.merges[0]: token \"zz\" is not in the vocabulary");
  }
  {
    auto j = tiny_llama();
    j["model"]["vocab"]["a"] = "four";
    expect(j, "model.vocab[\"a\"]: expected a non-negative 32-bit integer id");
  }
  {
    auto j = tiny_llama();
    j["added_tokens"][1].erase("content");
    expect(j, "added_tokens[1].content: missing");
  }
  {
    auto j = tiny_llama();
    j["normalizer"]["normalizers"][0] = {{"type", "NFKD"}};
    expect(j, "normalizer.normalizers[0]: unsupported component: normalizer type \"NFKD\"");
  }
  {
    auto j = tiny_llama();
    j["pre_tokenizer"] = {
        {"type", "Split"}, {"pattern", {{"Regex", "\\d+"}}}, {"behavior", "Isolated"}, {"invert", false}};
    expect(j, "pre_tokenizer.pattern: unsupported component: Split regex");
  }
  {
    auto j = tiny_llama();
    j["model"]["type"] = "Unigram";
    expect(j, "model.type: unsupported component: model type \"Unigram\"");
  }
  {
    auto j = tiny_llama();
    j["post_processor"] = {{"type", "RobertaProcessing"}};
    expect(j, "post_processor: unsupported component: post_processor type \"RobertaProcessing\"");
  }
  {
    auto j = tiny_llama();
    j["decoder"]["decoders"][1] = {{"type", "CTC"}};
    expect(j, "decoder.decoders[1]: unsupported component: decoder type \"CTC\"");
  }
  EXPECT_NE(error_of(json::parse("{\"model\": 1}")).find("model: expected an object"), std::string::npos);
}

TEST(Tokenizer, FileErrors) {
  EXPECT_THROW(Tokenizer::from_file("/nonexistent/tokenizer.json"), FileNotFoundError);
  EXPECT_THROW(Tokenizer::from_file("/"), InvalidInputError);
  EXPECT_THROW(Tokenizer::from_string("{\"model\": "), InvalidInputError);
}

}  // namespace
}  // namespace unime::core
