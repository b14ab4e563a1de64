// Which vector instruction sets the CPU kernels may use, beyond what the CPU has: tests switch the
// AVX-512 paths off (unime._C._use_avx512_kernels) to reach the AVX2 and scalar ones on any machine.
// For tests and benchmarks between calls: an op running while it flips may see both settings.
#pragma once

namespace unime::ops {

// Returns the previous setting (default on).
bool set_avx512_kernels_enabled(bool enabled);
bool avx512_kernels_enabled();

}  // namespace unime::ops
