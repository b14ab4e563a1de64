// Argument checks and small shared helpers of the UniME objectives and the miner. Every check is
// Meta-safe (shapes, dtypes, devices, scalars; no data) except check_all_finite, which reads the data
// through the device's AllFiniteFn.
#include <ATen/ATen.h>

#include <cmath>
#include <string>

#include "ops/common/loss_common.h"

namespace unime::ops {

KlDirection parse_kl_direction(c10::string_view direction, const char* op) {
  if (direction == "student_teacher") return KlDirection::kStudentTeacher;
  if (direction == "teacher_student") return KlDirection::kTeacherStudent;
  if (direction == "symmetric") return KlDirection::kSymmetric;
  TORCH_CHECK_VALUE(false, "unime.", op,
                    ": direction must be 'student_teacher', 'teacher_student' or 'symmetric', got '",
                    std::string(direction), "'");
}

bool parse_sum_reduction(c10::string_view reduction, const char* op) {
  TORCH_CHECK_VALUE(reduction == "sum" || reduction == "mean", "unime.", op,
                    ": reduction must be 'sum' or 'mean', got '", std::string(reduction), "'");
  return reduction == "sum";
}

at::ScalarType loss_compute_dtype(at::ScalarType a, at::ScalarType b) {
  return a == at::kDouble || b == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor l2_normalize_rows(const at::Tensor& x) {
  return x / at::linalg_vector_norm(x, 2, {-1}, /*keepdim=*/true).clamp_min(1e-12);
}

bool all_finite_aten(const at::Tensor& x) { return at::isfinite(x).all().item<bool>(); }

void check_all_finite(const at::Tensor& x, const char* op, const char* arg, AllFiniteFn all_finite) {
  if (x.numel() == 0) return;
  TORCH_CHECK_VALUE(all_finite(x), "unime.", op, ": ", arg,
                    " contains NaN or Inf; the loss and its gradient would be NaN");
}

namespace {
void check_float_matrix(const at::Tensor& x, const char* op, const char* arg) {
  TORCH_CHECK_VALUE(x.dim() == 2, "unime.", op, ": ", arg, " must be 2-D (n, dim), got shape ", x.sizes());
  TORCH_CHECK_VALUE(at::isFloatingType(x.scalar_type()), "unime.", op, ": ", arg, " must be floating point, got ",
                    x.scalar_type());
}
void check_temperature(double temperature, const char* op) {
  TORCH_CHECK_VALUE(temperature > 0 && std::isfinite(temperature), "unime.", op,
                    ": temperature must be finite and > 0, got ", temperature);
}
}  // namespace

void check_similarity_kl_args(const at::Tensor& student, const at::Tensor& teacher, double temperature) {
  check_float_matrix(student, "similarity_kl", "student");
  check_float_matrix(teacher, "similarity_kl", "teacher");
  TORCH_CHECK_VALUE(student.size(0) == teacher.size(0), "unime.similarity_kl: student and teacher must embed the same ",
                    "batch, got student ", student.sizes(), " and teacher ", teacher.sizes());
  TORCH_CHECK_VALUE(student.size(0) >= 1, "unime.similarity_kl: the batch is empty");
  TORCH_CHECK_VALUE(student.device() == teacher.device(), "unime.similarity_kl: student is on ", student.device(),
                    " but teacher is on ", teacher.device());
  check_temperature(temperature, "similarity_kl");
}

void check_judge_alignment_args(const at::Tensor& query, const at::Tensor& candidates, const at::Tensor& judge_scores,
                                double temperature, double eps) {
  check_float_matrix(query, "judge_alignment", "query");
  TORCH_CHECK_VALUE(candidates.dim() == 3 && candidates.size(0) == query.size(0) &&
                        candidates.size(2) == query.size(1) && candidates.size(1) >= 1,
                    "unime.judge_alignment: candidates must have shape (", query.size(0), ", 1 + negatives, ",
                    query.size(1), ") [positive first], got ", candidates.sizes());
  TORCH_CHECK_VALUE(judge_scores.dim() == 2 && judge_scores.size(0) == candidates.size(0) &&
                        judge_scores.size(1) == candidates.size(1),
                    "unime.judge_alignment: judge_scores must have shape (", candidates.size(0), ", ",
                    candidates.size(1), "), got ", judge_scores.sizes());
  TORCH_CHECK_VALUE(candidates.scalar_type() == query.scalar_type(), "unime.judge_alignment: candidates dtype ",
                    candidates.scalar_type(), " must equal query dtype ", query.scalar_type());
  TORCH_CHECK_VALUE(at::isFloatingType(judge_scores.scalar_type()),
                    "unime.judge_alignment: judge_scores must be floating point, got ", judge_scores.scalar_type());
  TORCH_CHECK_VALUE(candidates.device() == query.device() && judge_scores.device() == query.device(),
                    "unime.judge_alignment: query, candidates and judge_scores must be on one device, got ",
                    query.device(), ", ", candidates.device(), ", ", judge_scores.device());
  TORCH_CHECK_VALUE(query.size(0) >= 1, "unime.judge_alignment: the batch is empty");
  check_temperature(temperature, "judge_alignment");
  TORCH_CHECK_VALUE(eps >= 0 && std::isfinite(eps), "unime.judge_alignment: eps must be finite and >= 0 (1e-8: ",
                    "UniME-V2's log(p + 1e-8); 0: exact log-softmax), got ", eps);
}

void check_hard_negative_infonce_args(const at::Tensor& query, const at::Tensor& candidate,
                                      const std::optional<at::Tensor>& negatives, int64_t k, double beta,
                                      double temperature) {
  constexpr const char* op = "unime.hard_negative_infonce";
  TORCH_CHECK_VALUE(query.dim() == 2 && at::isFloatingType(query.scalar_type()), op,
                    ": query must be a 2-D (batch, dim) floating tensor, got shape ", query.sizes(), " dtype ",
                    query.scalar_type());
  TORCH_CHECK_VALUE(query.size(0) >= 1, op, ": the batch is empty");
  TORCH_CHECK_VALUE(candidate.dim() == 2 && candidate.size(1) == query.size(1) && candidate.size(0) >= query.size(0),
                    op, ": candidate must have shape (N >= ", query.size(0), ", ", query.size(1),
                    ") with candidate[i] the positive of query[i], got ", candidate.sizes());
  TORCH_CHECK_VALUE(candidate.scalar_type() == query.scalar_type(), op, ": candidate dtype ", candidate.scalar_type(),
                    " must equal query dtype ", query.scalar_type());
  TORCH_CHECK_VALUE(candidate.device() == query.device(), op, ": candidate is on ", candidate.device(),
                    " but query is on ", query.device());
  if (negatives.has_value()) {
    const auto& n = *negatives;
    TORCH_CHECK_VALUE(n.dim() == 3 && n.size(0) == query.size(0) && n.size(2) == query.size(1), op,
                      ": negatives must have shape (", query.size(0), ", m, ", query.size(1), "), got ", n.sizes());
    TORCH_CHECK_VALUE(n.scalar_type() == query.scalar_type() && n.device() == query.device(), op,
                      ": negatives must have query's dtype and device, got ", n.scalar_type(), " on ", n.device());
  }
  TORCH_CHECK_VALUE(k >= 0, op, ": k must be >= 0, got ", k);
  TORCH_CHECK_VALUE(!std::isnan(beta), op, ": beta must not be NaN (use inf to turn the filter off)");
  TORCH_CHECK_VALUE(temperature > 0 && std::isfinite(temperature), op, ": temperature must be finite and > 0, got ",
                    temperature);
}

void check_mine_hard_negatives_args(const at::Tensor& query, const at::Tensor& corpus, int64_t k,
                                    const std::optional<at::Tensor>& max_score,
                                    const std::optional<at::Tensor>& exclude,
                                    const std::optional<at::Tensor>& query_ids,
                                    const std::optional<at::Tensor>& corpus_ids, int64_t chunk_size) {
  constexpr const char* op = "unime.mine_hard_negatives";
  TORCH_CHECK_VALUE(query.dim() == 2 && at::isFloatingType(query.scalar_type()), op,
                    ": query must be a 2-D (Q, dim) floating tensor, got shape ", query.sizes(), " dtype ",
                    query.scalar_type());
  TORCH_CHECK_VALUE(corpus.dim() == 2 && corpus.size(1) == query.size(1), op, ": corpus must have shape (N, ",
                    query.size(1), "), got ", corpus.sizes());
  TORCH_CHECK_VALUE(corpus.scalar_type() == query.scalar_type() && corpus.device() == query.device(), op,
                    ": corpus must have query's dtype and device (", query.scalar_type(), " on ", query.device(),
                    "), got ", corpus.scalar_type(), " on ", corpus.device());
  TORCH_CHECK_VALUE(k >= 1, op, ": k must be >= 1, got ", k);
  TORCH_CHECK_VALUE(chunk_size >= 1, op, ": chunk_size must be >= 1, got ", chunk_size);
  const auto on_device = [&](const at::Tensor& t) { return t.device() == query.device(); };
  if (max_score.has_value())
    TORCH_CHECK_VALUE(max_score->dim() == 1 && max_score->size(0) == query.size(0) &&
                          at::isFloatingType(max_score->scalar_type()) && on_device(*max_score),
                      op, ": max_score must be a floating (", query.size(0), ",) tensor on ", query.device(), ", got ",
                      max_score->sizes(), " ", max_score->scalar_type());
  if (exclude.has_value())
    TORCH_CHECK_VALUE(exclude->dim() == 2 && exclude->size(0) == query.size(0) && exclude->scalar_type() == at::kLong &&
                          on_device(*exclude),
                      op, ": exclude must be an int64 (", query.size(0), ", m) tensor on ", query.device(), ", got ",
                      exclude->sizes(), " ", exclude->scalar_type());
  TORCH_CHECK_VALUE(query_ids.has_value() == corpus_ids.has_value(), op,
                    ": query_ids and corpus_ids come together (one without the other excludes nothing)");
  if (query_ids.has_value()) {
    TORCH_CHECK_VALUE(query_ids->dim() == 1 && query_ids->size(0) == query.size(0) &&
                          query_ids->scalar_type() == at::kLong && on_device(*query_ids),
                      op, ": query_ids must be an int64 (", query.size(0), ",) tensor on ", query.device(), ", got ",
                      query_ids->sizes(), " ", query_ids->scalar_type());
    TORCH_CHECK_VALUE(corpus_ids->dim() == 1 && corpus_ids->size(0) == corpus.size(0) &&
                          corpus_ids->scalar_type() == at::kLong && on_device(*corpus_ids),
                      op, ": corpus_ids must be an int64 (", corpus.size(0), ",) tensor on ", query.device(), ", got ",
                      corpus_ids->sizes(), " ", corpus_ids->scalar_type());
  }
}

}  // namespace unime::ops
