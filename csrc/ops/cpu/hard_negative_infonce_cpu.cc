// UniME stage 2 on CPU: InfoNCE over [positive, k hard negatives] with the false-negative filter,
// fused per row. The similarity matrix comes from one BLAS matmul (csrc/ops/common/); each row then
// filters (S_ij > S_ii + beta), picks its top-k survivors and takes the logsumexp in one pass, so the
// reference's masked copy, full-row top-k, gather and concatenation never exist.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <vector>

#include "ops/common/loss_common.h"

namespace unime::ops {
namespace {

std::tuple<at::Tensor, at::Tensor> infonce_rows_cpu(const at::Tensor& scores, const at::Tensor& explicit_logits,
                                                    int64_t k, double beta, double temperature, bool all_in_batch) {
  const int64_t rows = scores.size(0), cols = scores.size(1), m = explicit_logits.size(1);
  const int64_t kept = all_in_batch ? 0 : k;
  auto loss = at::empty({rows}, scores.options());
  auto picked = at::full({rows, kept}, -1, scores.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "unime_infonce_rows_cpu", [&] {
    const scalar_t* s = scores.const_data_ptr<scalar_t>();
    const scalar_t* e = explicit_logits.const_data_ptr<scalar_t>();
    scalar_t* out = loss.mutable_data_ptr<scalar_t>();
    int64_t* out_idx = picked.mutable_data_ptr<int64_t>();
    const scalar_t inv_tau = scalar_t(1) / static_cast<scalar_t>(temperature);
    const scalar_t neg_inf = -std::numeric_limits<scalar_t>::infinity();
    at::parallel_for(0, rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
      std::vector<scalar_t> best(kept);
      for (int64_t i = r0; i < r1; ++i) {
        const scalar_t* row = s + i * cols;
        const scalar_t* ex = e + i * m;
        const scalar_t pos = row[i];
        // The filter: S_ij > S_ii + beta is a likely false negative (strict, as UniME's loss.py).
        const scalar_t limit = pos + static_cast<scalar_t>(beta);  // rounds as the ATen backward does
        // Pass 1: the maximum logit (for a stable logsumexp) and, in top-k mode, the selection.
        scalar_t mx = pos;
        for (int64_t t = 0; t < m; ++t) mx = std::max(mx, ex[t]);
        int64_t* sel = out_idx + i * kept;
        if (all_in_batch) {
          for (int64_t j = 0; j < cols; ++j)
            if (j != i && !(row[j] > limit)) mx = std::max(mx, row[j]);
        } else if (kept > 0) {
          std::fill(best.begin(), best.end(), neg_inf);
          for (int64_t j = 0; j < cols; ++j)
            if (j != i && !(row[j] > limit)) insert_top_k(best.data(), sel, kept, row[j], j);
          mx = std::max(mx, best[0]);
        }
        // Pass 2: sum of exp((logit - max) / tau) over [positive, negatives, explicit negatives].
        scalar_t sum = std::exp((pos - mx) * inv_tau);
        for (int64_t t = 0; t < m; ++t) sum += std::exp((ex[t] - mx) * inv_tau);
        if (all_in_batch) {
          for (int64_t j = 0; j < cols; ++j)
            if (j != i && !(row[j] > limit)) sum += std::exp((row[j] - mx) * inv_tau);
        } else {
          for (int64_t t = 0; t < kept && sel[t] >= 0; ++t) sum += std::exp((best[t] - mx) * inv_tau);
        }
        out[i] = std::log(sum) + (mx - pos) * inv_tau;
      }
    });
  });
  return {loss, picked};
}

std::tuple<at::Tensor, at::Tensor> hard_negative_infonce_cpu(const at::Tensor& query, const at::Tensor& candidate,
                                                             const std::optional<at::Tensor>& negatives, int64_t k,
                                                             double beta, double temperature, bool all_in_batch,
                                                             bool normalize) {
  return hard_negative_infonce_body(query, candidate, negatives, k, beta, temperature, all_in_batch, normalize,
                                    all_finite_cpu, infonce_rows_cpu);
}

}  // namespace

TORCH_LIBRARY_IMPL(unime, CPU, m) { m.impl("hard_negative_infonce", &hard_negative_infonce_cpu); }

}  // namespace unime::ops
