// The Meta (fake) kernels of every unime op, for torch.compile and shape propagation: the same
// argument checks as the real kernels (no data is read), then empty outputs of the right shape,
// dtype and device. Outputs must match the CPU/CUDA kernels exactly; opcheck tests that.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "ops/common/loss_common.h"
#include "ops/ops.h"

namespace unime::ops {
namespace {

at::Tensor rms_norm_meta(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check_rms_norm_args(x, weight, eps);
  return at::empty_like(x);
}

at::Tensor similarity_kl_meta(const at::Tensor& student, const at::Tensor& teacher, double temperature,
                              c10::string_view direction, c10::string_view reduction, bool normalize) {
  check_similarity_kl_args(student, teacher, temperature);
  parse_kl_direction(direction, "similarity_kl");
  parse_sum_reduction(reduction, "similarity_kl");
  return at::empty({}, student.options());
}

at::Tensor judge_alignment_meta(const at::Tensor& query, const at::Tensor& candidates, const at::Tensor& judge_scores,
                                double temperature, double eps, bool normalize) {
  check_judge_alignment_args(query, candidates, judge_scores, temperature, eps);
  return at::empty({}, query.options());
}

std::tuple<at::Tensor, at::Tensor> hard_negative_infonce_meta(const at::Tensor& query, const at::Tensor& candidate,
                                                              const std::optional<at::Tensor>& negatives, int64_t k,
                                                              double beta, double temperature, bool all_in_batch,
                                                              bool normalize) {
  check_hard_negative_infonce_args(query, candidate, negatives, k, beta, temperature);
  return {at::empty({}, query.options()),
          at::empty({query.size(0), all_in_batch ? 0 : k}, query.options().dtype(at::kLong))};
}

std::tuple<at::Tensor, at::Tensor> mine_hard_negatives_meta(const at::Tensor& query, const at::Tensor& corpus,
                                                            int64_t k, const std::optional<at::Tensor>& max_score,
                                                            const std::optional<at::Tensor>& exclude,
                                                            const std::optional<at::Tensor>& query_ids,
                                                            const std::optional<at::Tensor>& corpus_ids,
                                                            int64_t index_offset, int64_t chunk_size) {
  check_mine_hard_negatives_args(query, corpus, k, max_score, exclude, query_ids, corpus_ids, chunk_size);
  const auto compute = loss_compute_dtype(query.scalar_type(), query.scalar_type());
  return {at::empty({query.size(0), k}, query.options().dtype(at::kLong)),
          at::empty({query.size(0), k}, query.options().dtype(compute))};
}

}  // namespace

TORCH_LIBRARY_IMPL(unime, Meta, m) {
  m.impl("rms_norm", &rms_norm_meta);
  m.impl("similarity_kl", &similarity_kl_meta);
  m.impl("judge_alignment", &judge_alignment_meta);
  m.impl("hard_negative_infonce", &hard_negative_infonce_meta);
  m.impl("mine_hard_negatives", &mine_hard_negatives_meta);
}

}  // namespace unime::ops
