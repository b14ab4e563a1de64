#include "ops/cpu/attention_cpu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/cpu/avx512_math.h"

namespace unime::ops {
namespace {

std::atomic<bool> g_enabled{true};

#ifdef UNIME_HAVE_AVX512_PATH
#define UNIME_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

constexpr int64_t kTileRows = 6;     // a micro-tile: 6 rows x 64 columns = 24 fp32 accumulators
constexpr int64_t kTileCols = 64;    // 4 vectors of 16
constexpr int64_t kQueryBlock = 48;  // queries per task: their scores and probabilities stay in L2 for ~3k keys

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

bool cpu_has_avx512_bf16() {
  static const bool yes = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
  return yes && avx512_kernels_enabled();
}

uint32_t pair(uint16_t low, uint16_t high) { return static_cast<uint32_t>(low) | (static_cast<uint32_t>(high) << 16); }

// C (R x 64, fp32, row stride ldc) = A (R x 2kp, bf16, row stride lda) B, with B packed for the
// dot-product instruction: kp rows of ldb uint32, each holding (B[2p][c], B[2p+1][c]) for column c.
template <int R>
UNIME_BF16_TARGET void micro_tile(const uint16_t* a, int64_t lda, const uint32_t* b, int64_t ldb, int64_t kp, float* c,
                                  int64_t ldc) {
  __m512 acc[R][4];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; ++p) {
    const uint32_t* row = b + p * ldb;
    __m512bh bv[4];
    for (int v = 0; v < 4; ++v) bv[v] = (__m512bh)_mm512_loadu_si512(row + 16 * v);
    for (int r = 0; r < R; ++r) {
      uint32_t ap;
      std::memcpy(&ap, a + r * lda + 2 * p, sizeof ap);
      const auto av = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap));
      for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < 4; ++v) _mm512_storeu_ps(c + r * ldc + 16 * v, acc[r][v]);
}

// The micro-tile for each row count 1..kTileRows (the last tile of a block may be short).
using MicroTile = void (*)(const uint16_t*, int64_t, const uint32_t*, int64_t, int64_t, float*, int64_t);
constexpr MicroTile kTiles[kTileRows] = {micro_tile<1>, micro_tile<2>, micro_tile<3>,
                                         micro_tile<4>, micro_tile<5>, micro_tile<6>};

// C (m x n, n a multiple of 64) = A (m x 2kp) B in micro-tiles; a B panel (kp x 64) is reused by
// every row tile while it is in cache.
UNIME_BF16_TARGET void gemm(const uint16_t* a, int64_t lda, const uint32_t* b, int64_t ldb, int64_t kp, float* c,
                            int64_t ldc, int64_t m, int64_t n) {
  for (int64_t j = 0; j < n; j += kTileCols)
    for (int64_t i = 0; i < m; i += kTileRows) {
      const auto* ai = a + i * lda;
      auto* ci = c + i * ldc + j;
      kTiles[std::min(kTileRows, m - i) - 1](ai, lda, b + j, ldb, kp, ci, ldc);
    }
}

__mmask16 head_mask(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << n) - 1); }

// Row i of the scores (fp32, `valid` keys) -> probabilities exp(scale s - max) as bf16 in p (zeros up
// to `width`); returns 1 / their fp32 sum.
UNIME_BF16_TARGET float softmax_row(const float* s, int64_t valid, int64_t width, float scale, uint16_t* p) {
  auto vmax = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < valid; j += 16)
    vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), head_mask(valid - j), s + j));
  const auto vscale = _mm512_set1_ps(scale);
  const auto shift = _mm512_set1_ps(_mm512_reduce_max_ps(vmax) * scale);
  auto vsum = _mm512_setzero_ps();
  for (int64_t j = 0; j < width; j += 16) {
    const auto m = j < valid ? head_mask(valid - j) : __mmask16(0);
    const auto e = _mm512_maskz_mov_ps(m, avx512::exp_ps(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), vscale, shift)));
    vsum = _mm512_add_ps(vsum, e);
    _mm256_mask_storeu_epi16(p + j, head_mask(width - j), (__m256i)_mm512_cvtneps_pbh(e));
  }
  return 1.0f / _mm512_reduce_add_ps(vsum);
}

UNIME_BF16_TARGET void store_row(const float* o, float inv, int64_t d, c10::BFloat16* out) {
  const auto vinv = _mm512_set1_ps(inv);
  for (int64_t c = 0; c < d; c += 16)
    _mm256_mask_storeu_epi16(out + c, head_mask(d - c),
                             (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(o + c), vinv)));
}

// The task order for causal attention: blocks from both ends alternately, so that each thread's
// contiguous range of tasks holds about the same number of keys.
int64_t block_of(int64_t slot, int64_t blocks, bool causal) {
  if (!causal) return slot;
  return slot % 2 == 0 ? slot / 2 : blocks - 1 - slot / 2;
}

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal, double scale) {
  const int64_t Lq = q.size(0), Hq = q.size(1), d = q.size(2), Lk = k.size(0), Hk = k.size(1);
  const int64_t rep = Hq / Hk, kp = d / 2;
  const int64_t keys_pad = round_up(Lk, kTileCols), keys_even = round_up(Lk, 2), d_pad = round_up(d, kTileCols);
  auto out = at::empty({Lq, Hq, d}, q.options());
  const auto* qd = reinterpret_cast<const uint16_t*>(q.const_data_ptr<c10::BFloat16>());
  const auto* kd = reinterpret_cast<const uint16_t*>(k.const_data_ptr<c10::BFloat16>());
  const auto* vd = reinterpret_cast<const uint16_t*>(v.const_data_ptr<c10::BFloat16>());
  const int64_t qt = q.stride(0), qh = q.stride(1), kt = k.stride(0), kh = k.stride(1), vt = v.stride(0),
                vh = v.stride(1);
  // K^T and V packed per kv head for the dot-product instruction, zero-padded: K^T as (d/2, keys_pad)
  // pairs of one key's consecutive dims; V as (keys_even/2, d_pad) pairs of consecutive keys' dim c.
  std::vector<uint32_t> kpack(Hk * kp * keys_pad), vpack(Hk * (keys_even / 2) * d_pad);
  at::parallel_for(0, Hk, 1, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      uint32_t* kh_out = kpack.data() + h * kp * keys_pad;
      for (int64_t j = 0; j < keys_pad; ++j)
        for (int64_t p = 0; p < kp; ++p)
          kh_out[p * keys_pad + j] = j < Lk ? pair(kd[j * kt + h * kh + 2 * p], kd[j * kt + h * kh + 2 * p + 1]) : 0;
      uint32_t* vh_out = vpack.data() + h * (keys_even / 2) * d_pad;
      for (int64_t p = 0; p < keys_even / 2; ++p)
        for (int64_t c = 0; c < d_pad; ++c) {
          const uint16_t lo = (c < d) ? vd[(2 * p) * vt + h * vh + c] : 0;
          const uint16_t hi = (c < d && 2 * p + 1 < Lk) ? vd[(2 * p + 1) * vt + h * vh + c] : 0;
          vh_out[p * d_pad + c] = pair(lo, hi);
        }
    }
  });
  const int64_t blocks = (Lq + kQueryBlock - 1) / kQueryBlock;
  auto* od = out.mutable_data_ptr<c10::BFloat16>();
  const auto fscale = static_cast<float>(scale);
  at::parallel_for(0, blocks * Hq, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(kQueryBlock * keys_pad), acc(kQueryBlock * d_pad), inv(kQueryBlock);
    std::vector<uint16_t> probs(kQueryBlock * keys_even);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t h = t % Hq, hk = h / rep, q0 = block_of(t / Hq, blocks, causal) * kQueryBlock;
      const int64_t m = std::min(kQueryBlock, Lq - q0);
      const int64_t keys = causal ? std::min(Lk, q0 + m) : Lk;
      const int64_t width = round_up(keys, kTileCols), even = round_up(keys, 2);
      gemm(qd + q0 * qt + h * qh, qt, kpack.data() + hk * kp * keys_pad, keys_pad, kp, scores.data(), width, m, width);
      for (int64_t i = 0; i < m; ++i)
        inv[i] =
            softmax_row(scores.data() + i * width, causal ? q0 + i + 1 : keys, even, fscale, probs.data() + i * even);
      gemm(probs.data(), even, vpack.data() + hk * (keys_even / 2) * d_pad, d_pad, even / 2, acc.data(), d_pad, m,
           d_pad);
      for (int64_t i = 0; i < m; ++i) store_row(acc.data() + i * d_pad, inv[i], d, od + ((q0 + i) * Hq + h) * d);
    }
  });
  return out;
}
#endif

}  // namespace

bool set_cpu_bf16_attention_enabled(bool enabled) { return g_enabled.exchange(enabled); }

bool cpu_bf16_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
#ifdef UNIME_HAVE_AVX512_PATH
  if (!g_enabled.load() || !cpu_has_avx512_bf16()) return false;
  for (const auto* t : {&q, &k, &v})
    if (!t->device().is_cpu() || t->scalar_type() != at::kBFloat16 || t->dim() != 3 || t->stride(2) != 1 ||
        (t->requires_grad() && at::GradMode::is_enabled()))
      return false;
  const auto d = q.size(2);
  return d % 2 == 0 && d <= 256 && k.size(2) == d && v.sizes() == k.sizes() && k.size(1) > 0 &&
         q.size(1) % k.size(1) == 0 && k.size(0) > 0;
#else
  return false;
#endif
}

at::Tensor cpu_bf16_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal,
                              double scale) {
  TORCH_CHECK(cpu_bf16_attention_applies(q, k, v), "cpu_bf16_attention: unsupported call (q ", q.sizes(), " ",
              q.scalar_type(), ", k ", k.sizes(), ")");
  TORCH_CHECK_VALUE(!causal || q.size(0) == k.size(0), "cpu_bf16_attention: causal needs as many queries as keys");
#ifdef UNIME_HAVE_AVX512_PATH
  return attention(q, k, v, causal, scale);
#else
  return {};
#endif
}

}  // namespace unime::ops
