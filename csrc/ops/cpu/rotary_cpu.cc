#include "ops/cpu/rotary_cpu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>

#include "ops/cpu/avx512_math.h"

namespace unime::ops {
namespace {

std::atomic<bool> g_enabled{true};

#ifdef UNIME_HAVE_AVX512_PATH
using namespace avx512;  // NOLINT(google-build-using-namespace): the intrinsic helpers

__attribute__((target("avx512f"))) inline __m512 negate(__m512 v) {  // a sign flip, as torch's neg
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN)));
}

struct RotaryArgs {
  const void* x;
  int64_t x_token_stride, x_head_stride;
  const void *cos, *sin;
  int64_t cos_stride, sin_stride;
  void* out;
  int64_t heads, dim;
};

// kXBf16: x (and the output) in bf16; kBf16: the computation in bf16 (cos and sin bf16), else fp32.
// The file is built with -ffp-contract=off: each product is rounded before the sum, as in the
// unfused expression, never fused into one multiply-add.
template <bool kXBf16, bool kBf16>
__attribute__((target("avx512f"))) void rotary_tokens(const RotaryArgs& a, int64_t begin, int64_t end) {
  constexpr int64_t kX = kXBf16 ? 2 : 4, kT = kBf16 ? 2 : 4;
  const int64_t half = a.dim / 2;
  for (int64_t t = begin; t < end; ++t) {
    const auto* c = static_cast<const char*>(a.cos) + t * a.cos_stride * kT;
    const auto* s = static_cast<const char*>(a.sin) + t * a.sin_stride * kT;
    for (int64_t h = 0; h < a.heads; ++h) {
      const auto* x = static_cast<const char*>(a.x) + (t * a.x_token_stride + h * a.x_head_stride) * kX;
      auto* o = static_cast<char*>(a.out) + (t * a.heads + h) * a.dim * kX;
      for (int64_t i = 0; i < half; i += 16) {
        const int64_t n = std::min<int64_t>(16, half - i);
        const auto x1 = load_lanes<kXBf16>(x, i, n), x2 = load_lanes<kXBf16>(x, half + i, n);
        const auto c1 = load_lanes<kBf16>(c, i, n), c2 = load_lanes<kBf16>(c, half + i, n);
        const auto s1 = load_lanes<kBf16>(s, i, n), s2 = load_lanes<kBf16>(s, half + i, n);
        // out[:half] = x1 cos1 + (-x2) sin1, out[half:] = x2 cos2 + x1 sin2
        const auto o1 = round_lanes<kBf16>(_mm512_add_ps(round_lanes<kBf16>(_mm512_mul_ps(x1, c1)),
                                                         round_lanes<kBf16>(_mm512_mul_ps(negate(x2), s1))));
        const auto o2 = round_lanes<kBf16>(
            _mm512_add_ps(round_lanes<kBf16>(_mm512_mul_ps(x2, c2)), round_lanes<kBf16>(_mm512_mul_ps(x1, s2))));
        store_lanes<kXBf16>(o, i, round_lanes<kXBf16>(o1), n);
        store_lanes<kXBf16>(o, half + i, round_lanes<kXBf16>(o2), n);
      }
    }
  }
}
#endif

bool table_fits(const at::Tensor& t, const at::Tensor& x) {
  return t.dim() == 3 && t.size(0) == x.size(0) && t.size(1) == 1 && t.size(2) == x.size(2) &&
         (t.size(2) <= 1 || t.stride(2) == 1);
}

}  // namespace

bool cpu_rotary_applies(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
#ifdef UNIME_HAVE_AVX512_PATH
  if (!g_enabled.load() || !avx512::has_avx512f()) return false;
  if (!x.device().is_cpu() || !cos.device().is_cpu() || !sin.device().is_cpu()) return false;
  if (at::GradMode::is_enabled() && (x.requires_grad() || cos.requires_grad() || sin.requires_grad())) return false;
  const auto t = cos.scalar_type();
  if ((t != at::kFloat && t != at::kBFloat16) || sin.scalar_type() != t) return false;
  if (x.scalar_type() != t && !(x.scalar_type() == at::kBFloat16 && t == at::kFloat)) return false;
  if (x.dim() != 3 || x.size(2) % 2 != 0 || (x.size(2) > 1 && x.stride(2) != 1)) return false;
  return table_fits(cos, x) && table_fits(sin, x);
#else
  (void)x, (void)cos, (void)sin;
  return false;
#endif
}

at::Tensor cpu_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  TORCH_CHECK_VALUE(cpu_rotary_applies(x, cos, sin), "cpu_rotary: unsupported arguments x ", x.sizes(), " ",
                    x.scalar_type(), ", cos ", cos.sizes(), " ", cos.scalar_type());
  auto out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
#ifdef UNIME_HAVE_AVX512_PATH
  const RotaryArgs a{x.const_data_ptr(),
                     x.stride(0),
                     x.stride(1),
                     cos.const_data_ptr(),
                     sin.const_data_ptr(),
                     cos.stride(0),
                     sin.stride(0),
                     out.mutable_data_ptr(),
                     x.size(1),
                     x.size(2)};
  const bool x_bf16 = x.scalar_type() == at::kBFloat16, bf16 = cos.scalar_type() == at::kBFloat16;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, x.size(1) * x.size(2)));
  at::parallel_for(0, x.size(0), grain, [&](int64_t begin, int64_t end) {
    if (bf16)
      rotary_tokens<true, true>(a, begin, end);
    else if (x_bf16)
      rotary_tokens<true, false>(a, begin, end);
    else
      rotary_tokens<false, false>(a, begin, end);
  });
#endif
  return out;
}

bool set_cpu_rotary_enabled(bool enabled) { return g_enabled.exchange(enabled); }

}  // namespace unime::ops
