// AVX2 + FMA building blocks for the fp32 CPU kernels on CPUs without AVX-512 (AMD Zen 2 / 3, Intel
// before Skylake-X). The library is built for baseline x86-64: every function here carries
// target("avx2,fma") and is called only after has_avx2_fma() says yes. The maths is avx512_math.h's,
// eight lanes at a time, so both paths give the same bits.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <cstdint>

#include "ops/cpu/expf_constants.h"

#define UNIME_HAVE_AVX2_PATH 1

namespace unime::ops::avx2 {

inline bool has_avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}

// Lane i is on when i < n (n <= 8): the mask of _mm256_maskload_ps / _mm256_maskstore_ps.
__attribute__((target("avx2,fma"))) inline __m256i first_lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// 8 fp32 values from index i, or the first n < 8 (the rest zero); and the store of the first n.
__attribute__((target("avx2,fma"))) inline __m256 load_f32(const float* p, int64_t i, int64_t n) {
  return n == 8 ? _mm256_loadu_ps(p + i) : _mm256_maskload_ps(p + i, first_lanes(n));
}

__attribute__((target("avx2,fma"))) inline void store_f32(float* p, int64_t i, __m256 v, int64_t n) {
  n == 8 ? _mm256_storeu_ps(p + i, v) : _mm256_maskstore_ps(p + i, first_lanes(n), v);
}

// e^x as avx512::exp_ps (Cephes' expf: the same reduction, polynomial and clamping), with 2^n applied
// as two exact power-of-two factors: n is in [-128, 128], beyond one float exponent field.
__attribute__((target("avx2,fma"))) inline __m256 exp_ps(__m256 x) {
  using namespace expf_constants;  // NOLINT(google-build-using-namespace)
  const auto lo = _mm256_set1_ps(kLo), hi = _mm256_set1_ps(kHi);
  const auto nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const auto n =
      _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  auto r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  auto p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const auto ni = _mm256_cvtps_epi32(n);
  const auto half = _mm256_srai_epi32(ni, 1);  // floor(n / 2); n - half = ceil(n / 2)
  const auto bias = _mm256_set1_epi32(127);
  const auto f1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
  const auto f2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), bias), 23));
  const auto result = _mm256_mul_ps(_mm256_mul_ps(p, f1), f2);
  return _mm256_blendv_ps(result, _mm256_set1_ps(__builtin_nanf("")), nan);
}

// 1 / (1 + e^-x), the form torch's sigmoid uses.
__attribute__((target("avx2,fma"))) inline __m256 sigmoid_ps(__m256 x) {
  const auto one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

}  // namespace unime::ops::avx2
#endif
