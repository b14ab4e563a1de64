// The NaN/Inf input check of the loss ops and the miner on CPU: one parallel pass, no temporaries.
// at::isfinite(x).all() makes three full-size temporaries and took as long as the loss itself.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>

#include "ops/common/loss_common.h"

namespace unime::ops {

bool all_finite_cpu(const at::Tensor& x) {
  if (!at::isFloatingType(x.scalar_type())) return all_finite_aten(x);
  auto c = x.contiguous();
  bool ok = true;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, c.scalar_type(), "unime_all_finite_cpu", [&] {
    const scalar_t* p = c.const_data_ptr<scalar_t>();
    ok = at::parallel_reduce(
        0, c.numel(), 1 << 16, true,
        [&](int64_t begin, int64_t end, bool acc) {
          for (int64_t i = begin; i < end && acc; ++i) acc = std::isfinite(static_cast<double>(p[i]));
          return acc;
        },
        [](bool a, bool b) { return a && b; });
  });
  return ok;
}

}  // namespace unime::ops
