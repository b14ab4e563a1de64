// The supported pre-tokenizers (see pre_tokenizer.h) and their factory.
#include "core/tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <array>
#include <optional>
#include <utility>

#include "core/tokenizer/json_fields.h"
#include "core/tokenizer/normalizer.h"
#include "core/tokenizer/split_regex.h"
#include "core/tokenizer/utf8.h"

namespace unime::core {
namespace {

using json_fields::fail;
using Range = std::pair<size_t, size_t>;

// How a split keeps its delimiters (tokenizers' SplitDelimiterBehavior).
enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Behavior parse_behavior(const std::string& name, const std::string& where) {
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  fail(where, "unknown split behavior \"" + name + "\"");
}

struct Part {
  Range range;
  bool is_match;
};

// Turns the matches of a pattern in a piece of `size` bytes into the kept ranges, applying
// `behavior` the way tokenizers' NormalizedString::split does.
std::vector<Range> apply_behavior(const std::vector<Range>& matches, size_t size, bool invert, Behavior behavior) {
  std::vector<Part> parts;
  size_t prev = 0;
  for (const auto& m : matches) {
    if (prev != m.first) parts.push_back({{prev, m.first}, invert});
    parts.push_back({m, !invert});
    prev = m.second;
  }
  if (prev != size) parts.push_back({{prev, size}, invert});

  std::vector<Range> out;
  switch (behavior) {
    case Behavior::kIsolated:
      for (const auto& p : parts) out.push_back(p.range);
      break;
    case Behavior::kRemoved:
      for (const auto& p : parts)
        if (!p.is_match) out.push_back(p.range);
      break;
    case Behavior::kContiguous: {
      bool previous = false;
      for (const auto& p : parts) {
        if (!out.empty() && p.is_match == previous) {
          out.back().second = p.range.second;
        } else {
          out.push_back(p.range);
        }
        previous = p.is_match;
      }
      break;
    }
    case Behavior::kMergedWithPrevious: {
      bool previous = false;
      for (const auto& p : parts) {
        if (p.is_match && !previous && !out.empty()) {
          out.back().second = p.range.second;
        } else {
          out.push_back(p.range);
        }
        previous = p.is_match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool previous = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->is_match && !previous && !out.empty()) {
          out.back().first = it->range.first;
        } else {
          out.push_back(it->range);
        }
        previous = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
  }
  return out;
}

// Splits every piece at the ranges `find` reports, keeping at_start/byte_level on the sub-pieces.
template <typename Find>
void split_pieces(std::vector<Piece>& pieces, bool invert, Behavior behavior, Find&& find) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  std::vector<Range> matches;
  for (auto& piece : pieces) {
    matches.clear();
    find(piece.text, matches);
    for (const auto& r : apply_behavior(matches, piece.text.size(), invert, behavior)) {
      if (r.first == r.second) continue;
      Piece sub;
      sub.text = piece.text.substr(r.first, r.second - r.first);
      sub.at_start = piece.at_start && r.first == 0;
      sub.byte_level = piece.byte_level;
      out.push_back(std::move(sub));
    }
  }
  pieces.swap(out);
}

void find_literal(const std::string& pattern, std::string_view text, std::vector<Range>& out) {
  for (size_t pos = text.find(pattern); pos != std::string_view::npos; pos = text.find(pattern, pos + pattern.size())) {
    out.emplace_back(pos, pos + pattern.size());
  }
}

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& s : steps_) s->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// Metaspace: spaces become the replacement character ("▁"), which is prepended according to the
// scheme; with split, each "▁" starts a new word.
class MetaspacePreTokenizer : public PreTokenizer {
 public:
  enum class Scheme { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(std::string replacement, Scheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}

  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (auto& piece : pieces) {
      replace_all(piece.text, " ", replacement_);
      bool starts = piece.text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == Scheme::kAlways || (scheme_ == Scheme::kFirst && piece.at_start))) {
        piece.text.insert(0, replacement_);
      }
    }
    if (split_) {
      split_pieces(pieces, false, Behavior::kMergedWithNext,
                   [this](std::string_view t, std::vector<Range>& m) { find_literal(replacement_, t, m); });
    }
  }

 private:
  std::string replacement_;
  Scheme scheme_;
  bool split_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(std::string literal, std::optional<SplitRegex> regex, Behavior behavior, bool invert)
      : literal_(std::move(literal)), regex_(regex), behavior_(behavior), invert_(invert) {}

  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_pieces(pieces, invert_, behavior_, [this](std::string_view t, std::vector<Range>& m) {
      if (regex_) {
        regex_->find_all(t, m);
      } else {
        find_literal(literal_, t, m);
      }
    });
  }

 private:
  std::string literal_;
  std::optional<SplitRegex> regex_;
  Behavior behavior_;
  bool invert_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}

  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (auto& piece : pieces) {
      if (piece.byte_level) {
        // A second ByteLevel sees the mapped text (as in tokenizers): make it explicit.
        piece.text = byte_level_encode(piece.text);
        piece.byte_level = false;
      }
      if (add_prefix_space_ && piece.text.compare(0, 1, " ") != 0) piece.text.insert(0, " ");
    }
    if (use_regex_) {
      static const SplitRegex gpt2 = SplitRegex::gpt2();
      split_pieces(pieces, false, Behavior::kIsolated,
                   [](std::string_view t, std::vector<Range>& m) { gpt2.find_all(t, m); });
    }
    for (auto& piece : pieces) piece.byte_level = true;
  }

 private:
  bool add_prefix_space_, use_regex_;
};

struct ByteTable {
  std::array<std::string, 256> chars;
  std::array<int, 324> bytes;  // code point (< 0x144) -> byte
  ByteTable() {
    bytes.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      uint32_t cp = printable ? uint32_t(b) : uint32_t(0x100 + extra++);
      utf8::append_utf8(chars[b], cp);
      bytes[cp] = b;
    }
  }
};

const ByteTable& byte_table() {
  static const ByteTable table;
  return table;
}

}  // namespace

const std::string& byte_level_char(unsigned char b) { return byte_table().chars[b]; }

int byte_level_byte(uint32_t cp) { return cp < 324 ? byte_table().bytes[cp] : -1; }

std::string byte_level_encode(std::string_view text) {
  std::string out;
  out.reserve(text.size() * 2);
  for (unsigned char b : text) out += byte_level_char(b);
  return out;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& config, const std::string& where) {
  if (config.is_null()) return nullptr;
  std::string type = json_fields::get_type(config, where);
  if (type == "Sequence") {
    const auto& list = json_fields::require(config, "pretokenizers", where);
    if (!list.is_array()) fail(where + ".pretokenizers", "expected an array");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      std::string at = where + ".pretokenizers[" + std::to_string(i) + "]";
      if (list[i].is_null()) fail(at, "expected a pre-tokenizer object");
      steps.push_back(make_pre_tokenizer(list[i], at));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  if (type == "Metaspace") {
    std::string replacement = json_fields::get_string(config, "replacement", where);
    if (utf8::count_chars(replacement) != 1) fail(where + ".replacement", "expected one character");
    // Files written before prepend_scheme existed say add_prefix_space instead.
    auto scheme = MetaspacePreTokenizer::Scheme::kAlways;
    if (config.contains("prepend_scheme")) {
      std::string s = json_fields::get_string(config, "prepend_scheme", where);
      if (s == "always") {
        scheme = MetaspacePreTokenizer::Scheme::kAlways;
      } else if (s == "first") {
        scheme = MetaspacePreTokenizer::Scheme::kFirst;
      } else if (s == "never") {
        scheme = MetaspacePreTokenizer::Scheme::kNever;
      } else {
        fail(where + ".prepend_scheme", "expected \"always\", \"first\" or \"never\", got \"" + s + "\"");
      }
    } else if (!json_fields::get_bool(config, "add_prefix_space", where, true)) {
      scheme = MetaspacePreTokenizer::Scheme::kNever;
    }
    bool split = json_fields::get_bool(config, "split", where, true);
    return std::make_unique<MetaspacePreTokenizer>(replacement, scheme, split);
  }
  if (type == "Split") {
    bool is_regex = false;
    std::string pattern = json_fields::get_pattern(config, where, &is_regex);
    std::optional<SplitRegex> regex;
    if (is_regex) {
      regex = SplitRegex::from_pattern(pattern);
      if (!regex) fail(where + ".pattern", "unsupported component: Split regex \"" + pattern + "\"");
    } else if (pattern.empty()) {
      fail(where + ".pattern", "an empty String pattern is not supported");
    }
    Behavior behavior = parse_behavior(json_fields::get_string(config, "behavior", where), where + ".behavior");
    bool invert = json_fields::get_bool(config, "invert", where, false);
    return std::make_unique<SplitPreTokenizer>(is_regex ? "" : pattern, regex, behavior, invert);
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(json_fields::get_bool(config, "add_prefix_space", where, true),
                                                   json_fields::get_bool(config, "use_regex", where, true));
  }
  fail(where, "unsupported component: pre_tokenizer type \"" + type + "\"");
}

}  // namespace unime::core
