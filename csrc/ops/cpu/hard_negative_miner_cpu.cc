// The hard-negative miner: for each query, the k highest-scoring corpus items that survive the
// exclusion rules (known positives, same-id duplicates, a per-query score ceiling). The scores are
// made tile by tile (query block x corpus chunk, one BLAS/cuBLAS matmul each) and folded into a
// running top-k, so Q x N scores never exist at once: a 100k x 100k problem holds one tile (<= 64 MB
// on CPU, <= 512 MB on CUDA) plus the (Q, k) result. The CPU fold runs rows in parallel; the CUDA
// fold (csrc/ops/cuda/hard_negative_cuda.cu) is one fused kernel per tile.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>

#include "ops/cpu/loss_kernels.h"
#include "ops/ops.h"

namespace unime::ops {

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
                      op, ": max_score must be a floating (", query.size(0), ",) tensor on ", query.device(),
                      ", got ", max_score->sizes(), " ", max_score->scalar_type());
  if (exclude.has_value())
    TORCH_CHECK_VALUE(exclude->dim() == 2 && exclude->size(0) == query.size(0) &&
                          exclude->scalar_type() == at::kLong && on_device(*exclude),
                      op, ": exclude must be an int64 (", query.size(0), ", m) tensor on ", query.device(),
                      ", got ", exclude->sizes(), " ", exclude->scalar_type());
  TORCH_CHECK_VALUE(query_ids.has_value() == corpus_ids.has_value(), op,
                    ": query_ids and corpus_ids come together (one without the other excludes nothing)");
  if (query_ids.has_value()) {
    TORCH_CHECK_VALUE(query_ids->dim() == 1 && query_ids->size(0) == query.size(0) &&
                          query_ids->scalar_type() == at::kLong && on_device(*query_ids),
                      op, ": query_ids must be an int64 (", query.size(0), ",) tensor on ", query.device(), ", got ",
                      query_ids->sizes(), " ", query_ids->scalar_type());
    TORCH_CHECK_VALUE(corpus_ids->dim() == 1 && corpus_ids->size(0) == corpus.size(0) &&
                          corpus_ids->scalar_type() == at::kLong && on_device(*corpus_ids),
                      op, ": corpus_ids must be an int64 (", corpus.size(0), ",) tensor on ", query.device(),
                      ", got ", corpus_ids->sizes(), " ", corpus_ids->scalar_type());
  }
}

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

std::tuple<at::Tensor, at::Tensor> mine_hard_negatives_kernel(
    const at::Tensor& query, const at::Tensor& corpus, int64_t k, const std::optional<at::Tensor>& max_score,
    const std::optional<at::Tensor>& exclude, const std::optional<at::Tensor>& query_ids,
    const std::optional<at::Tensor>& corpus_ids, int64_t index_offset, int64_t chunk_size) {
  check_mine_hard_negatives_args(query, corpus, k, max_score, exclude, query_ids, corpus_ids, chunk_size);
  check_all_finite(query, "mine_hard_negatives", "query");
  check_all_finite(corpus, "mine_hard_negatives", "corpus");
  if (max_score.has_value()) check_all_finite(*max_score, "mine_hard_negatives", "max_score");
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
  const bool cuda = query.is_cuda();
  const int64_t tile_elements = cuda ? (int64_t(1) << 27) : (int64_t(1) << 24);
  const int64_t chunk = std::min(std::max<int64_t>(num_corpus, 1), chunk_size);
  const int64_t block = std::max<int64_t>(1, std::min(num_queries, tile_elements / chunk));
  for (int64_t r0 = 0; r0 < num_queries; r0 += block) {
    auto q_block = query.slice(0, r0, std::min(num_queries, r0 + block)).to(compute);
    for (int64_t c0 = 0; c0 < num_corpus; c0 += chunk) {
      auto c_chunk = corpus.slice(0, c0, std::min(num_corpus, c0 + chunk)).to(compute);
      auto scores = at::mm(q_block, c_chunk.t()).contiguous();
#ifdef UNIME_WITH_CUDA
      if (cuda) {
        top_k_update_cuda(scores, r0, c0, masks, best_idx, best_score);
        continue;
      }
#endif
      top_k_update_cpu(scores, r0, c0, masks, best_idx, best_score);
    }
  }
  return {best_idx, best_score};
}

namespace {
std::tuple<at::Tensor, at::Tensor> mine_hard_negatives_meta(
    const at::Tensor& query, const at::Tensor& corpus, int64_t k, const std::optional<at::Tensor>& max_score,
    const std::optional<at::Tensor>& exclude, const std::optional<at::Tensor>& query_ids,
    const std::optional<at::Tensor>& corpus_ids, int64_t index_offset, int64_t chunk_size) {
  check_mine_hard_negatives_args(query, corpus, k, max_score, exclude, query_ids, corpus_ids, chunk_size);
  const auto compute = loss_compute_dtype(query.scalar_type(), query.scalar_type());
  return {at::empty({query.size(0), k}, query.options().dtype(at::kLong)),
          at::empty({query.size(0), k}, query.options().dtype(compute))};
}
}  // namespace

TORCH_LIBRARY_IMPL(unime, CPU, m) { m.impl("mine_hard_negatives", &mine_hard_negatives_kernel); }
TORCH_LIBRARY_IMPL(unime, Meta, m) { m.impl("mine_hard_negatives", &mine_hard_negatives_meta); }

}  // namespace unime::ops
