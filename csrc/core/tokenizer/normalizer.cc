// The supported normalizers (see normalizer.h) and their factory.
#include "core/tokenizer/normalizer.h"

#include <vector>

#include "core/tokenizer/json_fields.h"
#include "core/tokenizer/unicode.h"
#include "core/tokenizer/utf8.h"

namespace unime::core {
namespace {

using json_fields::fail;

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void normalize(std::string& text) const override {
    for (const auto& s : steps_) s->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

// Prepends `prefix` to non-empty text (an empty piece stays empty, as in tokenizers).
class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override { replace_all(text, pattern_, content_); }

 private:
  std::string pattern_, content_;
};

class NfcNormalizer : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    if (!unicode::is_nfc_quick(text)) text = unicode::nfc(text);
  }
};

class NfdNormalizer : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = unicode::nfd(text); }
};

// Strips White_Space code points from the left and/or right end.
class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        size_t next = begin;
        if (!unicode::is_space(utf8::decode_utf8(text, next))) break;
        begin = next;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t pos = start;
        if (!unicode::is_space(utf8::decode_utf8(text, pos))) break;
        end = start;
      }
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

}  // namespace

void replace_all(std::string& text, const std::string& pattern, const std::string& content) {
  if (pattern.empty()) return;
  size_t pos = text.find(pattern);
  if (pos == std::string::npos) return;
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  size_t last = 0;
  for (; pos != std::string::npos; pos = text.find(pattern, last)) {
    out.append(text, last, pos - last);
    out += content;
    last = pos + pattern.size();
  }
  out.append(text, last, std::string::npos);
  text.swap(out);
}

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& config, const std::string& where) {
  if (config.is_null()) return nullptr;
  std::string type = json_fields::get_type(config, where);
  if (type == "Sequence") {
    const auto& list = json_fields::require(config, "normalizers", where);
    if (!list.is_array()) fail(where + ".normalizers", "expected an array");
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      std::string at = where + ".normalizers[" + std::to_string(i) + "]";
      if (list[i].is_null()) fail(at, "expected a normalizer object");
      steps.push_back(make_normalizer(list[i], at));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  if (type == "Prepend") {
    return std::make_unique<PrependNormalizer>(json_fields::get_string(config, "prepend", where));
  }
  if (type == "Replace") {
    bool is_regex = false;
    std::string pattern = json_fields::get_pattern(config, where, &is_regex);
    if (is_regex) fail(where + ".pattern", "unsupported component: Replace with a Regex pattern");
    if (pattern.empty()) fail(where + ".pattern", "an empty String pattern is not supported");
    return std::make_unique<ReplaceNormalizer>(pattern, json_fields::get_string(config, "content", where));
  }
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  if (type == "NFD") return std::make_unique<NfdNormalizer>();
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(json_fields::get_bool(config, "strip_left", where, false),
                                             json_fields::get_bool(config, "strip_right", where, false));
  }
  fail(where, "unsupported component: normalizer type \"" + type + "\"");
}

}  // namespace unime::core
