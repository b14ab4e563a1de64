// Added-token loading, id assignment and splitting (see added_tokens.h).
#include "core/tokenizer/added_tokens.h"

#include <algorithm>

#include "core/tokenizer/bpe_model.h"
#include "core/tokenizer/json_fields.h"
#include "core/tokenizer/normalizer.h"
#include "core/tokenizer/unicode.h"
#include "core/tokenizer/utf8.h"

namespace unime::core {
namespace {

using json_fields::fail;

// The "word character" test of single_word: \w of Rust's regex crate, as tokenizers uses.
bool is_word_char(uint32_t cp) { return unicode::flags(cp) & unicode::kWord; }

uint32_t last_char(std::string_view text) {
  size_t start = text.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return utf8::decode_utf8(text, start);
}

}  // namespace

void TokenMatcher::add(std::string pattern, int32_t token_index) {
  if (pattern.empty()) return;  // an empty pattern never matches (aho-corasick skips it too)
  patterns_.push_back({std::move(pattern), token_index});
  for (auto& v : by_byte_) v.clear();
  std::vector<uint32_t> order(patterns_.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return patterns_[a].text.size() > patterns_[b].text.size(); });
  for (uint32_t i : order) by_byte_[static_cast<unsigned char>(patterns_[i].text[0])].push_back(i);
}

bool TokenMatcher::find(std::string_view text, size_t from, size_t* begin, size_t* end, int32_t* token) const {
  for (size_t i = from; i < text.size(); ++i) {
    const auto& candidates = by_byte_[static_cast<unsigned char>(text[i])];
    for (uint32_t c : candidates) {  // longest first, so the first hit is the longest
      const auto& p = patterns_[c].text;
      if (text.size() - i >= p.size() && text.compare(i, p.size(), p) == 0) {
        *begin = i;
        *end = i + p.size();
        *token = patterns_[c].token;
        return true;
      }
    }
  }
  return false;
}

AddedVocabulary AddedVocabulary::from_json(const nlohmann::json& list, const BpeModel& model,
                                           const Normalizer* normalizer) {
  AddedVocabulary v;
  if (list.is_null()) return v;
  if (!list.is_array()) fail("added_tokens", "expected an array");
  int64_t next_new = -1;  // last id given to a token absent from the model
  for (size_t i = 0; i < list.size(); ++i) {
    std::string at = "added_tokens[" + std::to_string(i) + "]";
    const auto& e = list[i];
    AddedToken t;
    t.content = json_fields::get_string(e, "content", at);
    if (t.content.empty()) fail(at + ".content", "an added token cannot be empty");
    if (utf8::find_invalid(t.content) != std::string::npos) fail(at + ".content", "invalid UTF-8");
    t.special = json_fields::get_bool(e, "special", at, false);
    t.lstrip = json_fields::get_bool(e, "lstrip", at, false);
    t.rstrip = json_fields::get_bool(e, "rstrip", at, false);
    t.normalized = json_fields::get_bool(e, "normalized", at, !t.special);
    t.single_word = json_fields::get_bool(e, "single_word", at, false);
    if (v.by_content_.count(t.content)) continue;  // tokenizers keeps the first one
    int32_t model_id = model.token_to_id(t.content);
    if (model_id >= 0) {
      t.id = model_id;
    } else {
      int64_t base = int64_t(model.vocab_size());
      next_new = next_new >= base ? next_new + 1 : base;
      t.id = int32_t(next_new);
    }
    v.by_content_[t.content] = v.tokens_.size();
    v.by_id_.emplace(t.id, v.tokens_.size());
    v.tokens_.push_back(std::move(t));
  }
  for (size_t i = 0; i < v.tokens_.size(); ++i) {
    const auto& t = v.tokens_[i];
    if (!t.normalized) {
      v.raw_.add(t.content, int32_t(i));
    } else {
      std::string pattern = t.content;
      if (normalizer) normalizer->normalize(pattern);
      v.normalized_.add(std::move(pattern), int32_t(i));
    }
  }
  return v;
}

const AddedToken* AddedVocabulary::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

int32_t AddedVocabulary::id_of(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? -1 : tokens_[it->second].id;
}

void AddedVocabulary::split(const TokenMatcher& matcher, std::string_view text, std::vector<Span>& out) const {
  if (matcher.empty()) {
    out.push_back({0, text.size(), -1});
    return;
  }
  size_t start_offset = 0;  // end of the previous token (after its rstrip)
  size_t from = 0;          // where the next search begins (end of the previous raw match)
  size_t begin, end;
  int32_t index;
  while (matcher.find(text, from, &begin, &end, &index)) {
    from = end;
    const AddedToken& t = tokens_[size_t(index)];
    if (t.single_word) {
      bool free_before = begin == 0 || !is_word_char(last_char(text.substr(0, begin)));
      size_t after = end;
      bool free_after = end == text.size() || !is_word_char(utf8::decode_utf8(text, after));
      if (!free_before || !free_after) continue;
    }
    if (t.lstrip) {
      size_t b = begin;
      while (b > 0) {
        uint32_t cp = last_char(text.substr(0, b));
        if (!unicode::is_space(cp)) break;
        b -= cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
      }
      begin = std::max(b, start_offset);
    }
    if (t.rstrip) {
      size_t e = end;
      while (e < text.size()) {
        size_t next = e;
        if (!unicode::is_space(utf8::decode_utf8(text, next))) break;
        e = next;
      }
      end = e;
    }
    if (start_offset < begin) out.push_back({start_offset, begin, -1});
    out.push_back({begin, end, t.id});
    start_offset = end;
  }
  if (start_offset != text.size()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace unime::core
