// Matchers equivalent to the regexes listed in split_regex.h.
//
// Each alternative is tried in order at the current position, as Oniguruma does; the comments on
// the whitespace alternatives spell out where backtracking ends, because that is where the
// patterns are subtle:
//   \s*[\r\n]+   greedy \s* backs off to the LAST \r or \n of the whitespace run, so the match
//                ends just after it (and fails if the run has none);
//   \s+(?!\S)    the run minus its last character when a non-space follows (fails for a run of
//                one), the whole run at the end of the text.
#include "core/tokenizer/split_regex.h"

#include <cstdint>

#include "core/tokenizer/unicode.h"
#include "core/tokenizer/utf8.h"

namespace unime::core {
namespace {

constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Character classes of one code point, looked up once per character.
enum : uint8_t { kL = 1, kN = 2, kS = 4, kNewline = 8 };

struct Chars {
  std::vector<uint32_t> cp;
  std::vector<uint8_t> cls;
  std::vector<size_t> offset;  // byte offset of each character; offset[n] = text size
};

void decode(std::string_view text, Chars& c) {
  c.cp.clear();
  c.cls.clear();
  c.offset.clear();
  for (size_t pos = 0; pos < text.size();) {
    c.offset.push_back(pos);
    uint32_t cp = utf8::decode_utf8(text, pos);
    uint8_t cls;
    if (cp < 0x80) {
      cls = ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') ? kL : (cp >= '0' && cp <= '9') ? kN : 0;
      if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) cls = kS;
      if (cp == '\r' || cp == '\n') cls |= kNewline;
    } else {
      uint8_t f = unicode::flags(cp);
      cls = uint8_t((f & unicode::kLetter ? kL : 0) | (f & unicode::kNumber ? kN : 0) | (f & unicode::kSpace ? kS : 0));
    }
    c.cp.push_back(cp);
    c.cls.push_back(cls);
  }
  c.offset.push_back(text.size());
}

// Case-insensitive comparison with an ASCII letter, as (?i:...) does in Oniguruma: Unicode simple
// case folding, under which U+017F LATIN SMALL LETTER LONG S folds to 's' and U+212A KELVIN SIGN
// to 'k'.
bool folds_to(uint32_t cp, char lower) {
  if (cp < 0x80) return char(cp | 0x20) == lower && ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
  return (cp == 0x017F && lower == 's') || (cp == 0x212A && lower == 'k');
}

// 's|'t|'re|'ve|'m|'ll|'d at i; returns the end index or 0.
size_t match_contraction(const Chars& c, size_t i, size_t n, bool ignore_case) {
  if (c.cp[i] != '\'' || i + 1 >= n) return 0;
  auto is = [&](size_t k, char ch) { return k < n && (ignore_case ? folds_to(c.cp[k], ch) : c.cp[k] == uint32_t(ch)); };
  if (is(i + 1, 's') || is(i + 1, 't') || is(i + 1, 'm') || is(i + 1, 'd')) return i + 2;
  if ((is(i + 1, 'r') || is(i + 1, 'v')) && is(i + 2, 'e')) return i + 3;
  if (is(i + 1, 'l') && is(i + 2, 'l')) return i + 3;
  return 0;
}

size_t run_of(const Chars& c, size_t j, size_t n, uint8_t cls) {
  while (j < n && (c.cls[j] & cls)) ++j;
  return j;
}

bool is_other(uint8_t cls) { return (cls & (kL | kN | kS)) == 0; }

// \s+(?!\S) then \s+, for a whitespace run starting at i.
size_t match_trailing_space(size_t i, size_t run_end, size_t n) {
  if (run_end == n) return run_end;
  if (run_end - i >= 2) return run_end - 1;
  return run_end;
}

size_t match_qwen(const Chars& c, size_t i, size_t n, size_t max_digits) {
  if (size_t e = match_contraction(c, i, n, /*ignore_case=*/true)) return e;
  uint8_t cls = c.cls[i];
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (!(cls & (kL | kN | kNewline)) && i + 1 < n && (c.cls[i + 1] & kL)) return run_of(c, i + 1, n, kL);
  if (cls & kL) return run_of(c, i, n, kL);
  // \p{N} or \p{N}{1,3}
  if (cls & kN) {
    size_t j = i + 1;
    while (j < n && j - i < max_digits && (c.cls[j] & kN)) ++j;
    return j;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  size_t j = (c.cp[i] == ' ' && i + 1 < n && is_other(c.cls[i + 1])) ? i + 1 : i;
  if (is_other(c.cls[j])) {
    while (j < n && is_other(c.cls[j])) ++j;
    while (j < n && (c.cls[j] & kNewline)) ++j;
    return j;
  }
  // Whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+
  size_t run_end = run_of(c, i, n, kS);
  for (size_t k = run_end; k > i; --k) {
    if (c.cls[k - 1] & kNewline) return k;
  }
  return match_trailing_space(i, run_end, n);
}

size_t match_gpt2(const Chars& c, size_t i, size_t n) {
  if (size_t e = match_contraction(c, i, n, /*ignore_case=*/false)) return e;
  //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
  size_t j = (c.cp[i] == ' ' && i + 1 < n) ? i + 1 : i;
  for (size_t start : {j, i}) {
    uint8_t cls = c.cls[start];
    if (cls & kL) return run_of(c, start, n, kL);
    if (cls & kN) return run_of(c, start, n, kN);
    if (is_other(cls)) {
      size_t k = start;
      while (k < n && is_other(c.cls[k])) ++k;
      return k;
    }
    if (start == i) break;
  }
  return match_trailing_space(i, run_of(c, i, n, kS), n);
}

}  // namespace

std::optional<SplitRegex> SplitRegex::from_pattern(std::string_view pattern) {
  if (pattern == kQwen2Pattern) return SplitRegex(Kind::kQwen2);
  if (pattern == kLlama3Pattern) return SplitRegex(Kind::kLlama3);
  if (pattern == kGpt2Pattern) return SplitRegex(Kind::kGpt2);
  return std::nullopt;
}

void SplitRegex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  thread_local Chars chars;  // reused buffers: pre-tokenization runs once per piece
  decode(text, chars);
  size_t n = chars.cp.size();
  for (size_t i = 0; i < n;) {
    size_t e = kind_ == Kind::kGpt2    ? match_gpt2(chars, i, n)
               : kind_ == Kind::kQwen2 ? match_qwen(chars, i, n, 1)
                                       : match_qwen(chars, i, n, 3);
    out.emplace_back(chars.offset[i], chars.offset[e]);
    i = e;
  }
}

}  // namespace unime::core
