// AVX-512F building blocks for the CPU kernels. The library is built for baseline x86-64: every
// function here carries target("avx512f") and is called only after has_avx512f() says yes.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <c10/util/BFloat16.h>
#include <immintrin.h>

#include <cstdint>

#include "ops/cpu/expf_constants.h"

#include "ops/cpu/isa.h"

#define UNIME_HAVE_AVX512_PATH 1

namespace unime::ops::avx512 {

// The CPU has AVX-512F and the AVX-512 paths are not switched off (ops/cpu/isa.h).
inline bool has_avx512f() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes && avx512_kernels_enabled();
}

// 16 bf16 values widened to fp32 (exact: a shift).
__attribute__((target("avx512f"))) inline __m512 load_bf16(const c10::BFloat16* p) {
  auto wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

// fp32 -> the fp32 holding the nearest bf16: round-to-nearest-even and quiet NaN, as c10::BFloat16.
__attribute__((target("avx512f"))) inline __m512 round_to_bf16(__m512 v) {
  const auto u = _mm512_castps_si512(v);
  const auto bias =
      _mm512_add_epi32(_mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)), _mm512_set1_epi32(0x7FFF));
  auto r = _mm512_and_si512(_mm512_add_epi32(u, bias), _mm512_set1_epi32(static_cast<int>(0xFFFF0000u)));
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC00000));
  return _mm512_castsi512_ps(r);
}

// Stores 16 values already rounded by round_to_bf16 (their low 16 bits are zero).
__attribute__((target("avx512f"))) inline void store_bf16(c10::BFloat16* p, __m512 rounded) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                      _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(rounded), 16)));
}

// The first n (< 16) bf16 values, the rest zero; and the masked store.
__attribute__((target("avx512f"))) inline __m512 load_bf16_partial(const c10::BFloat16* p, int64_t n) {
  alignas(32) uint16_t tmp[16] = {};
  for (int64_t i = 0; i < n; ++i) tmp[i] = p[i].x;
  return load_bf16(reinterpret_cast<const c10::BFloat16*>(tmp));
}

__attribute__((target("avx512f"))) inline void store_bf16_partial(c10::BFloat16* p, __m512 rounded, int64_t n) {
  alignas(32) uint16_t tmp[16];
  store_bf16(reinterpret_cast<c10::BFloat16*>(tmp), rounded);
  for (int64_t i = 0; i < n; ++i) p[i].x = tmp[i];
}

// Lanes of a bf16 (kBf16) or fp32 array as fp32: 16 from index i, or the first n < 16 (the rest
// zero); round_lanes rounds fp32 values to the array's dtype; store_lanes writes values so rounded.
template <bool kBf16>
__attribute__((target("avx512f"))) inline __m512 load_lanes(const void* p, int64_t i, int64_t n) {
  if constexpr (kBf16) {
    const auto* q = static_cast<const c10::BFloat16*>(p) + i;
    return n == 16 ? load_bf16(q) : load_bf16_partial(q, n);
  } else {
    const auto* q = static_cast<const float*>(p) + i;
    return n == 16 ? _mm512_loadu_ps(q) : _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), q);
  }
}

template <bool kBf16>
__attribute__((target("avx512f"))) inline __m512 round_lanes(__m512 v) {
  if constexpr (kBf16) return round_to_bf16(v);
  return v;
}

template <bool kBf16>
__attribute__((target("avx512f"))) inline void store_lanes(void* p, int64_t i, __m512 rounded, int64_t n) {
  if constexpr (kBf16) {
    auto* q = static_cast<c10::BFloat16*>(p) + i;
    n == 16 ? store_bf16(q, rounded) : store_bf16_partial(q, rounded, n);
  } else {
    auto* q = static_cast<float*>(p) + i;
    n == 16 ? _mm512_storeu_ps(q, rounded) : _mm512_mask_storeu_ps(q, static_cast<__mmask16>((1u << n) - 1), rounded);
  }
}

// e^x in fp32 to about 1 ulp: x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two for an exact
// product), e^r by its degree-7 Taylor-like minimax polynomial (the Cephes expf coefficients),
// then scaled by 2^n. Inputs are clamped to [-88.38, 88.72]: the result underflows to ~0 or
// saturates near FLT_MAX there, and NaN stays NaN through the arithmetic.
__attribute__((target("avx512f"))) inline __m512 exp_ps(__m512 x) {
  using namespace expf_constants;  // NOLINT(google-build-using-namespace)
  const auto lo = _mm512_set1_ps(kLo), hi = _mm512_set1_ps(kHi);
  const auto nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
  const auto n =
      _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  auto r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  auto p = _mm512_set1_ps(kP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const auto result = _mm512_scalef_ps(p, n);
  return _mm512_mask_mov_ps(result, nan, _mm512_set1_ps(__builtin_nanf("")));
}

// 1 / (1 + e^-x), the form torch's sigmoid uses.
__attribute__((target("avx512f"))) inline __m512 sigmoid_ps(__m512 x) {
  const auto one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

}  // namespace unime::ops::avx512
#endif
