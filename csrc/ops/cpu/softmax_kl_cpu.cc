// The two softmax-KL objectives on CPU (and their Meta kernels):
//   similarity_kl:   UniME stage 1, KL between row-softmaxes of the student's and the teacher's n x n
//                    in-batch similarity matrices (relational distillation: the dims may differ).
//   judge_alignment: UniME-V2, symmetric KL between softmax(cos / tau) and softmax(judge / tau) over
//                    each query's [positive, negatives].
// Both are a matmul (BLAS through ATen) followed by a one-pass-per-row KL kernel; the CUDA file
// supplies softmax_kl_rows_cuda and reuses the bodies below.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>

#include "ops/cpu/loss_kernels.h"
#include "ops/ops.h"

namespace unime::ops {

KlDirection parse_kl_direction(c10::string_view direction, const char* op) {
  if (direction == "student_teacher") return KlDirection::kStudentTeacher;
  if (direction == "teacher_student") return KlDirection::kTeacherStudent;
  if (direction == "symmetric") return KlDirection::kSymmetric;
  TORCH_CHECK_VALUE(false, "unime.", op, ": direction must be 'student_teacher', 'teacher_student' or 'symmetric', got '",
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

namespace {
// One pass, no temporaries: at::isfinite(x).all() makes three full-size temporaries and took as long
// as the loss itself on CPU.
bool all_finite_cpu(const at::Tensor& x) {
  auto c = x.contiguous();
  bool ok = true;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, c.scalar_type(), "unime_all_finite", [&] {
    const scalar_t* p = c.const_data_ptr<scalar_t>();
    ok = at::parallel_reduce(
        0, c.numel(), 1 << 16, true,
        [&](int64_t begin, int64_t end, bool acc) {
          for (int64_t i = begin; i < end && acc; ++i) acc = std::isfinite(static_cast<double>(p[i]));
          return acc;
        },
        [](bool a, bool b) { return a && b; });
  });
  return ok;
}
}  // namespace

void check_all_finite(const at::Tensor& x, const char* op, const char* arg) {
  if (x.numel() == 0) return;
  const bool finite = x.is_cpu() && at::isFloatingType(x.scalar_type()) ? all_finite_cpu(x)
                                                                         : at::isfinite(x).all().item<bool>();
  TORCH_CHECK_VALUE(finite, "unime.", op, ": ", arg, " contains NaN or Inf; the loss and its gradient would be NaN");
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
                                double temperature) {
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
}

at::Tensor softmax_kl_rows_cpu(const at::Tensor& a, const at::Tensor& b, KlDirection direction) {
  const int64_t rows = a.size(0), cols = a.size(1);
  auto out = at::empty({rows}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "unime_softmax_kl_rows_cpu", [&] {
    const scalar_t* pa = a.const_data_ptr<scalar_t>();
    const scalar_t* pb = b.const_data_ptr<scalar_t>();
    scalar_t* po = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const scalar_t* x = pa + r * cols;
        const scalar_t* y = pb + r * cols;
        // Log-normalisers of both rows: max, then log of the shifted sum (no overflow at tau=0.02).
        scalar_t mx = x[0], my = y[0];
        for (int64_t j = 1; j < cols; ++j) mx = std::max(mx, x[j]), my = std::max(my, y[j]);
        scalar_t sx = 0, sy = 0;
        for (int64_t j = 0; j < cols; ++j) sx += std::exp(x[j] - mx), sy += std::exp(y[j] - my);
        // log p = (x - max) - log(sum): adding max back first would round at the logits' magnitude
        // (1/tau = 20 on the diagonal: 2e-6 in fp32) before the small differences KL is made of.
        const scalar_t log_sx = std::log(sx), log_sy = std::log(sy);
        // KL(P||Q) = sum p (lp - lq), KL(Q||P) = sum q (lq - lp): one pass for both.
        scalar_t kl_pq = 0, kl_qp = 0;
        for (int64_t j = 0; j < cols; ++j) {
          const scalar_t lp = (x[j] - mx) - log_sx, lq = (y[j] - my) - log_sy;
          kl_pq += std::exp(lp) * (lp - lq);
          kl_qp += std::exp(lq) * (lq - lp);
        }
        po[r] = direction == KlDirection::kStudentTeacher   ? kl_pq
                : direction == KlDirection::kTeacherStudent ? kl_qp
                                                            : scalar_t(0.5) * (kl_pq + kl_qp);
      }
    });
  });
  return out;
}

namespace {
at::Tensor softmax_kl_rows(const at::Tensor& a, const at::Tensor& b, KlDirection direction) {
#ifdef UNIME_WITH_CUDA
  if (a.is_cuda()) return softmax_kl_rows_cuda(a, b, direction);
#endif
  return softmax_kl_rows_cpu(a, b, direction);
}
}  // namespace

at::Tensor similarity_kl_kernel(const at::Tensor& student, const at::Tensor& teacher, double temperature,
                                c10::string_view direction, c10::string_view reduction) {
  check_similarity_kl_args(student, teacher, temperature);
  const KlDirection dir = parse_kl_direction(direction, "similarity_kl");
  const bool sum = parse_sum_reduction(reduction, "similarity_kl");
  check_all_finite(student, "similarity_kl", "student");
  check_all_finite(teacher, "similarity_kl", "teacher");
  const auto compute = loss_compute_dtype(student.scalar_type(), teacher.scalar_type());
  // (n, n) logits of each model: e_i . e_j / tau, diagonal included (Eq. 2's j runs over 1..n).
  auto s = student.to(compute);
  auto t = teacher.to(compute);
  auto a = at::mm(s, s.t()).div_(temperature).contiguous();
  auto b = at::mm(t, t.t()).div_(temperature).contiguous();
  auto per_row = softmax_kl_rows(a, b, dir);
  auto loss = sum ? per_row.sum() : per_row.mean();
  return loss.to(student.scalar_type());
}

at::Tensor judge_alignment_kernel(const at::Tensor& query, const at::Tensor& candidates, const at::Tensor& judge_scores,
                                  double temperature) {
  check_judge_alignment_args(query, candidates, judge_scores, temperature);
  check_all_finite(query, "judge_alignment", "query");
  check_all_finite(candidates, "judge_alignment", "candidates");
  check_all_finite(judge_scores, "judge_alignment", "judge_scores");
  const auto compute = loss_compute_dtype(query.scalar_type(), judge_scores.scalar_type());
  // (B, 1 + k): cos(q, c) / tau per candidate, positive first. The inputs are unit vectors.
  auto a = at::bmm(candidates.to(compute), query.to(compute).unsqueeze(2)).squeeze(2).div_(temperature).contiguous();
  auto b = judge_scores.to(compute).div(temperature).contiguous();
  return softmax_kl_rows(a, b, KlDirection::kSymmetric).mean().to(query.scalar_type());
}

namespace {
at::Tensor similarity_kl_meta(const at::Tensor& student, const at::Tensor& teacher, double temperature,
                              c10::string_view direction, c10::string_view reduction) {
  check_similarity_kl_args(student, teacher, temperature);
  parse_kl_direction(direction, "similarity_kl");
  parse_sum_reduction(reduction, "similarity_kl");
  return at::empty({}, student.options());
}

at::Tensor judge_alignment_meta(const at::Tensor& query, const at::Tensor& candidates, const at::Tensor& judge_scores,
                                double temperature) {
  check_judge_alignment_args(query, candidates, judge_scores, temperature);
  return at::empty({}, query.options());
}
}  // namespace

TORCH_LIBRARY_IMPL(unime, CPU, m) {
  m.impl("similarity_kl", &similarity_kl_kernel);
  m.impl("judge_alignment", &judge_alignment_kernel);
}
TORCH_LIBRARY_IMPL(unime, Meta, m) {
  m.impl("similarity_kl", &similarity_kl_meta);
  m.impl("judge_alignment", &judge_alignment_meta);
}

}  // namespace unime::ops
