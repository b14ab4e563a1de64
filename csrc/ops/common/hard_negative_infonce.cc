// The device-generic body of UniME stage 2 (hard_negative_infonce): the similarity matrix and the
// explicit negatives' logits through ATen (BLAS / cuBLAS), then the device's fused row kernel, which
// filters (S_ij > S_ii + beta), picks the top-k survivors and takes the logsumexp in one pass.
#include <ATen/ATen.h>

#include "ops/common/loss_common.h"

namespace unime::ops {

std::tuple<at::Tensor, at::Tensor> hard_negative_infonce_body(const at::Tensor& query, const at::Tensor& candidate,
                                                              const std::optional<at::Tensor>& negatives, int64_t k,
                                                              double beta, double temperature, bool all_in_batch,
                                                              bool normalize, AllFiniteFn all_finite,
                                                              InfonceRowsFn infonce_rows) {
  constexpr const char* op = "hard_negative_infonce";
  check_hard_negative_infonce_args(query, candidate, negatives, k, beta, temperature);
  check_all_finite(query, op, "query", all_finite);
  check_all_finite(candidate, op, "candidate", all_finite);
  if (negatives.has_value()) check_all_finite(*negatives, op, "negatives", all_finite);
  const auto compute = loss_compute_dtype(query.scalar_type(), query.scalar_type());
  auto q = query.to(compute);
  auto c = candidate.to(compute);
  at::Tensor n = negatives.has_value() ? negatives->to(compute) : at::Tensor();
  if (normalize) {
    q = l2_normalize_rows(q);
    c = l2_normalize_rows(c);
    if (n.defined()) n = l2_normalize_rows(n);
  }
  // S (B, N) = q c^T: cosine similarities of every query with every candidate of the global batch.
  auto scores = at::mm(q, c.t()).contiguous();
  // (B, m) logits of the explicit per-query negatives (VLM2Vec-style hard negatives), unfiltered.
  auto explicit_logits =
      n.defined() ? at::bmm(n, q.unsqueeze(2)).squeeze(2).contiguous() : at::empty({q.size(0), 0}, q.options());
  auto [per_row, picked] = infonce_rows(scores, explicit_logits, k, beta, temperature, all_in_batch);
  return {per_row.mean().to(query.scalar_type()), picked};
}

}  // namespace unime::ops
