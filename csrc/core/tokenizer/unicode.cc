// NFC / NFD over the generated tables (unicode_tables.cc), following the Unicode Standard's
// algorithm (UAX #15): full canonical decomposition (Hangul algorithmically), canonical ordering
// of combining marks, then canonical composition of unblocked pairs.
#include "core/tokenizer/unicode.h"

#include <algorithm>
#include <vector>

#include "core/tokenizer/utf8.h"

namespace unime::core::unicode {
namespace {

// Hangul syllable arithmetic (Unicode Standard, section 3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28;
constexpr uint32_t kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

void decompose_into(uint32_t cp, std::vector<uint32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (flags(cp) & kDecomposes) {
    const uint32_t* begin = unicode_data::kDecompositionCodePoints;
    const uint32_t* end = begin + unicode_data::kDecompositionCount;
    const uint32_t* it = std::lower_bound(begin, end, cp);
    if (it != end && *it == cp) {
      size_t i = size_t(it - begin);
      const uint32_t* d = unicode_data::kDecompositionPool + unicode_data::kDecompositionOffsets[i];
      out.insert(out.end(), d, d + unicode_data::kDecompositionLengths[i]);
      return;
    }
  }
  out.push_back(cp);
}

// The primary composite of (a, b), or 0 if there is none.
uint32_t compose_pair(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  uint64_t key = (uint64_t(a) << 21) | b;
  const uint64_t* begin = unicode_data::kCompositionKeys;
  const uint64_t* end = begin + unicode_data::kCompositionCount;
  const uint64_t* it = std::lower_bound(begin, end, key);
  if (it != end && *it == key) return unicode_data::kCompositionValues[it - begin];
  return 0;
}

// Decomposition plus canonical ordering (a stable sort of each run of non-starters by class).
std::vector<uint32_t> decompose(std::string_view text) {
  std::vector<uint32_t> cps;
  cps.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) decompose_into(utf8::decode_utf8(text, pos), cps);
  for (size_t i = 0; i < cps.size();) {
    if (combining_class(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && combining_class(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j,
                     [](uint32_t x, uint32_t y) { return combining_class(x) < combining_class(y); });
    i = j;
  }
  return cps;
}

std::string encode(const std::vector<uint32_t>& cps) {
  std::string out;
  out.reserve(cps.size() * 2);
  for (uint32_t cp : cps) utf8::append_utf8(out, cp);
  return out;
}

}  // namespace

uint8_t combining_class(uint32_t cp) {
  if (cp >= 0x110000) return 0;
  return unicode_data::kCccBlocks[size_t(unicode_data::kCccStage1[cp >> 8]) * 256 + (cp & 0xFF)];
}

bool is_nfc_quick(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {  // ASCII never changes under NFC
      ++pos;
      continue;
    }
    uint32_t cp = utf8::decode_utf8(text, pos);
    if (cp >= kSBase && cp < kSBase + kSCount) continue;  // a syllable may start a composition only
    if (flags(cp) & kMayChangeNfc) return false;
  }
  return true;
}

std::string nfd(std::string_view text) { return encode(decompose(text)); }

std::string nfc(std::string_view text) {
  if (is_nfc_quick(text)) return std::string(text);
  std::vector<uint32_t> cps = decompose(text);
  // Canonical composition: a character joins the last starter unless something between them is
  // a starter or has a combining class >= its own (it is "blocked").
  std::vector<uint32_t> out;
  out.reserve(cps.size());
  size_t starter = SIZE_MAX;
  uint8_t last_class = 0;
  for (uint32_t cp : cps) {
    uint8_t cc = combining_class(cp);
    if (starter != SIZE_MAX) {
      bool adjacent = out.size() == starter + 1;
      if (adjacent || (last_class != 0 && last_class < cc)) {
        if (uint32_t composite = compose_pair(out[starter], cp)) {
          out[starter] = composite;
          continue;
        }
      }
    }
    if (cc == 0) starter = out.size();
    last_class = cc;
    out.push_back(cp);
  }
  return encode(out);
}

}  // namespace unime::core::unicode
