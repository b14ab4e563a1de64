// The device-generic bodies of the two softmax-KL objectives:
//   similarity_kl:   UniME stage 1, KL between row-softmaxes of the student's and the teacher's n x n
//                    in-batch similarity matrices (relational distillation: the dims may differ).
//   judge_alignment: UniME-V2, symmetric KL between softmax(cos / tau) and softmax(judge / tau) over
//                    each query's [positive, negatives].
// Both are a matmul (BLAS / cuBLAS through ATen) followed by the device's one-pass-per-row KL kernel,
// passed in by the CPU or CUDA registration.
#include <ATen/ATen.h>

#include "ops/common/loss_common.h"

namespace unime::ops {

at::Tensor similarity_kl_body(const at::Tensor& student, const at::Tensor& teacher, double temperature,
                              c10::string_view direction, c10::string_view reduction, bool normalize,
                              AllFiniteFn all_finite, SoftmaxKlRowsFn softmax_kl_rows) {
  check_similarity_kl_args(student, teacher, temperature);
  const KlDirection dir = parse_kl_direction(direction, "similarity_kl");
  const bool sum = parse_sum_reduction(reduction, "similarity_kl");
  check_all_finite(student, "similarity_kl", "student", all_finite);
  check_all_finite(teacher, "similarity_kl", "teacher", all_finite);
  const auto compute = loss_compute_dtype(student.scalar_type(), teacher.scalar_type());
  auto s = student.to(compute);
  auto t = teacher.to(compute);
  if (normalize) {
    s = l2_normalize_rows(s);
    t = l2_normalize_rows(t);
  }
  // (n, n) logits of each model: e_i . e_j / tau, diagonal included (Eq. 2's j runs over 1..n).
  auto a = at::mm(s, s.t()).div_(temperature).contiguous();
  auto b = at::mm(t, t.t()).div_(temperature).contiguous();
  auto per_row = softmax_kl_rows(a, b, dir, /*eps=*/0.0);
  auto loss = sum ? per_row.sum() : per_row.mean();
  return loss.to(student.scalar_type());
}

at::Tensor judge_alignment_body(const at::Tensor& query, const at::Tensor& candidates, const at::Tensor& judge_scores,
                                double temperature, double eps, bool normalize, AllFiniteFn all_finite,
                                SoftmaxKlRowsFn softmax_kl_rows) {
  check_judge_alignment_args(query, candidates, judge_scores, temperature, eps);
  check_all_finite(query, "judge_alignment", "query", all_finite);
  check_all_finite(candidates, "judge_alignment", "candidates", all_finite);
  check_all_finite(judge_scores, "judge_alignment", "judge_scores", all_finite);
  const auto compute = loss_compute_dtype(query.scalar_type(), judge_scores.scalar_type());
  auto q = query.to(compute);
  auto c = candidates.to(compute);
  if (normalize) {
    q = l2_normalize_rows(q);
    c = l2_normalize_rows(c);
  }
  // (B, 1 + k): cos(q, c) / tau per candidate, positive first (the inputs are unit vectors).
  auto a = at::bmm(c, q.unsqueeze(2)).squeeze(2).div_(temperature).contiguous();
  auto b = judge_scores.to(compute).div(temperature).contiguous();
  return softmax_kl_rows(a, b, KlDirection::kSymmetric, eps).mean().to(query.scalar_type());
}

}  // namespace unime::ops
