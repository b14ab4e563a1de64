// The device-generic body of the hard-negative miner: for each query, the k highest-scoring corpus
// items that survive the exclusion rules (known positives, same-id duplicates, a per-query score
// ceiling). The scores are made tile by tile (query block x corpus chunk, one BLAS / cuBLAS matmul
// each) and folded into a running top-k by the device's kernel, so Q x N scores never exist at once:
// a 100k x 100k problem holds one tile (tile_elements: 64 MB on CPU, 512 MB on CUDA) plus the (Q, k)
// result.
#include <ATen/ATen.h>

#include <limits>

#include "ops/common/loss_common.h"

namespace unime::ops {

std::tuple<at::Tensor, at::Tensor> mine_hard_negatives_body(
    const at::Tensor& query, const at::Tensor& corpus, int64_t k, const std::optional<at::Tensor>& max_score,
    const std::optional<at::Tensor>& exclude, const std::optional<at::Tensor>& query_ids,
    const std::optional<at::Tensor>& corpus_ids, int64_t index_offset, int64_t chunk_size, AllFiniteFn all_finite,
    TopKUpdateFn top_k_update, int64_t tile_elements) {
  constexpr const char* op = "mine_hard_negatives";
  check_mine_hard_negatives_args(query, corpus, k, max_score, exclude, query_ids, corpus_ids, chunk_size);
  check_all_finite(query, op, "query", all_finite);
  check_all_finite(corpus, op, "corpus", all_finite);
  // +inf is a valid ceiling (none: queries without a positive); NaN would drop nothing silently.
  if (max_score.has_value())
    TORCH_CHECK_VALUE(!at::isnan(*max_score).any().item<bool>(),
                      "unime.mine_hard_negatives: max_score contains NaN (use +inf for no ceiling)");
  const auto compute = loss_compute_dtype(query.scalar_type(), query.scalar_type());
  const int64_t num_queries = query.size(0), num_corpus = corpus.size(0);
  auto best_idx = at::full({num_queries, k}, -1, query.options().dtype(at::kLong));
  auto best_score =
      at::full({num_queries, k}, -std::numeric_limits<double>::infinity(), query.options().dtype(compute));
  MinerMasks masks;
  if (max_score.has_value()) masks.max_score = max_score->to(compute).contiguous();
  if (exclude.has_value()) masks.exclude = exclude->contiguous();
  if (query_ids.has_value()) masks.query_ids = query_ids->contiguous();
  if (corpus_ids.has_value()) masks.corpus_ids = corpus_ids->contiguous();
  masks.index_offset = index_offset;
  // Tile = (query block) x (corpus chunk), bounded in elements so memory stays flat as Q grows.
  const int64_t chunk = std::min(std::max<int64_t>(num_corpus, 1), chunk_size);
  const int64_t block = std::max<int64_t>(1, std::min(num_queries, tile_elements / chunk));
  for (int64_t r0 = 0; r0 < num_queries; r0 += block) {
    auto q_block = query.slice(0, r0, std::min(num_queries, r0 + block)).to(compute);
    for (int64_t c0 = 0; c0 < num_corpus; c0 += chunk) {
      auto c_chunk = corpus.slice(0, c0, std::min(num_corpus, c0 + chunk)).to(compute);
      auto scores = at::mm(q_block, c_chunk.t()).contiguous();
      top_k_update(scores, r0, c0, masks, best_idx, best_score);
    }
  }
  return {best_idx, best_score};
}

}  // namespace unime::ops
