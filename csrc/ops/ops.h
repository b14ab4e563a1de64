// C++ entry points of the unime ops. Each one calls through the dispatcher (torch.ops.unime.*), so
// CPU, CUDA, Meta and Autograd kernels registered in csrc/ops/ are picked per tensor, and C++
// callers (the model, the trainer) share the one implementation Python sees.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>
#include <tuple>

namespace unime::ops {

// RMSNorm as Llama, Mistral, Phi-3 and Qwen2 define it:
//   y = weight * (x_f32 * rsqrt(mean(x_f32^2, -1) + eps)).to(x.dtype)
// x: (..., D) float16/bfloat16/float32/float64, weight: (D,) same dtype as x. Returns x's shape and dtype.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// The readable reference (plain ATen ops, differentiable): what every kernel is tested against.
at::Tensor rms_norm_reference(const at::Tensor& x, const at::Tensor& weight, double eps);

// Argument checks shared by every kernel of rms_norm; messages name the op and argument.
void check_rms_norm_args(const at::Tensor& x, const at::Tensor& weight, double eps);

// Fused activations (one pass over the data on CPU; the reference maths elsewhere). Each step is
// rounded to the input dtype as the unfused expression rounds it, so fused and unfused agree.
// SwiGLU's gate: silu(gate) * up. gate and up: same shape, dtype and device. Returns a contiguous tensor.
at::Tensor gated_silu(const at::Tensor& gate, const at::Tensor& up);
// CLIP's QuickGELU: x * sigmoid(1.702 * x). Returns a contiguous tensor of x's shape and dtype.
at::Tensor quick_gelu(const at::Tensor& x);
inline constexpr double kQuickGeluAlpha = 1.702;
at::Tensor gated_silu_reference(const at::Tensor& gate, const at::Tensor& up);
at::Tensor quick_gelu_reference(const at::Tensor& x);
void check_gated_silu_args(const at::Tensor& gate, const at::Tensor& up);
void check_quick_gelu_args(const at::Tensor& x);

// A Linear with a LoRA adapter (PEFT's maths): linear(x, weight, bias) + scaling * lora_b(lora_a(lora_x)),
// the adapter term computed in lora_a's dtype and added in the base output's dtype. x: (..., in);
// weight: (out, in); lora_a: (r, in); lora_b: (out, r); lora_x: the adapter's input (x after dropout,
// in lora_a's dtype), x cast to lora_a's dtype when absent. Composite: autograd comes from its ATen ops.
at::Tensor lora_linear(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                       const at::Tensor& lora_a, const at::Tensor& lora_b, double scaling,
                       const std::optional<at::Tensor>& lora_x);

// ---- UniME objectives and the hard-negative miner (docs/losses.md; kernels in cpu/, cuda/) ----
// The losses expect L2-normalised embeddings; normalize=true L2-normalises them inside (differentiably).
// Stage-1 relational distillation: KL between row-softmaxes of student (n, ds) and teacher (n, dt)
// in-batch similarity matrices e e^T / temperature. Returns a 0-d tensor in student's dtype.
at::Tensor similarity_kl(const at::Tensor& student, const at::Tensor& teacher, double temperature,
                         c10::string_view direction, c10::string_view reduction, bool normalize = false);
// Stage-2 InfoNCE over [positive, top-k filtered in-batch negatives (or all), explicit negatives].
// query (B, d), candidate (N >= B, d) with candidate[i] query i's positive, negatives (B, m, d).
// Returns (mean loss, 0-d; hard-negative indices (B, k) int64, -1 padded).
std::tuple<at::Tensor, at::Tensor> hard_negative_infonce(const at::Tensor& query, const at::Tensor& candidate,
                                                         const std::optional<at::Tensor>& negatives, int64_t k,
                                                         double beta, double temperature, bool all_in_batch,
                                                         bool normalize = false);
// UniME-V2: symmetric KL between softmax(cos / tau) and softmax(judge / tau), batch mean, each KL
// taking log(x + eps) of the other distribution as the released loss does (eps = 0: exact KL).
// query (B, d), candidates (B, 1 + k, d) positive first, judge_scores (B, 1 + k).
at::Tensor judge_alignment(const at::Tensor& query, const at::Tensor& candidates, const at::Tensor& judge_scores,
                           double temperature, double eps = 1e-8, bool normalize = false);
// Top-k corpus items per query with exclusions, tiled so Q x N scores never exist at once.
// Returns (indices (Q, k) int64 global, -1 padded; scores (Q, k) float32/float64, -inf padded).
std::tuple<at::Tensor, at::Tensor> mine_hard_negatives(const at::Tensor& query, const at::Tensor& corpus, int64_t k,
                                                       const std::optional<at::Tensor>& max_score,
                                                       const std::optional<at::Tensor>& exclude,
                                                       const std::optional<at::Tensor>& query_ids,
                                                       const std::optional<at::Tensor>& corpus_ids,
                                                       int64_t index_offset, int64_t chunk_size);

}  // namespace unime::ops
