// Autograd of the UniME objectives, registered in C++ so Python and the C++ trainer both get
// gradients. Forwards run the CPU/CUDA kernels; backwards are closed-form ATen maths (device-generic)
// that recompute the cheap logits from the saved inputs rather than keep n x n buffers alive.
// normalize=True L2-normalises the embeddings here, with plain differentiable ATen ops outside the
// autograd::Function, so autograd chains the normalisation's Jacobian onto the closed-form backward.
// The miner is not differentiable: its Autograd kernel only steps below autograd.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <cmath>
#include <limits>

#include "ops/common/loss_common.h"
#include "ops/ops.h"

namespace unime::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// d KL_row / d a and d KL_row / d b for P = softmax(a), Q = softmax(b) (rows of (n, m)), where
// KL_eps(P||Q) = sum p (log p - log(q + eps)) (eps = 0: the exact KL). With rp = p / (p + eps) and
// rq = q / (q + eps) (both 1 at eps = 0):
//   KL_eps(P||Q): ga = P * (u - sum(P * u)), u = log P - log(Q + eps);   gb = Q * sum(P * rq) - P * rq
//   KL_eps(Q||P): ga = P * sum(Q * rp) - Q * rp;   gb = Q * (v - sum(Q * v)), v = log Q - log(P + eps)
// The 1/(q + eps) of d log(q + eps) / dq is folded into rq, so nothing is divided by a tiny q.
std::pair<at::Tensor, at::Tensor> softmax_kl_logit_grads(const at::Tensor& a, const at::Tensor& b, KlDirection dir,
                                                         double eps) {
  auto lp = at::log_softmax(a, 1), lq = at::log_softmax(b, 1);
  auto p = lp.exp(), q = lq.exp();
  at::Tensor lp_eps = lp, lq_eps = lq;
  if (eps > 0) {
    const double log_eps = std::log(eps);  // log(x + eps) = logaddexp(log x, log eps)
    const auto log_plus_eps = [&](const at::Tensor& l) {
      return l.clamp_min(log_eps) + at::log1p(at::exp(-(l - log_eps).abs()));
    };
    lp_eps = log_plus_eps(lp);
    lq_eps = log_plus_eps(lq);
  }
  at::Tensor ga_pq, gb_pq, ga_qp, gb_qp;
  if (dir != KlDirection::kTeacherStudent) {
    auto u = lp - lq_eps;
    ga_pq = p * (u - (p * u).sum(1, true));
    if (eps > 0) {
      auto p_rq = p * (lq - lq_eps).exp();
      gb_pq = q * p_rq.sum(1, true) - p_rq;
    } else {
      gb_pq = q - p;
    }
  }
  if (dir != KlDirection::kStudentTeacher) {
    auto v = lq - lp_eps;
    gb_qp = q * (v - (q * v).sum(1, true));
    if (eps > 0) {
      auto q_rp = q * (lp - lp_eps).exp();
      ga_qp = p * q_rp.sum(1, true) - q_rp;
    } else {
      ga_qp = p - q;
    }
  }
  if (dir == KlDirection::kStudentTeacher) return {ga_pq, gb_pq};
  if (dir == KlDirection::kTeacherStudent) return {ga_qp, gb_qp};
  return {0.5 * (ga_pq + ga_qp), 0.5 * (gb_pq + gb_qp)};
}

class SimilarityKlFunction : public torch::autograd::Function<SimilarityKlFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& student, const at::Tensor& teacher,
                            double temperature, const std::string& direction, const std::string& reduction) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({student, teacher});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["direction"] = direction;
    ctx->saved_data["reduction"] = reduction;
    return similarity_kl(student, teacher, temperature, direction, reduction, /*normalize=*/false);
  }

  // S = E E^T / tau, so dL/dE = (G + G^T) E / tau with G = dL/d(logits).
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const auto& student = saved[0];
    const auto& teacher = saved[1];
    const double tau = ctx->saved_data["temperature"].toDouble();
    const auto dir = parse_kl_direction(ctx->saved_data["direction"].toStringRef(), "similarity_kl");
    const bool sum = parse_sum_reduction(ctx->saved_data["reduction"].toStringRef(), "similarity_kl");
    const auto compute = loss_compute_dtype(student.scalar_type(), teacher.scalar_type());
    auto s = student.to(compute), t = teacher.to(compute);
    auto [ga, gb] = softmax_kl_logit_grads(at::mm(s, s.t()) / tau, at::mm(t, t.t()) / tau, dir, /*eps=*/0.0);
    auto scale = grad_outputs[0].to(compute) / (tau * (sum ? 1.0 : static_cast<double>(s.size(0))));
    ga = ga * scale;
    gb = gb * scale;
    at::Tensor d_student, d_teacher;
    if (ctx->needs_input_grad(0)) d_student = at::mm(ga + ga.t(), s).to(student.scalar_type());
    if (ctx->needs_input_grad(1)) d_teacher = at::mm(gb + gb.t(), t).to(teacher.scalar_type());
    return {d_student, d_teacher, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class JudgeAlignmentFunction : public torch::autograd::Function<JudgeAlignmentFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& query, const at::Tensor& candidates,
                            const at::Tensor& judge_scores, double temperature, double eps) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({query, candidates, judge_scores});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["eps"] = eps;
    return judge_alignment(query, candidates, judge_scores, temperature, eps, /*normalize=*/false);
  }

  // a = (c . q) / tau (B, m), b = judge / tau; the loss is the batch mean of the symmetric KL.
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const auto& query = saved[0];
    const auto& candidates = saved[1];
    const auto& judge = saved[2];
    const double tau = ctx->saved_data["temperature"].toDouble();
    const double eps = ctx->saved_data["eps"].toDouble();
    const auto compute = loss_compute_dtype(query.scalar_type(), judge.scalar_type());
    auto q = query.to(compute), c = candidates.to(compute);
    auto a = at::bmm(c, q.unsqueeze(2)).squeeze(2) / tau;
    auto [ga, gb] = softmax_kl_logit_grads(a, judge.to(compute) / tau, KlDirection::kSymmetric, eps);
    auto scale = grad_outputs[0].to(compute) / (tau * static_cast<double>(q.size(0)));
    ga = ga * scale;
    at::Tensor d_query, d_candidates, d_judge;
    if (ctx->needs_input_grad(0)) d_query = at::bmm(ga.unsqueeze(1), c).squeeze(1).to(query.scalar_type());
    if (ctx->needs_input_grad(1)) d_candidates = (ga.unsqueeze(2) * q.unsqueeze(1)).to(candidates.scalar_type());
    if (ctx->needs_input_grad(2)) d_judge = (gb * scale).to(judge.scalar_type());
    return {d_query, d_candidates, d_judge, at::Tensor(), at::Tensor()};
  }
};

class HardNegativeInfonceFunction : public torch::autograd::Function<HardNegativeInfonceFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& query, const at::Tensor& candidate,
                               const std::optional<at::Tensor>& negatives, int64_t k, double beta, double temperature,
                               bool all_in_batch) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [loss, picked] =
        hard_negative_infonce(query, candidate, negatives, k, beta, temperature, all_in_batch, /*normalize=*/false);
    ctx->save_for_backward({query, candidate, negatives.value_or(at::Tensor()), picked});
    ctx->saved_data["beta"] = beta;
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["all_in_batch"] = all_in_batch;
    ctx->mark_non_differentiable({picked});
    return {loss, picked};
  }

  // Softmax over the row's logits [positive, chosen negatives, explicit negatives] / tau, minus the
  // one-hot of the positive, scattered back to the chosen columns of S = q c^T (dense (B, N), the
  // forward's size) and pushed through the matmuls.
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const auto& query = saved[0];
    const auto& candidate = saved[1];
    const auto& negatives = saved[2];
    const auto& picked = saved[3];
    const double beta = ctx->saved_data["beta"].toDouble();
    const double tau = ctx->saved_data["temperature"].toDouble();
    const bool all_in_batch = ctx->saved_data["all_in_batch"].toBool();
    const auto compute = loss_compute_dtype(query.scalar_type(), query.scalar_type());
    const int64_t batch = query.size(0), num_candidates = candidate.size(0);
    auto q = query.to(compute), c = candidate.to(compute);
    auto scores = at::mm(q, c.t());  // (B, N), the same matmul as the forward: same filter decisions
    auto rows = at::arange(batch, q.options().dtype(at::kLong));
    const double neg_inf = -std::numeric_limits<double>::infinity();
    at::Tensor columns, row_logits;  // (B, c) columns of S in the denominator and their logits
    if (all_in_batch) {
      auto positive = scores.diagonal().unsqueeze(1);
      auto is_diag = at::eye(batch, num_candidates, scores.options().dtype(at::kBool));
      auto keep = scores.le(positive + beta).logical_or(is_diag);
      columns = at::arange(num_candidates, rows.options()).expand({batch, num_candidates});
      row_logits = at::where(keep, scores, neg_inf);
    } else {
      columns = at::cat({rows.unsqueeze(1), picked}, 1);
      row_logits = at::where(columns.ge(0), scores.gather(1, columns.clamp_min(0)), neg_inf);
    }
    at::Tensor explicit_logits = negatives.defined() ? at::bmm(negatives.to(compute), q.unsqueeze(2)).squeeze(2)
                                                     : at::empty({batch, 0}, q.options());
    const int64_t width = row_logits.size(1);
    auto probs = at::softmax(at::cat({row_logits, explicit_logits}, 1) / tau, 1);
    auto scale = grad_outputs[0].to(compute) / (tau * static_cast<double>(batch));
    auto g_rows = probs.slice(1, 0, width) * scale;
    auto g_explicit = probs.slice(1, width) * scale;
    auto d_scores = at::zeros_like(scores).scatter_add_(1, columns.clamp_min(0), g_rows);
    d_scores.diagonal().sub_(scale);  // the -1 of the positive's one-hot target
    at::Tensor d_query, d_candidate, d_negatives;
    if (ctx->needs_input_grad(0)) {
      auto dq = at::mm(d_scores, c);
      if (negatives.defined()) dq = dq + at::bmm(g_explicit.unsqueeze(1), negatives.to(compute)).squeeze(1);
      d_query = dq.to(query.scalar_type());
    }
    if (ctx->needs_input_grad(1)) d_candidate = at::mm(d_scores.t(), q).to(candidate.scalar_type());
    if (negatives.defined() && ctx->needs_input_grad(2))  // an absent optional has no input slot
      d_negatives = (g_explicit.unsqueeze(2) * q.unsqueeze(1)).to(negatives.scalar_type());
    return {d_query, d_candidate, d_negatives, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor similarity_kl_autograd(const at::Tensor& student, const at::Tensor& teacher, double temperature,
                                  c10::string_view direction, c10::string_view reduction, bool normalize) {
  if (!normalize)
    return SimilarityKlFunction::apply(student, teacher, temperature, std::string(direction), std::string(reduction));
  check_similarity_kl_args(student, teacher, temperature);  // before any cast could hide a bad argument
  const auto compute = loss_compute_dtype(student.scalar_type(), teacher.scalar_type());
  return SimilarityKlFunction::apply(l2_normalize_rows(student.to(compute)), l2_normalize_rows(teacher.to(compute)),
                                     temperature, std::string(direction), std::string(reduction))
      .to(student.scalar_type());
}

at::Tensor judge_alignment_autograd(const at::Tensor& query, const at::Tensor& candidates,
                                    const at::Tensor& judge_scores, double temperature, double eps, bool normalize) {
  if (!normalize) return JudgeAlignmentFunction::apply(query, candidates, judge_scores, temperature, eps);
  check_judge_alignment_args(query, candidates, judge_scores, temperature, eps);
  const auto compute = loss_compute_dtype(query.scalar_type(), judge_scores.scalar_type());
  return JudgeAlignmentFunction::apply(l2_normalize_rows(query.to(compute)), l2_normalize_rows(candidates.to(compute)),
                                       judge_scores, temperature, eps)
      .to(query.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> hard_negative_infonce_autograd(const at::Tensor& query, const at::Tensor& candidate,
                                                                  const std::optional<at::Tensor>& negatives, int64_t k,
                                                                  double beta, double temperature, bool all_in_batch,
                                                                  bool normalize) {
  if (!normalize) {
    auto out = HardNegativeInfonceFunction::apply(query, candidate, negatives, k, beta, temperature, all_in_batch);
    return {out[0], out[1]};
  }
  check_hard_negative_infonce_args(query, candidate, negatives, k, beta, temperature);
  const auto compute = loss_compute_dtype(query.scalar_type(), query.scalar_type());
  std::optional<at::Tensor> n;
  if (negatives.has_value()) n = l2_normalize_rows(negatives->to(compute));
  auto out =
      HardNegativeInfonceFunction::apply(l2_normalize_rows(query.to(compute)), l2_normalize_rows(candidate.to(compute)),
                                         n, k, beta, temperature, all_in_batch);
  return {out[0].to(query.scalar_type()), out[1]};
}

std::tuple<at::Tensor, at::Tensor> mine_hard_negatives_autograd(const at::Tensor& query, const at::Tensor& corpus,
                                                                int64_t k, const std::optional<at::Tensor>& max_score,
                                                                const std::optional<at::Tensor>& exclude,
                                                                const std::optional<at::Tensor>& query_ids,
                                                                const std::optional<at::Tensor>& corpus_ids,
                                                                int64_t index_offset, int64_t chunk_size) {
  // Selection is piecewise constant: indices and scores carry no gradient (re-score the chosen
  // items with a differentiable dot product where one is wanted).
  at::AutoDispatchBelowADInplaceOrView guard;
  return mine_hard_negatives(query, corpus, k, max_score, exclude, query_ids, corpus_ids, index_offset, chunk_size);
}

}  // namespace

TORCH_LIBRARY_IMPL(unime, Autograd, m) {
  m.impl("similarity_kl", &similarity_kl_autograd);
  m.impl("judge_alignment", &judge_alignment_autograd);
  m.impl("hard_negative_infonce", &hard_negative_infonce_autograd);
  m.impl("mine_hard_negatives", &mine_hard_negatives_autograd);
}

}  // namespace unime::ops
