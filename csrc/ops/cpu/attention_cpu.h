// Attention on CPU in bf16 with the AVX512-BF16 dot-product instruction, for inference: torch's CPU
// flash kernel reaches 25-40% of the bf16 matmul peak on encoder shapes; this one computes a block of
// queries' scores against all their keys with a register-tiled bf16 GEMM (fp32 accumulation), the
// softmax in fp32 over whole rows (no online rescaling), and the probabilities (rounded to bf16, as
// the flash kernel rounds them) times V with the same GEMM. Memory: O(block x keys) per thread.
#pragma once

#include <ATen/core/Tensor.h>

namespace unime::ops {

// Whether cpu_bf16_attention can compute this call: CPU bf16 tensors with a unit-stride last dim,
// an even head_dim up to 256, no gradient needed, a CPU with AVX512-BF16 (and BW, VL), and the
// kernel not switched off (set_cpu_bf16_attention_enabled).
bool cpu_bf16_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// q (Lq, Hq, d), k and v (Lk, Hk, d) with Hq a multiple of Hk (grouped-query heads); any token and
// head strides. causal: Lq == Lk and query i sees keys j <= i; else every key. Returns (Lq, Hq, d) bf16.
at::Tensor cpu_bf16_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, bool causal, double scale);

// Process-wide switch (default on), so tests and benchmarks can compare with torch's kernel.
// Returns the previous setting.
bool set_cpu_bf16_attention_enabled(bool enabled);

}  // namespace unime::ops
