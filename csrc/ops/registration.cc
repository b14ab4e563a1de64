// The one declaration of every unime op (schemas). Kernels register per dispatch key in
// csrc/ops/cpu/, csrc/ops/cuda/ and csrc/ops/autograd/.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "ops/ops.h"

TORCH_LIBRARY(unime, m) {
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor");
}

namespace unime::ops {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("unime::rms_norm", "").typed<decltype(rms_norm)>();
  return op.call(x, weight, eps);
}

}  // namespace unime::ops
