// The rotary position embedding on CPU in one pass, for inference: x * cos + rotate_half(x) * sin,
// rotate_half(x) = cat(-x[d/2:], x[:d/2]), where the unfused expression makes five full-size passes
// (the negation, the cat, two products and their sum). Each rounding of the unfused expression is
// kept, so the result is bit-identical to it for every non-NaN value (a NaN stays a NaN, with
// c10::BFloat16's payload 0x7FC0 where ATen's vectorised bf16 path writes 0xFFFF).
#pragma once

#include <ATen/core/Tensor.h>

namespace unime::ops {

// Whether cpu_rotary can compute this call: CPU tensors, no gradient needed, x (N, H, d) and cos, sin
// (N, 1, d) with unit-stride last dims and an even d, cos and sin of one dtype (the computation's:
// fp32 or bf16) and x of that dtype or bf16 with fp32 tables, a CPU with AVX-512F, and the kernel
// not switched off (set_cpu_rotary_enabled).
bool cpu_rotary_applies(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// Computed in cos' dtype with every product and the sum rounded to it, as the unfused expression on
// x converted to that dtype; returned contiguous in x's dtype (a bf16 x with fp32 tables: the
// fp32 result rounded once, as transformers' vision rotary casts back).
at::Tensor cpu_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

// Process-wide switch (default on), so tests and benchmarks can compare with the unfused expression.
// Returns the previous setting.
bool set_cpu_rotary_enabled(bool enabled);

}  // namespace unime::ops
