// What the CPU, CUDA, Meta and autograd files of the UniME objectives and the miner share: the
// argument checks (one message per failure, naming op and argument), the KL direction, the per-device
// kernel signatures, and the device-generic op bodies. docs/losses.md explains the choices.
//
// Layout (pytorch/extension-cpp's): a device file (cpu/*.cc, cuda/*.cu) holds its row kernels and
// registers thin wrappers that call the generic bodies below with those kernels, so the dispatcher,
// not a branch on the tensor's device, picks the backend.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/string_view.h>

#include <optional>
#include <tuple>

namespace unime::ops {

// Which KL divergence between the student distribution P (logits a) and the target Q (logits b).
//   kStudentTeacher: KL(P || Q), as UniME's Eq. 2 is written (the default).
//   kTeacherStudent: KL(Q || P), what F.kl_div(log P, Q) computes.
//   kSymmetric:      (KL(P || Q) + KL(Q || P)) / 2, UniME-V2's "JS" alignment loss.
// With eps > 0 the log of the *other* distribution becomes log(x + eps), as UniME-V2's released
// loss.py computes it: KL_eps(P || Q) = sum p (log p - log(q + eps)).
enum class KlDirection { kStudentTeacher, kTeacherStudent, kSymmetric };

KlDirection parse_kl_direction(c10::string_view direction, const char* op);
// true for "sum" (UniME's Eq. 2 sums over rows), false for "mean".
bool parse_sum_reduction(c10::string_view reduction, const char* op);

// float64 inputs are computed in float64 (gradcheck); every narrower dtype in float32.
at::ScalarType loss_compute_dtype(at::ScalarType a, at::ScalarType b);

// Rows of x (.., d) scaled to unit L2 norm, as F.normalize(x, dim=-1) (norm clamped at 1e-12).
// Plain differentiable ATen: the autograd kernels call it outside their autograd::Function.
at::Tensor l2_normalize_rows(const at::Tensor& x);

// Shape, dtype, device and scalar-argument checks (no data access: Meta-safe).
void check_similarity_kl_args(const at::Tensor& student, const at::Tensor& teacher, double temperature);
void check_judge_alignment_args(const at::Tensor& query, const at::Tensor& candidates, const at::Tensor& judge_scores,
                                double temperature, double eps);
void check_hard_negative_infonce_args(const at::Tensor& query, const at::Tensor& candidate,
                                      const std::optional<at::Tensor>& negatives, int64_t k, double beta,
                                      double temperature);
void check_mine_hard_negatives_args(const at::Tensor& query, const at::Tensor& corpus, int64_t k,
                                    const std::optional<at::Tensor>& max_score,
                                    const std::optional<at::Tensor>& exclude,
                                    const std::optional<at::Tensor>& query_ids,
                                    const std::optional<at::Tensor>& corpus_ids, int64_t chunk_size);

// ---- what each device supplies (defined in cpu/*.cc and cuda/*.cu) -------------------------------

// true when x holds no NaN or +-Inf (reads x once; syncs on CUDA).
using AllFiniteFn = bool (*)(const at::Tensor& x);
bool all_finite_cpu(const at::Tensor& x);   // one pass, no temporaries (cpu/all_finite_cpu.cc)
bool all_finite_aten(const at::Tensor& x);  // any device: isfinite().all() and one sync
// Throws ValueError naming op and argument when x holds NaN or +-Inf: the losses would return NaN
// and the miner would mine garbage silently otherwise.
void check_all_finite(const at::Tensor& x, const char* op, const char* arg, AllFiniteFn all_finite);

// Row-wise softmax KL. a, b: (rows, cols) contiguous, float32 or float64, same dtype. Returns
// (rows,) with KL of row r between softmax(a[r]) and softmax(b[r]) in `direction`, eps as above.
using SoftmaxKlRowsFn = at::Tensor (*)(const at::Tensor& a, const at::Tensor& b, KlDirection direction, double eps);

// The mined-InfoNCE forward on a precomputed similarity matrix.
//   scores:   (B, N) float32/float64 contiguous, scores[i][i] is query i's positive.
//   explicit_logits: (B, M) same dtype (M may be 0), always in the denominator.
// Returns (per-row loss (B,), hard-negative indices (B, k) int64 with -1 padding; (B, 0) when
// all_in_batch). Losses are logsumexp([pos, negatives] / tau) - pos / tau.
using InfonceRowsFn = std::tuple<at::Tensor, at::Tensor> (*)(const at::Tensor& scores,
                                                             const at::Tensor& explicit_logits, int64_t k, double beta,
                                                             double temperature, bool all_in_batch);

// The exclusion rules of the miner, as contiguous tensors on the scores' device (undefined = rule
// off). Indices in `exclude` are global (index_offset already counted); corpus_ids is local.
struct MinerMasks {
  at::Tensor max_score;   // (Q,) compute dtype: drop scores > max_score[q]
  at::Tensor exclude;     // (Q, m) int64: drop these global corpus indices (-1 = unused slot)
  at::Tensor query_ids;   // (Q,) int64
  at::Tensor corpus_ids;  // (N,) int64: drop corpus j when corpus_ids[j] == query_ids[q]
  int64_t index_offset = 0;
};

// Folds one tile of scores into the running top-k. scores: (R, C) contiguous compute dtype, rows
// row_begin.. of the query set, columns col_begin.. of the local corpus. best_idx (Q, k) int64 and
// best_score (Q, k) hold each query's best so far, descending, ties by lower index, -1/-inf padded.
using TopKUpdateFn = void (*)(const at::Tensor& scores, int64_t row_begin, int64_t col_begin, const MinerMasks& masks,
                              at::Tensor& best_idx, at::Tensor& best_score);

// ---- device-generic op bodies (checks, matmuls through ATen, then the device's kernels) ----------
// normalize = true L2-normalises the embedding inputs first, in the compute dtype (the Autograd
// kernels normalise differentiably before they call down, and pass false).

at::Tensor similarity_kl_body(const at::Tensor& student, const at::Tensor& teacher, double temperature,
                              c10::string_view direction, c10::string_view reduction, bool normalize,
                              AllFiniteFn all_finite, SoftmaxKlRowsFn softmax_kl_rows);
at::Tensor judge_alignment_body(const at::Tensor& query, const at::Tensor& candidates, const at::Tensor& judge_scores,
                                double temperature, double eps, bool normalize, AllFiniteFn all_finite,
                                SoftmaxKlRowsFn softmax_kl_rows);
std::tuple<at::Tensor, at::Tensor> hard_negative_infonce_body(const at::Tensor& query, const at::Tensor& candidate,
                                                              const std::optional<at::Tensor>& negatives, int64_t k,
                                                              double beta, double temperature, bool all_in_batch,
                                                              bool normalize, AllFiniteFn all_finite,
                                                              InfonceRowsFn infonce_rows);
// tile_elements bounds the (query block x corpus chunk) score tile the device holds at once.
std::tuple<at::Tensor, at::Tensor> mine_hard_negatives_body(
    const at::Tensor& query, const at::Tensor& corpus, int64_t k, const std::optional<at::Tensor>& max_score,
    const std::optional<at::Tensor>& exclude, const std::optional<at::Tensor>& query_ids,
    const std::optional<at::Tensor>& corpus_ids, int64_t index_offset, int64_t chunk_size, AllFiniteFn all_finite,
    TopKUpdateFn top_k_update, int64_t tile_elements);

// Inserts (s, j) into score/idx[0..k), kept descending. Callers visit j in increasing order, so the
// strict ">" keeps the lower index first among equal scores (the documented tie rule).
template <typename T>
inline void insert_top_k(T* score, int64_t* idx, int64_t k, T s, int64_t j) {
  if (!(s > score[k - 1])) return;
  int64_t pos = k - 1;
  while (pos > 0 && s > score[pos - 1]) {
    score[pos] = score[pos - 1];
    idx[pos] = idx[pos - 1];
    --pos;
  }
  score[pos] = s;
  idx[pos] = j;
}

}  // namespace unime::ops
