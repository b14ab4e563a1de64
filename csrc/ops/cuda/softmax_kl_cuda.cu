// The two softmax-KL objectives on CUDA (similarity_kl, UniME stage 1; judge_alignment, UniME-V2):
// the row kernel, and the CUDA registrations that run the device-generic bodies of
// csrc/ops/common/softmax_kl.cc with it. The logits come from cuBLAS; this kernel replaces the
// reference's two log_softmax, two exp, subtract, multiply and sum kernels and their (n, n)
// temporaries with one warp per row.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cmath>

#include "ops/common/loss_common.h"

namespace unime::ops {
namespace {

constexpr int kRowsPerBlock = 4;  // warps per block, one row each

template <typename T>
__device__ T warp_max(T v) {
  for (int offset = 16; offset > 0; offset /= 2) v = max(v, __shfl_xor_sync(0xffffffff, v, offset));
  return v;
}

template <typename T>
__device__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffff, v, offset);
  return v;
}

// log(exp(l) + eps) as logaddexp(l, log eps) (see the CPU kernel); with_eps false: l.
template <typename T>
__device__ T log_plus_eps(T l, bool with_eps, T log_eps) {
  return with_eps ? max(l, log_eps) + log1p(exp(-abs(l - log_eps))) : l;
}

// a, b: (rows, cols) contiguous float/double logits; out: (rows,). direction as KlDirection.
template <typename T>
__global__ void softmax_kl_rows_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out,
                                       int64_t rows, int64_t cols, int direction, bool with_eps, T log_eps) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;  // whole warps leave together: the shuffles below stay full-mask
  const T* x = a + r * cols;
  const T* y = b + r * cols;
  T mx = -INFINITY, my = -INFINITY;
  for (int64_t j = lane; j < cols; j += 32) mx = max(mx, x[j]), my = max(my, y[j]);
  mx = warp_max(mx);
  my = warp_max(my);
  T sx = 0, sy = 0;
  for (int64_t j = lane; j < cols; j += 32) sx += exp(x[j] - mx), sy += exp(y[j] - my);
  // log p = (x - max) - log(sum), never via max + log(sum) (rounds at the logits' magnitude).
  const T log_sx = log(warp_sum(sx)), log_sy = log(warp_sum(sy));
  T kl_pq = 0, kl_qp = 0;
  for (int64_t j = lane; j < cols; j += 32) {
    const T lp = (x[j] - mx) - log_sx, lq = (y[j] - my) - log_sy;
    kl_pq += exp(lp) * (lp - log_plus_eps(lq, with_eps, log_eps));
    kl_qp += exp(lq) * (lq - log_plus_eps(lp, with_eps, log_eps));
  }
  kl_pq = warp_sum(kl_pq);
  kl_qp = warp_sum(kl_qp);
  if (lane == 0) {
    out[r] = direction == static_cast<int>(KlDirection::kStudentTeacher)   ? kl_pq
             : direction == static_cast<int>(KlDirection::kTeacherStudent) ? kl_qp
                                                                           : T(0.5) * (kl_pq + kl_qp);
  }
}

at::Tensor softmax_kl_rows_cuda(const at::Tensor& a, const at::Tensor& b, KlDirection direction, double eps) {
  const c10::cuda::CUDAGuard guard(a.device());
  const int64_t rows = a.size(0), cols = a.size(1);
  auto out = at::empty({rows}, a.options());
  if (rows == 0) return out;
  const auto blocks = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "unime_softmax_kl_rows_cuda", [&] {
    const bool with_eps = eps > 0;
    const auto log_eps = static_cast<scalar_t>(with_eps ? std::log(eps) : 0.0);
    softmax_kl_rows_kernel<scalar_t><<<blocks, kRowsPerBlock * 32, 0, stream>>>(
        a.const_data_ptr<scalar_t>(), b.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), rows, cols,
        static_cast<int>(direction), with_eps, log_eps);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

at::Tensor similarity_kl_cuda(const at::Tensor& student, const at::Tensor& teacher, double temperature,
                              c10::string_view direction, c10::string_view reduction, bool normalize) {
  return similarity_kl_body(student, teacher, temperature, direction, reduction, normalize, all_finite_aten,
                            softmax_kl_rows_cuda);
}

at::Tensor judge_alignment_cuda(const at::Tensor& query, const at::Tensor& candidates, const at::Tensor& judge_scores,
                                double temperature, double eps, bool normalize) {
  return judge_alignment_body(query, candidates, judge_scores, temperature, eps, normalize, all_finite_aten,
                              softmax_kl_rows_cuda);
}

}  // namespace

TORCH_LIBRARY_IMPL(unime, CUDA, m) {
  m.impl("similarity_kl", &similarity_kl_cuda);
  m.impl("judge_alignment", &judge_alignment_cuda);
}

}  // namespace unime::ops
