// UTF-8 helpers of the tokenizer: validation, decoding and encoding of code points.
//
// The tokenizer works on UTF-8 bytes throughout (as Hugging Face tokenizers does on Rust strings).
// Input is validated once at the boundary (Tokenizer::encode); everything after that may assume
// well-formed UTF-8 and uses the unchecked decode_utf8().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace unime::core::utf8 {

// Byte offset of the first byte that does not start a well-formed UTF-8 sequence (overlong forms,
// surrogates U+D800..U+DFFF, values above U+10FFFF and truncated sequences are ill-formed), or
// std::string_view::npos if `text` is valid. Matches Rust's std::str::from_utf8.
size_t find_invalid(std::string_view text);

// Length in bytes of the sequence whose lead byte is `lead` (1 for a stray continuation byte, so
// that loops over bytes always advance). Valid input only.
inline size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return lead < 0xC0 ? 1 : 2;
  return lead < 0xF0 ? 3 : 4;
}

// Decodes the code point starting at text[pos] of well-formed UTF-8 and advances pos past it.
inline uint32_t decode_utf8(std::string_view text, size_t& pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data()) + pos;
  unsigned char b0 = p[0];
  if (b0 < 0x80) {
    pos += 1;
    return b0;
  }
  if (b0 < 0xE0) {
    pos += 2;
    return (uint32_t(b0 & 0x1F) << 6) | (p[1] & 0x3F);
  }
  if (b0 < 0xF0) {
    pos += 3;
    return (uint32_t(b0 & 0x0F) << 12) | (uint32_t(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
  }
  pos += 4;
  return (uint32_t(b0 & 0x07) << 18) | (uint32_t(p[1] & 0x3F) << 12) | (uint32_t(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}

// Appends the UTF-8 encoding of code point `cp` (<= U+10FFFF) to `out`.
inline void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

// Number of code points in well-formed UTF-8 (counts lead bytes).
inline size_t count_chars(std::string_view text) {
  size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

// Replaces every ill-formed sequence by U+FFFD the way Rust's String::from_utf8_lossy does (one
// replacement per maximal invalid prefix), as the ByteLevel and ByteFallback decoders need.
std::string to_valid_lossy(std::string_view bytes);

}  // namespace unime::core::utf8
