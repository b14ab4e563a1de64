// C++ entry points of the unime ops. Each one calls through the dispatcher (torch.ops.unime.*), so
// CPU, CUDA, Meta and Autograd kernels registered in csrc/ops/ are picked per tensor, and C++
// callers (the model, the trainer) share the one implementation Python sees.
#pragma once

#include <ATen/core/Tensor.h>

namespace unime::ops {

// RMSNorm as Llama, Mistral, Phi-3 and Qwen2 define it:
//   y = weight * (x_f32 * rsqrt(mean(x_f32^2, -1) + eps)).to(x.dtype)
// x: (..., D) float16/bfloat16/float32/float64, weight: (D,) same dtype as x. Returns x's shape and dtype.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// The readable reference (plain ATen ops, differentiable): what every kernel is tested against.
at::Tensor rms_norm_reference(const at::Tensor& x, const at::Tensor& weight, double eps);

// Argument checks shared by every kernel of rms_norm; messages name the op and argument.
void check_rms_norm_args(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace unime::ops
