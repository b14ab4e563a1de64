// The hard-negative miner on CPU: the fold of one score tile into the running top-k (rows in
// parallel), and the CPU registration that runs the tiled body of csrc/ops/common/ with it.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>

#include "ops/common/loss_common.h"

namespace unime::ops {
namespace {

// 2^24 scores (64 MB in float32) per tile: big enough for BLAS, small next to the corpus.
constexpr int64_t kCpuTileElements = int64_t(1) << 24;

void top_k_update_cpu(const at::Tensor& scores, int64_t row_begin, int64_t col_begin, const MinerMasks& masks,
                      at::Tensor& best_idx, at::Tensor& best_score) {
  const int64_t rows = scores.size(0), cols = scores.size(1), k = best_idx.size(1);
  const int64_t m = masks.exclude.defined() ? masks.exclude.size(1) : 0;
  AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "unime_top_k_update_cpu", [&] {
    const scalar_t* s = scores.const_data_ptr<scalar_t>();
    const scalar_t* ceiling = masks.max_score.defined() ? masks.max_score.const_data_ptr<scalar_t>() : nullptr;
    const int64_t* ex = masks.exclude.defined() ? masks.exclude.const_data_ptr<int64_t>() : nullptr;
    const int64_t* qid = masks.query_ids.defined() ? masks.query_ids.const_data_ptr<int64_t>() : nullptr;
    const int64_t* cid = masks.corpus_ids.defined() ? masks.corpus_ids.const_data_ptr<int64_t>() : nullptr;
    int64_t* out_idx = best_idx.mutable_data_ptr<int64_t>();
    scalar_t* out_score = best_score.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t q = row_begin + r;
        const scalar_t* row = s + r * cols;
        scalar_t* top = out_score + q * k;
        int64_t* top_idx = out_idx + q * k;
        const scalar_t limit = ceiling ? ceiling[q] : std::numeric_limits<scalar_t>::infinity();
        for (int64_t j = 0; j < cols; ++j) {
          const scalar_t v = row[j];
          // Almost every column loses to the current k-th best: reject before the masks.
          if (!(v > top[k - 1]) || v > limit) continue;
          const int64_t local = col_begin + j, global = masks.index_offset + local;
          if (qid && cid[local] == qid[q]) continue;
          bool excluded = false;
          for (int64_t e = 0; e < m && !excluded; ++e) excluded = ex[q * m + e] == global;
          if (!excluded) insert_top_k(top, top_idx, k, v, global);
        }
      }
    });
  });
}

std::tuple<at::Tensor, at::Tensor> mine_hard_negatives_cpu(const at::Tensor& query, const at::Tensor& corpus, int64_t k,
                                                           const std::optional<at::Tensor>& max_score,
                                                           const std::optional<at::Tensor>& exclude,
                                                           const std::optional<at::Tensor>& query_ids,
                                                           const std::optional<at::Tensor>& corpus_ids,
                                                           int64_t index_offset, int64_t chunk_size) {
  return mine_hard_negatives_body(query, corpus, k, max_score, exclude, query_ids, corpus_ids, index_offset, chunk_size,
                                  all_finite_cpu, top_k_update_cpu, kCpuTileElements);
}

}  // namespace

TORCH_LIBRARY_IMPL(unime, CPU, m) { m.impl("mine_hard_negatives", &mine_hard_negatives_cpu); }

}  // namespace unime::ops
