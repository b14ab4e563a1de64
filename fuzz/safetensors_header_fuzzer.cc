// libFuzzer target for the safetensors parsers (build and run: tools/run_fuzz.sh).
//
// The input is a whole file image for parse_header and, as a second pure parser of untrusted
// bytes, the text of a sharded index for parse_weight_map. Both may reject the input only with
// unime::InvalidInputError; any other exception escaping (an nlohmann exception, std::out_of_range,
// ...) means a validation gap, so it is deliberately not caught and aborts the run. An accepted
// header is checked against the format's invariants; a violation traps.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/errors.h"
#include "core/safetensors.h"

namespace {

using unime::core::Header;

#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

// What parse_header promises about a header it accepts for a file of `size` bytes.
void check_invariants(const Header& h, size_t size) {
  FUZZ_CHECK(h.header_size <= unime::core::kMaxHeaderSize);
  FUZZ_CHECK(h.data_start() <= size);
  uint64_t expected = 0;  // the tensors tile the buffer in order
  for (const auto& t : h.tensors) {
    FUZZ_CHECK(t.name != "__metadata__");
    FUZZ_CHECK(t.begin == expected && t.end >= t.begin);
    int64_t numel = 1;
    for (int64_t d : t.shape) {
      FUZZ_CHECK(d >= 0);
      FUZZ_CHECK(!__builtin_mul_overflow(numel, d, &numel));
    }
    FUZZ_CHECK(numel == t.numel());
    uint64_t nbytes = 0;
    FUZZ_CHECK(!__builtin_mul_overflow(static_cast<uint64_t>(numel), unime::core::dtype_size(t.dtype), &nbytes));
    FUZZ_CHECK(nbytes == t.nbytes());
    expected = t.end;
  }
  FUZZ_CHECK(expected == size - h.data_start());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    check_invariants(unime::core::parse_header(data, size, "fuzz"), size);
  } catch (const unime::InvalidInputError&) {
  }
  try {
    unime::core::parse_weight_map(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const unime::InvalidInputError&) {
  }
  return 0;
}
