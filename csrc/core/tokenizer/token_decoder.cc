// The supported decoders (see decoder.h) and their factory.
#include "core/tokenizer/token_decoder.h"

#include "core/tokenizer/json_fields.h"
#include "core/tokenizer/normalizer.h"
#include "core/tokenizer/pre_tokenizer.h"
#include "core/tokenizer/utf8.h"

namespace unime::core {
namespace {

using json_fields::fail;

class SequenceDecoder : public TokenDecoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<TokenDecoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& s : steps_) s->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<TokenDecoder>> steps_;
};

class ReplaceDecoder : public TokenDecoder {
 public:
  ReplaceDecoder(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) replace_all(t, pattern_, content_);
  }

 private:
  std::string pattern_, content_;
};

// Runs of "<0xXX>" tokens become the text of their bytes, or one U+FFFD per byte if the run is not
// valid UTF-8.
class ByteFallbackDecoder : public TokenDecoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string bytes;
    auto flush = [&]() {
      if (bytes.empty()) return;
      if (utf8::find_invalid(bytes) == std::string::npos) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < bytes.size(); ++i) out.push_back("\xEF\xBF\xBD");
      }
      bytes.clear();
    };
    for (auto& t : tokens) {
      int byte = parse_byte(t);
      if (byte >= 0) {
        bytes.push_back(char(byte));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
  static int parse_byte(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    int hi = hex(t[3]), lo = hex(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder : public TokenDecoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing copies of the character `content` per token.
class StripDecoder : public TokenDecoder {
 public:
  StripDecoder(uint32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) {
      std::vector<size_t> starts;  // byte offset of each character
      std::vector<uint32_t> cps;
      for (size_t pos = 0; pos < t.size();) {
        starts.push_back(pos);
        cps.push_back(utf8::decode_utf8(t, pos));
      }
      size_t n = cps.size(), cut_start = 0, cut_stop = 0;
      while (cut_start < start_ && cut_start < n && cps[cut_start] == content_) ++cut_start;
      while (cut_stop < stop_ && cut_stop < n && cps[n - 1 - cut_stop] == content_) ++cut_stop;
      if (cut_start + cut_stop >= n) {
        t.clear();
        continue;
      }
      size_t b = starts[cut_start], e = n - cut_stop < n ? starts[n - cut_stop] : t.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  uint32_t content_;
  size_t start_, stop_;
};

// Byte-level: all tokens are joined; each character of the GPT-2 table becomes its byte (a token
// holding any other character keeps its UTF-8 bytes), and the bytes are read as lossy UTF-8.
class ByteLevelDecoder : public TokenDecoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const auto& t : tokens) {
      std::string mapped;
      bool ok = true;
      for (size_t pos = 0; pos < t.size() && ok;) {
        int b = byte_level_byte(utf8::decode_utf8(t, pos));
        if (b < 0) ok = false;
        mapped.push_back(char(b));
      }
      bytes += ok ? mapped : t;
    }
    tokens.assign(1, utf8::to_valid_lossy(bytes));
  }
};

// Metaspace: the replacement character becomes a space, except in the first token, where every
// replacement character is dropped unless the prepend scheme is "never" (as tokenizers does).
class MetaspaceDecoder : public TokenDecoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      replace_all(tokens[i], replacement_, i == 0 && strip_first_ ? "" : " ");
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

}  // namespace

std::unique_ptr<TokenDecoder> make_token_decoder(const nlohmann::json& config, const std::string& where) {
  if (config.is_null()) return nullptr;
  std::string type = json_fields::get_type(config, where);
  if (type == "Sequence") {
    const auto& list = json_fields::require(config, "decoders", where);
    if (!list.is_array()) fail(where + ".decoders", "expected an array");
    std::vector<std::unique_ptr<TokenDecoder>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      std::string at = where + ".decoders[" + std::to_string(i) + "]";
      if (list[i].is_null()) fail(at, "expected a decoder object");
      steps.push_back(make_token_decoder(list[i], at));
    }
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  if (type == "Replace") {
    bool is_regex = false;
    std::string pattern = json_fields::get_pattern(config, where, &is_regex);
    if (is_regex) fail(where + ".pattern", "unsupported component: Replace decoder with a Regex pattern");
    if (pattern.empty()) fail(where + ".pattern", "an empty String pattern is not supported");
    return std::make_unique<ReplaceDecoder>(pattern, json_fields::get_string(config, "content", where));
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    std::string content = json_fields::get_string(config, "content", where);
    if (utf8::count_chars(content) != 1 || utf8::find_invalid(content) != std::string::npos) {
      fail(where + ".content", "expected one character");
    }
    size_t pos = 0;
    uint32_t cp = utf8::decode_utf8(content, pos);
    return std::make_unique<StripDecoder>(cp, size_t(json_fields::get_int(config, "start", where, 0, 1 << 20)),
                                          size_t(json_fields::get_int(config, "stop", where, 0, 1 << 20)));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    std::string replacement = json_fields::get_string(config, "replacement", where);
    bool strip_first = true;
    if (config.contains("prepend_scheme")) {
      strip_first = json_fields::get_string(config, "prepend_scheme", where) != "never";
    } else {
      strip_first = json_fields::get_bool(config, "add_prefix_space", where, true);
    }
    return std::make_unique<MetaspaceDecoder>(replacement, strip_first);
  }
  fail(where, "unsupported component: decoder type \"" + type + "\"");
}

}  // namespace unime::core
