// rms_norm's device-generic parts: the argument checks every kernel (CPU, CUDA, Meta) runs first, and
// the readable reference in plain ATen that the kernels are tested against.
#include <ATen/ATen.h>

#include "ops/ops.h"

namespace unime::ops {

void check_rms_norm_args(const at::Tensor& x, const at::Tensor& weight, double eps) {
  TORCH_CHECK_VALUE(x.dim() >= 1, "unime.rms_norm: x must have at least 1 dimension, got shape ", x.sizes());
  TORCH_CHECK_VALUE(at::isFloatingType(x.scalar_type()), "unime.rms_norm: x must be floating point, got ",
                    x.scalar_type());
  TORCH_CHECK_VALUE(weight.dim() == 1 && weight.size(0) == x.size(-1), "unime.rms_norm: weight must have shape (",
                    x.size(-1), ",) to match x's last dimension, got ", weight.sizes());
  TORCH_CHECK_VALUE(weight.scalar_type() == x.scalar_type(), "unime.rms_norm: weight dtype ", weight.scalar_type(),
                    " must equal x dtype ", x.scalar_type());
  TORCH_CHECK_VALUE(weight.device() == x.device(), "unime.rms_norm: weight is on ", weight.device(), " but x is on ",
                    x.device());
  TORCH_CHECK_VALUE(eps >= 0, "unime.rms_norm: eps must be >= 0, got ", eps);
}

at::Tensor rms_norm_reference(const at::Tensor& x, const at::Tensor& weight, double eps) {
  // fp64 stays fp64 (gradcheck); everything narrower is normalised in fp32 and cast back before
  // the weight, exactly as Hugging Face's LlamaRMSNorm does.
  auto compute = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  auto h = x.to(compute);
  h = h * at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * h.to(x.scalar_type());
}

}  // namespace unime::ops
