// Hard-negative selection on CUDA: the miner's fold of a score tile into the running top-k, the fused
// per-row forward of hard_negative_infonce, and the CUDA registrations of both ops (which run the
// device-generic bodies of csrc/ops/common/ with these kernels). Scores come from cuBLAS.
//
// Selection: one block per row takes k rounds; round t picks, by a block-wide arg-best, the best
// candidate strictly after round t-1's pick in the total order (score desc, global index asc).
// Nothing is marked or sorted, ties resolve by index exactly as on CPU, and the running top-k of
// earlier tiles simply joins the candidates. Cost k x (cols + k) reads per row: small for the k
// (<= 64) this is used with next to the matmul that made the tile, and growing with k.
//
// Shared memory: a round needs only the previous round's pick, which block_best hands to every
// thread, so the picks go straight to global memory and are never read back during the selection.
// A block holds kThreads / 32 Picks (+ as many partial sums) in shared memory whatever k is (at most
// 192 bytes), so any k launches. Keeping the k picks in shared memory would need k * (8 + sizeof(T))
// bytes and fail to launch past the 48 KB default (k ~ 3000 in float64).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/common/loss_common.h"

namespace unime::ops {
namespace {

constexpr int kThreads = 256;

template <typename T>
struct Pick {
  T score;
  int64_t index;  // -1: no candidate
};

static_assert(kThreads / 32 * (sizeof(Pick<double>) + sizeof(double)) <= 1024,
              "the selection's shared memory must stay small and independent of k");

template <typename T>
__device__ bool better(const Pick<T>& a, const Pick<T>& b) {
  return a.index >= 0 && (b.index < 0 || a.score > b.score || (a.score == b.score && a.index < b.index));
}

// Block-wide arg-best of every thread's candidate; all threads receive the winner.
template <typename T>
__device__ Pick<T> block_best(Pick<T> p, Pick<T>* shared) {
  for (int offset = 16; offset > 0; offset /= 2) {
    Pick<T> o{__shfl_xor_sync(0xffffffff, p.score, offset), __shfl_xor_sync(0xffffffff, p.index, offset)};
    if (better(o, p)) p = o;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();  // shared[] may still be read from the previous call
  if (lane == 0) shared[warp] = p;
  __syncthreads();
  Pick<T> best = shared[0];
  for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w)
    if (better(shared[w], best)) best = shared[w];
  return best;
}

// Selects up to k picks from row[0..cols) (global index = index_base + j, kept where allowed(j, v))
// and the optional previous picks prev_*[0..k) into out_*[0..k) (global memory, must not alias
// prev_*), -1/-inf padded. Ends with a barrier, so the whole block may read out_* afterwards.
template <typename T, typename Allowed>
__device__ void select_top_k(const T* row, int64_t cols, int64_t index_base, Allowed allowed, const T* prev_score,
                             const int64_t* prev_index, int64_t k, T* out_score, int64_t* out_index, Pick<T>* shared) {
  Pick<T> last{INFINITY, -1};
  for (int64_t t = 0; t < k; ++t) {
    const bool first = t == 0 || last.index < 0;
    Pick<T> mine{-INFINITY, -1};
    auto consider = [&](T v, int64_t g) {
      const bool after_last = first || v < last.score || (v == last.score && g > last.index);
      Pick<T> c{v, g};
      if (after_last && better(c, mine)) mine = c;
    };
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const T v = row[j];
      if (allowed(j, v)) consider(v, index_base + j);
    }
    if (prev_index != nullptr)
      for (int64_t e = threadIdx.x; e < k; e += blockDim.x)
        if (prev_index[e] >= 0) consider(prev_score[e], prev_index[e]);
    last = block_best(mine, shared);  // block-uniform: every thread leaves the loop at the same t
    if (threadIdx.x == 0) {
      out_score[t] = last.index >= 0 ? last.score : T(-INFINITY);
      out_index[t] = last.index;
    }
    if (last.index < 0) {  // nothing left: pad the rest
      for (int64_t e = t + 1 + threadIdx.x; e < k; e += blockDim.x) out_score[e] = -INFINITY, out_index[e] = -1;
      break;
    }
  }
  __syncthreads();  // makes every thread's out_* writes visible to the block
}

// scores: (R, cols) tile; prev_*: (Q, k) running result, rows row_begin..; next_*: (R, k) merged result.
template <typename T>
__global__ void top_k_update_kernel(const T* __restrict__ scores, int64_t cols, int64_t row_begin, int64_t col_begin,
                                    int64_t index_offset, const T* ceiling, const int64_t* exclude, int64_t m,
                                    const int64_t* query_ids, const int64_t* corpus_ids, const int64_t* prev_index,
                                    const T* prev_score, int64_t* next_index, T* next_score, int64_t k) {
  __shared__ Pick<T> shared[kThreads / 32];
  const int64_t r = blockIdx.x, q = row_begin + r;
  const T limit = ceiling != nullptr ? ceiling[q] : T(INFINITY);
  const int64_t qid = query_ids != nullptr ? query_ids[q] : 0;
  const int64_t* ex = exclude + q * m;
  auto allowed = [&](int64_t j, T v) {
    if (v > limit) return false;
    if (query_ids != nullptr && corpus_ids[col_begin + j] == qid) return false;
    const int64_t g = index_offset + col_begin + j;
    for (int64_t e = 0; e < m; ++e)
      if (ex[e] == g) return false;
    return true;
  };
  select_top_k(scores + r * cols, cols, index_offset + col_begin, allowed, prev_score + q * k, prev_index + q * k, k,
               next_score + r * k, next_index + r * k, shared);
}

// scores: (B, N), positive of row i at column i; explicit_logits: (B, m); picked, picked_score: (B, k)
// outputs (k = 0 with all_in_batch). One block per row.
template <typename T>
__global__ void infonce_rows_kernel(const T* __restrict__ scores, int64_t cols, const T* __restrict__ explicit_logits,
                                    int64_t m, int64_t k, T beta, T inv_tau, bool all_in_batch, T* loss,
                                    int64_t* picked, T* picked_score) {
  __shared__ Pick<T> shared[kThreads / 32];
  __shared__ T partial[kThreads / 32];
  const int64_t i = blockIdx.x;
  const T* row = scores + i * cols;
  const T* ex = explicit_logits + i * m;
  int64_t* picks_index = picked + i * k;
  T* picks_score = picked_score + i * k;
  const T pos = row[i];
  const T limit = pos + beta;  // the false-negative filter: S_ij > S_ii + beta is dropped
  auto allowed = [&](int64_t j, T v) { return j != i && !(v > limit); };
  if (k > 0) select_top_k<T>(row, cols, 0, allowed, nullptr, nullptr, k, picks_score, picks_index, shared);
  // Maximum logit, then the shifted sum of exponentials, over [pos, negatives, explicit].
  auto block_reduce = [&](T v, bool take_max) {
    for (int offset = 16; offset > 0; offset /= 2) {
      const T o = __shfl_xor_sync(0xffffffff, v, offset);
      v = take_max ? max(v, o) : v + o;
    }
    __syncthreads();
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
    __syncthreads();
    T r = partial[0];
    for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) r = take_max ? max(r, partial[w]) : r + partial[w];
    return r;
  };
  T mx = pos;
  for (int64_t t = threadIdx.x; t < m; t += blockDim.x) mx = max(mx, ex[t]);
  for (int64_t t = threadIdx.x; t < k; t += blockDim.x)
    if (picks_index[t] >= 0) mx = max(mx, picks_score[t]);
  if (all_in_batch)
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
      if (allowed(j, row[j])) mx = max(mx, row[j]);
  mx = block_reduce(mx, true);
  T sum = threadIdx.x == 0 ? exp((pos - mx) * inv_tau) : T(0);
  for (int64_t t = threadIdx.x; t < m; t += blockDim.x) sum += exp((ex[t] - mx) * inv_tau);
  for (int64_t t = threadIdx.x; t < k; t += blockDim.x)
    if (picks_index[t] >= 0) sum += exp((picks_score[t] - mx) * inv_tau);
  if (all_in_batch)
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
      if (allowed(j, row[j])) sum += exp((row[j] - mx) * inv_tau);
  sum = block_reduce(sum, false);
  if (threadIdx.x == 0) loss[i] = log(sum) + (mx - pos) * inv_tau;
}

// 2^27 scores (512 MB in float32) per tile: enough rows to fill the GPU with one block per row.
constexpr int64_t kCudaTileElements = int64_t(1) << 27;

void top_k_update_cuda(const at::Tensor& scores, int64_t row_begin, int64_t col_begin, const MinerMasks& masks,
                       at::Tensor& best_idx, at::Tensor& best_score) {
  const c10::cuda::CUDAGuard guard(scores.device());
  const int64_t rows = scores.size(0), cols = scores.size(1), k = best_idx.size(1);
  if (rows == 0 || cols == 0) return;
  const int64_t m = masks.exclude.defined() ? masks.exclude.size(1) : 0;
  // A block reads its row's previous picks in every round, so the merge goes to fresh (R, k)
  // buffers that replace those rows afterwards.
  auto next_idx = at::empty({rows, k}, best_idx.options());
  auto next_score = at::empty({rows, k}, best_score.options());
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "unime_top_k_update_cuda", [&] {
    top_k_update_kernel<scalar_t><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        scores.const_data_ptr<scalar_t>(), cols, row_begin, col_begin, masks.index_offset,
        masks.max_score.defined() ? masks.max_score.const_data_ptr<scalar_t>() : nullptr,
        masks.exclude.defined() ? masks.exclude.const_data_ptr<int64_t>() : nullptr, m,
        masks.query_ids.defined() ? masks.query_ids.const_data_ptr<int64_t>() : nullptr,
        masks.corpus_ids.defined() ? masks.corpus_ids.const_data_ptr<int64_t>() : nullptr,
        best_idx.const_data_ptr<int64_t>(), best_score.const_data_ptr<scalar_t>(), next_idx.mutable_data_ptr<int64_t>(),
        next_score.mutable_data_ptr<scalar_t>(), k);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  best_idx.narrow(0, row_begin, rows).copy_(next_idx);
  best_score.narrow(0, row_begin, rows).copy_(next_score);
}

std::tuple<at::Tensor, at::Tensor> infonce_rows_cuda(const at::Tensor& scores, const at::Tensor& explicit_logits,
                                                     int64_t k, double beta, double temperature, bool all_in_batch) {
  const c10::cuda::CUDAGuard guard(scores.device());
  const int64_t rows = scores.size(0), cols = scores.size(1), kept = all_in_batch ? 0 : k;
  auto loss = at::empty({rows}, scores.options());
  auto picked = at::full({rows, kept}, -1, scores.options().dtype(at::kLong));
  auto picked_score = at::empty({rows, kept}, scores.options());
  if (rows == 0) return {loss, picked};
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "unime_infonce_rows_cuda", [&] {
    infonce_rows_kernel<scalar_t><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        scores.const_data_ptr<scalar_t>(), cols, explicit_logits.const_data_ptr<scalar_t>(), explicit_logits.size(1),
        kept, static_cast<scalar_t>(beta), static_cast<scalar_t>(1.0 / temperature), all_in_batch,
        loss.mutable_data_ptr<scalar_t>(), picked.mutable_data_ptr<int64_t>(),
        picked_score.mutable_data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {loss, picked};
}

std::tuple<at::Tensor, at::Tensor> hard_negative_infonce_cuda(const at::Tensor& query, const at::Tensor& candidate,
                                                              const std::optional<at::Tensor>& negatives, int64_t k,
                                                              double beta, double temperature, bool all_in_batch,
                                                              bool normalize) {
  return hard_negative_infonce_body(query, candidate, negatives, k, beta, temperature, all_in_batch, normalize,
                                    all_finite_aten, infonce_rows_cuda);
}

std::tuple<at::Tensor, at::Tensor> mine_hard_negatives_cuda(const at::Tensor& query, const at::Tensor& corpus,
                                                            int64_t k, const std::optional<at::Tensor>& max_score,
                                                            const std::optional<at::Tensor>& exclude,
                                                            const std::optional<at::Tensor>& query_ids,
                                                            const std::optional<at::Tensor>& corpus_ids,
                                                            int64_t index_offset, int64_t chunk_size) {
  return mine_hard_negatives_body(query, corpus, k, max_score, exclude, query_ids, corpus_ids, index_offset, chunk_size,
                                  all_finite_aten, top_k_update_cuda, kCudaTileElements);
}

}  // namespace

TORCH_LIBRARY_IMPL(unime, CUDA, m) {
  m.impl("hard_negative_infonce", &hard_negative_infonce_cuda);
  m.impl("mine_hard_negatives", &mine_hard_negatives_cuda);
}

}  // namespace unime::ops
