// Fused RMSNorm on CUDA: one pass to reduce the row's sum of squares, one pass to write it, instead
// of the five ATen kernels (cast, pow, mean, rsqrt-mul, cast-mul) and their fp32 temporaries.
// Accumulates in fp32 (fp64 for double inputs) and casts the normalised value to the input dtype
// before the weight multiply, like the reference (csrc/ops/common/rms_norm.cc).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "ops/ops.h"

namespace unime::ops {
namespace {

template <typename acc_t>
__device__ acc_t block_sum(acc_t v, acc_t* shared) {
  // Warp shuffle reduction, then one warp reduces the per-warp partials.
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffff, v, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int num_warps = (blockDim.x + 31) / 32;
  v = threadIdx.x < num_warps ? shared[threadIdx.x] : acc_t(0);
  if (warp == 0)
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffff, v, offset);
  if (threadIdx.x == 0) shared[0] = v;
  __syncthreads();
  return shared[0];
}

// x, y: (rows, cols) contiguous; weight: (cols,). One block per row.
template <typename scalar_t, typename acc_t>
__global__ void rms_norm_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ weight,
                                scalar_t* __restrict__ y, int64_t cols, acc_t eps) {
  __shared__ acc_t shared[32];
  const scalar_t* row = x + blockIdx.x * cols;
  scalar_t* out = y + blockIdx.x * cols;
  acc_t sum = 0;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    acc_t v = static_cast<acc_t>(row[i]);
    sum += v * v;
  }
  sum = block_sum(sum, shared);
  const acc_t r = rsqrt(sum / static_cast<acc_t>(cols) + eps);
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    scalar_t n = static_cast<scalar_t>(static_cast<acc_t>(row[i]) * r);
    out[i] = weight[i] * n;
  }
}

at::Tensor rms_norm_cuda(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check_rms_norm_args(x, weight, eps);
  const c10::cuda::CUDAGuard guard(x.device());
  auto xc = x.contiguous();
  auto wc = weight.contiguous();
  auto y = at::empty_like(xc);
  const int64_t cols = x.size(-1);
  const int64_t rows = cols == 0 ? 0 : xc.numel() / cols;
  if (rows == 0) return y;
  const int threads = cols >= 1024 ? 1024 : ((cols + 31) / 32) * 32;
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "unime_rms_norm_cuda", [&] {
    using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    rms_norm_kernel<scalar_t, acc_t>
        <<<rows, threads, 0, stream>>>(xc.const_data_ptr<scalar_t>(), wc.const_data_ptr<scalar_t>(),
                                       y.mutable_data_ptr<scalar_t>(), cols, static_cast<acc_t>(eps));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(unime, CUDA, m) { m.impl("rms_norm", &rms_norm_cuda); }

}  // namespace unime::ops
