// The one declaration of every unime op (schemas), and the C++ entry points that call through the
// dispatcher. Kernels register per dispatch key: cpu/ (CPU), cuda/ (CUDA), meta/ (Meta, for
// torch.compile) and autograd/ (Autograd); the device-generic op bodies they share live in common/,
// and composite/ holds ops written in ATen ops for every device (their autograd comes from those).
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "ops/ops.h"

TORCH_LIBRARY(unime, m) {
  // x (..., D), weight (D,) -> (..., D): Llama's RMSNorm, normalised in fp32, returned in x's dtype.
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor");
  // gate, up (...) -> (...): silu(gate) * up, SwiGLU's product, in one pass.
  m.def("gated_silu(Tensor gate, Tensor up) -> Tensor");
  // x (...) -> (...): x * sigmoid(1.702 x), CLIP's QuickGELU, in one pass.
  m.def("quick_gelu(Tensor x) -> Tensor");
  // x (..., in), weight (out, in), lora_a (r, in), lora_b (out, r) -> (..., out): PEFT's LoRA Linear.
  m.def(
      "lora_linear(Tensor x, Tensor weight, Tensor? bias, Tensor lora_a, Tensor lora_b, float scaling, "
      "Tensor? lora_x=None) -> Tensor");
  // student (n, ds), teacher (n, dt) -> 0-d: KL of the row-softmaxes of e e^T / tau (UniME stage 1).
  m.def(
      "similarity_kl(Tensor student, Tensor teacher, float temperature=0.05, str direction=\"student_teacher\", "
      "str reduction=\"sum\", bool normalize=False) -> Tensor");
  // query (B, d), candidate (N >= B, d), negatives (B, m, d) -> (0-d InfoNCE, (B, k) int64 hard negatives used).
  m.def(
      "hard_negative_infonce(Tensor query, Tensor candidate, Tensor? negatives=None, int k=8, float beta=0.1, "
      "float temperature=0.02, bool all_in_batch=False, bool normalize=False) -> (Tensor, Tensor)");
  // query (B, d), candidates (B, 1+k, d), judge (B, 1+k) -> 0-d: UniME-V2's symmetric KL, log(x + eps) as released.
  m.def(
      "judge_alignment(Tensor query, Tensor candidates, Tensor judge_scores, float temperature=0.02, "
      "float eps=1e-08, bool normalize=False) -> Tensor");
  // query (Q, d), corpus (N, d) -> ((Q, k) int64 global indices, (Q, k) scores): each query's top-k after exclusions.
  m.def(
      "mine_hard_negatives(Tensor query, Tensor corpus, int k, Tensor? max_score=None, Tensor? exclude=None, "
      "Tensor? query_ids=None, Tensor? corpus_ids=None, int index_offset=0, int chunk_size=8192) -> (Tensor, Tensor)");
}

namespace unime::ops {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("unime::rms_norm", "").typed<decltype(rms_norm)>();
  return op.call(x, weight, eps);
}

at::Tensor gated_silu(const at::Tensor& gate, const at::Tensor& up) {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("unime::gated_silu", "").typed<decltype(gated_silu)>();
  return op.call(gate, up);
}

at::Tensor quick_gelu(const at::Tensor& x) {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("unime::quick_gelu", "").typed<decltype(quick_gelu)>();
  return op.call(x);
}

at::Tensor lora_linear(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                       const at::Tensor& lora_a, const at::Tensor& lora_b, double scaling,
                       const std::optional<at::Tensor>& lora_x) {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("unime::lora_linear", "").typed<decltype(lora_linear)>();
  return op.call(x, weight, bias, lora_a, lora_b, scaling, lora_x);
}

at::Tensor similarity_kl(const at::Tensor& student, const at::Tensor& teacher, double temperature,
                         c10::string_view direction, c10::string_view reduction, bool normalize) {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("unime::similarity_kl", "").typed<decltype(similarity_kl)>();
  return op.call(student, teacher, temperature, direction, reduction, normalize);
}

std::tuple<at::Tensor, at::Tensor> hard_negative_infonce(const at::Tensor& query, const at::Tensor& candidate,
                                                         const std::optional<at::Tensor>& negatives, int64_t k,
                                                         double beta, double temperature, bool all_in_batch,
                                                         bool normalize) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("unime::hard_negative_infonce", "")
                       .typed<decltype(hard_negative_infonce)>();
  return op.call(query, candidate, negatives, k, beta, temperature, all_in_batch, normalize);
}

at::Tensor judge_alignment(const at::Tensor& query, const at::Tensor& candidates, const at::Tensor& judge_scores,
                           double temperature, double eps, bool normalize) {
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("unime::judge_alignment", "").typed<decltype(judge_alignment)>();
  return op.call(query, candidates, judge_scores, temperature, eps, normalize);
}

std::tuple<at::Tensor, at::Tensor> mine_hard_negatives(const at::Tensor& query, const at::Tensor& corpus, int64_t k,
                                                       const std::optional<at::Tensor>& max_score,
                                                       const std::optional<at::Tensor>& exclude,
                                                       const std::optional<at::Tensor>& query_ids,
                                                       const std::optional<at::Tensor>& corpus_ids,
                                                       int64_t index_offset, int64_t chunk_size) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("unime::mine_hard_negatives", "")
                       .typed<decltype(mine_hard_negatives)>();
  return op.call(query, corpus, k, max_score, exclude, query_ids, corpus_ids, index_offset, chunk_size);
}

}  // namespace unime::ops
