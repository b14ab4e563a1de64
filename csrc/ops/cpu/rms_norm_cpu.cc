// rms_norm on CPU (its checks and reference maths: common/rms_norm.cc). The kernel reads each row
// twice from cache and writes it once, with no temporaries; the reference maths makes four full-size
// temporaries (fp32 copy, square, product, cast) and streams the tensor through memory five times.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <torch/library.h>

#include "ops/ops.h"

namespace unime::ops {

namespace {
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
