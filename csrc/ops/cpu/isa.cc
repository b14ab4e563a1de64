#include "ops/cpu/isa.h"

#include <atomic>

namespace unime::ops {
namespace {
std::atomic<bool> g_avx512{true};
}  // namespace

bool set_avx512_kernels_enabled(bool enabled) { return g_avx512.exchange(enabled); }
bool avx512_kernels_enabled() { return g_avx512.load(std::memory_order_relaxed); }

}  // namespace unime::ops
