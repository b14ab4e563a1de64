// The two softmax-KL objectives on CPU (similarity_kl, UniME stage 1; judge_alignment, UniME-V2):
// the row kernel, and the CPU registrations that run the device-generic bodies of
// csrc/ops/common/softmax_kl.cc with it.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>

#include "ops/common/loss_common.h"

namespace unime::ops {
namespace {

at::Tensor softmax_kl_rows_cpu(const at::Tensor& a, const at::Tensor& b, KlDirection direction, double eps) {
  const int64_t rows = a.size(0), cols = a.size(1);
  auto out = at::empty({rows}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "unime_softmax_kl_rows_cpu", [&] {
    const scalar_t* pa = a.const_data_ptr<scalar_t>();
    const scalar_t* pb = b.const_data_ptr<scalar_t>();
    scalar_t* po = out.mutable_data_ptr<scalar_t>();
    const bool with_eps = eps > 0;
    const scalar_t log_eps = with_eps ? static_cast<scalar_t>(std::log(eps)) : scalar_t(0);
    // log(exp(l) + eps) as logaddexp(l, log eps): exact where exp(l) underflows or rounds next to eps.
    const auto log_plus_eps = [&](scalar_t l) {
      return std::max(l, log_eps) + std::log1p(std::exp(-std::abs(l - log_eps)));
    };
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
        // KL(P||Q) = sum p (lp - lq), KL(Q||P) = sum q (lq - lp): one pass for both. With eps the
        // subtracted log is the other side's log(x + eps), as UniME-V2's F.kl_div(log(x + 1e-8), ..).
        scalar_t kl_pq = 0, kl_qp = 0;
        for (int64_t j = 0; j < cols; ++j) {
          const scalar_t lp = (x[j] - mx) - log_sx, lq = (y[j] - my) - log_sy;
          kl_pq += std::exp(lp) * (lp - (with_eps ? log_plus_eps(lq) : lq));
          kl_qp += std::exp(lq) * (lq - (with_eps ? log_plus_eps(lp) : lp));
        }
        po[r] = direction == KlDirection::kStudentTeacher   ? kl_pq
                : direction == KlDirection::kTeacherStudent ? kl_qp
                                                            : scalar_t(0.5) * (kl_pq + kl_qp);
      }
    });
  });
  return out;
}

at::Tensor similarity_kl_cpu(const at::Tensor& student, const at::Tensor& teacher, double temperature,
                             c10::string_view direction, c10::string_view reduction, bool normalize) {
  return similarity_kl_body(student, teacher, temperature, direction, reduction, normalize, all_finite_cpu,
                            softmax_kl_rows_cpu);
}

at::Tensor judge_alignment_cpu(const at::Tensor& query, const at::Tensor& candidates, const at::Tensor& judge_scores,
                               double temperature, double eps, bool normalize) {
  return judge_alignment_body(query, candidates, judge_scores, temperature, eps, normalize, all_finite_cpu,
                              softmax_kl_rows_cpu);
}

}  // namespace

TORCH_LIBRARY_IMPL(unime, CPU, m) {
  m.impl("similarity_kl", &similarity_kl_cpu);
  m.impl("judge_alignment", &judge_alignment_cpu);
}

}  // namespace unime::ops
