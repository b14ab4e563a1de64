// UTF-8 validation and lossy repair, following the Unicode Standard's table 3-7 of well-formed
// byte sequences (which is what Rust's str::from_utf8 and String::from_utf8_lossy implement).
#include "core/tokenizer/utf8.h"

namespace unime::core::utf8 {
namespace {

// Length of the well-formed sequence at text[pos], or 0 if it is ill-formed. When ill-formed,
// `*valid_prefix` receives the length of its maximal valid prefix (at least 1): the number of
// bytes one U+FFFD replaces.
size_t well_formed_length(std::string_view text, size_t pos, size_t* valid_prefix) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data()) + pos;
  size_t left = text.size() - pos;
  unsigned char b0 = p[0];
  *valid_prefix = 1;
  if (b0 < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;  // C0, C1, F5..FF and stray continuation bytes
  }
  for (size_t i = 1; i < need; ++i) {
    if (i >= left) return 0;
    unsigned char b = p[i];
    unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (b < l || b > h) return 0;
    *valid_prefix = i + 1;
  }
  return need;
}

}  // namespace

size_t find_invalid(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    // ASCII fast path, 8 bytes at a time.
    while (pos + 8 <= text.size()) {
      uint64_t word;
      __builtin_memcpy(&word, text.data() + pos, 8);
      if (word & 0x8080808080808080ULL) break;
      pos += 8;
    }
    if (pos >= text.size()) break;
    size_t prefix;
    size_t n = well_formed_length(text, pos, &prefix);
    if (n == 0) return pos;
    pos += n;
  }
  return std::string_view::npos;
}

std::string to_valid_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t prefix;
    size_t n = well_formed_length(bytes, pos, &prefix);
    if (n) {
      out.append(bytes.data() + pos, n);
      pos += n;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      pos += prefix;
    }
  }
  return out;
}

}  // namespace unime::core::utf8
