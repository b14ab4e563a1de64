// rms_norm on CPU (its checks and reference maths: common/rms_norm.cc). The kernel reads each row
// twice from cache and writes it once, with no temporaries; the reference maths makes four full-size
// temporaries (fp32 copy, square, product, cast) and streams the tensor through memory five times.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <torch/library.h>

#include "ops/cpu/avx512_math.h"
#include "ops/ops.h"

namespace unime::ops {

namespace {

#ifdef UNIME_HAVE_AVX512_PATH
// bf16 rows with AVX-512F (chosen at run time): 16 values per step, widened to fp32 by a shift,
// rounded back to bf16 with the same round-to-nearest-even (and quiet NaN) as c10::BFloat16, so only
// the order of the fp32 sum of squares differs from the scalar loop.
using avx512::load_bf16;
using avx512::round_to_bf16;
using avx512::store_bf16;

__attribute__((target("avx512f"))) void rms_norm_rows_bf16_avx512(const c10::BFloat16* in, const c10::BFloat16* w,
                                                                  c10::BFloat16* out, int64_t begin, int64_t end,
                                                                  int64_t cols, float eps) {
  const int64_t vec_end = cols - cols % 16;
  for (int64_t r = begin; r < end; ++r) {
    const c10::BFloat16* row = in + r * cols;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= vec_end; i += 32) {
      const auto a = load_bf16(row + i), b = load_bf16(row + i + 16);
      acc0 = _mm512_fmadd_ps(a, a, acc0);
      acc1 = _mm512_fmadd_ps(b, b, acc1);
    }
    for (; i < vec_end; i += 16) {
      const auto a = load_bf16(row + i);
      acc0 = _mm512_fmadd_ps(a, a, acc0);
    }
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; i < cols; ++i) sum += static_cast<float>(row[i]) * static_cast<float>(row[i]);
    const float inv = 1.0f / std::sqrt(sum / static_cast<float>(cols) + eps);
    const auto vinv = _mm512_set1_ps(inv);
    c10::BFloat16* o = out + r * cols;
    int64_t j = 0;
    for (; j < vec_end; j += 16) {
      const auto normed = round_to_bf16(_mm512_mul_ps(load_bf16(row + j), vinv));
      store_bf16(o + j, round_to_bf16(_mm512_mul_ps(load_bf16(w + j), normed)));
    }
    for (; j < cols; ++j) o[j] = w[j] * static_cast<c10::BFloat16>(static_cast<float>(row[j]) * inv);
  }
}

#endif

at::Tensor rms_norm_cpu(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check_rms_norm_args(x, weight, eps);
  auto xc = x.contiguous();
  auto wc = weight.contiguous();
  auto y = at::empty_like(xc);
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : xc.numel() / cols;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "unime_rms_norm_cpu", [&] {
    // Accumulate in fp32 (fp64 for double), cast the normalised value to the input dtype, then
    // multiply by the weight in that dtype: the reference's rounding steps, in one pass.
    using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    const scalar_t* in = xc.const_data_ptr<scalar_t>();
    const scalar_t* w = wc.const_data_ptr<scalar_t>();
    scalar_t* out = y.mutable_data_ptr<scalar_t>();
#ifdef UNIME_HAVE_AVX512_PATH
    if constexpr (std::is_same_v<scalar_t, c10::BFloat16>) {
      if (avx512::has_avx512f()) {
        at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(cols, 1)),
                         [&](int64_t begin, int64_t end) {
                           // (a cast, not a type: this lambda is no template, so every branch compiles)
                           rms_norm_rows_bf16_avx512(
                               reinterpret_cast<const c10::BFloat16*>(in), reinterpret_cast<const c10::BFloat16*>(w),
                               reinterpret_cast<c10::BFloat16*>(out), begin, end, cols, static_cast<float>(eps));
                         });
        return;
      }
    }
#endif
    at::parallel_for(0, rows, /*grain_size=*/std::max<int64_t>(1, 32768 / std::max<int64_t>(cols, 1)),
                     [&](int64_t begin, int64_t end) {
                       for (int64_t r = begin; r < end; ++r) {
                         const scalar_t* row = in + r * cols;
                         // Eight independent partial sums: the compiler may not reorder one float
                         // accumulation, but it vectorises eight lanes.
                         acc_t lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                         int64_t i = 0;
                         for (; i + 8 <= cols; i += 8)
                           for (int l = 0; l < 8; ++l) {
                             acc_t v = static_cast<acc_t>(row[i + l]);
                             lanes[l] += v * v;
                           }
                         acc_t sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                                     ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
                         for (; i < cols; ++i) {
                           acc_t v = static_cast<acc_t>(row[i]);
                           sum += v * v;
                         }
                         const acc_t inv =
                             acc_t(1) / std::sqrt(sum / static_cast<acc_t>(cols) + static_cast<acc_t>(eps));
                         scalar_t* o = out + r * cols;
                         for (int64_t j = 0; j < cols; ++j)
                           o[j] = w[j] * static_cast<scalar_t>(static_cast<acc_t>(row[j]) * inv);
                       }
                     });
  });
  return y;
}
}  // namespace

TORCH_LIBRARY_IMPL(unime, CPU, m) { m.impl("rms_norm", &rms_norm_cpu); }

}  // namespace unime::ops
