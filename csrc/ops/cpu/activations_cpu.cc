// The fused activations on CPU: one pass that reads the inputs once and writes the output once, where
// the unfused expressions make two (SwiGLU) or three (QuickGELU) full-size temporaries. The
// intermediate roundings to the input dtype are kept (common/activations.cc), so results equal the
// unfused ones up to the last bit of exp. float32 and bfloat16 run 16 lanes of AVX-512 when the CPU
// has it; without it float32 runs 8 lanes of AVX2 and bf16 takes the unfused ATen ops, as fp16 does
// everywhere; float64, and float32 on CPUs without AVX2, take the scalar loop.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>

#include "ops/cpu/avx2_math.h"
#include "ops/cpu/avx512_math.h"
#include "ops/ops.h"

namespace unime::ops {
namespace {

// A (rows, cols) view of t with unit column stride: the row stride when the leading dimensions
// collapse into one (a contiguous tensor, or one narrowed along its last dimension), else -1.
int64_t row_stride(const at::Tensor& t) {
  const int64_t d = t.dim();
  if (d == 0) return 1;
  if (t.size(-1) > 1 && t.stride(-1) != 1) return -1;
  if (d == 1) return t.size(0);
  for (int64_t i = 0; i + 2 < d; ++i)
    if (t.size(i) > 1 && t.stride(i) != t.stride(i + 1) * t.size(i + 1)) return -1;
  return t.stride(d - 2);
}

struct Rows {
  at::Tensor tensor;  // t itself or a contiguous copy
  int64_t stride;
};

Rows as_rows(const at::Tensor& t) {
  const auto s = row_stride(t);
  if (s >= 0) return {t, s};
  auto c = t.contiguous();
  return {c, c.dim() == 0 ? 1 : c.size(-1)};
}

int64_t grain(int64_t cols) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(cols, 1)); }

// 16-bit types without a kernel of ours (fp16 anywhere, bf16 without AVX-512) take ATen's vectorised
// unfused ops, with the same roundings: the scalar loop ran at a quarter of their speed in bf16 on an
// AVX2 EPYC.
bool takes_unfused_ops(at::ScalarType dtype) {
#ifdef UNIME_HAVE_AVX512_PATH
  if (dtype == at::kBFloat16 && avx512::has_avx512f()) return false;
#endif
  return dtype == at::kBFloat16 || dtype == at::kHalf;
}

#ifdef UNIME_HAVE_AVX512_PATH
using namespace avx512;  // NOLINT(google-build-using-namespace): the intrinsic helpers

template <bool kBf16>
__attribute__((target("avx512f"))) void gated_silu_rows_avx512(const void* gate, int64_t gate_stride, const void* up,
                                                               int64_t up_stride, void* out, int64_t cols,
                                                               int64_t begin, int64_t end) {
  constexpr int64_t kSize = kBf16 ? 2 : 4;
  const auto one = _mm512_set1_ps(1.0f);
  for (int64_t r = begin; r < end; ++r) {
    const auto* g = static_cast<const char*>(gate) + r * gate_stride * kSize;
    const auto* u = static_cast<const char*>(up) + r * up_stride * kSize;
    auto* o = static_cast<char*>(out) + r * cols * kSize;
    for (int64_t i = 0; i < cols; i += 16) {
      const int64_t n = std::min<int64_t>(16, cols - i);
      const auto x = load_lanes<kBf16>(g, i, n);
      const auto silu =
          round_lanes<kBf16>(_mm512_div_ps(x, _mm512_add_ps(one, exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), x)))));
      store_lanes<kBf16>(o, i, round_lanes<kBf16>(_mm512_mul_ps(silu, load_lanes<kBf16>(u, i, n))), n);
    }
  }
}

template <bool kBf16>
__attribute__((target("avx512f"))) void quick_gelu_rows_avx512(const void* in, int64_t in_stride, void* out,
                                                               int64_t cols, int64_t begin, int64_t end) {
  constexpr int64_t kSize = kBf16 ? 2 : 4;
  const auto alpha = _mm512_set1_ps(static_cast<float>(kQuickGeluAlpha));
  for (int64_t r = begin; r < end; ++r) {
    const auto* x_row = static_cast<const char*>(in) + r * in_stride * kSize;
    auto* o = static_cast<char*>(out) + r * cols * kSize;
    for (int64_t i = 0; i < cols; i += 16) {
      const int64_t n = std::min<int64_t>(16, cols - i);
      const auto x = load_lanes<kBf16>(x_row, i, n);
      const auto s = round_lanes<kBf16>(sigmoid_ps(round_lanes<kBf16>(_mm512_mul_ps(x, alpha))));
      store_lanes<kBf16>(o, i, round_lanes<kBf16>(_mm512_mul_ps(x, s)), n);
    }
  }
}
#endif

#ifdef UNIME_HAVE_AVX2_PATH
// fp32 on CPUs with AVX2 but not AVX-512: the same maths, eight lanes at a time.
__attribute__((target("avx2,fma"))) void gated_silu_rows_avx2(const float* gate, int64_t gate_stride, const float* up,
                                                              int64_t up_stride, float* out, int64_t cols,
                                                              int64_t begin, int64_t end) {
  const auto one = _mm256_set1_ps(1.0f);
  for (int64_t r = begin; r < end; ++r) {
    const float* g = gate + r * gate_stride;
    const float* u = up + r * up_stride;
    float* o = out + r * cols;
    for (int64_t i = 0; i < cols; i += 8) {
      const int64_t n = std::min<int64_t>(8, cols - i);
      const auto x = avx2::load_f32(g, i, n);
      const auto silu = _mm256_div_ps(x, _mm256_add_ps(one, avx2::exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x))));
      avx2::store_f32(o, i, _mm256_mul_ps(silu, avx2::load_f32(u, i, n)), n);
    }
  }
}

__attribute__((target("avx2,fma"))) void quick_gelu_rows_avx2(const float* in, int64_t in_stride, float* out,
                                                              int64_t cols, int64_t begin, int64_t end) {
  const auto alpha = _mm256_set1_ps(static_cast<float>(kQuickGeluAlpha));
  for (int64_t r = begin; r < end; ++r) {
    const float* x_row = in + r * in_stride;
    float* o = out + r * cols;
    for (int64_t i = 0; i < cols; i += 8) {
      const int64_t n = std::min<int64_t>(8, cols - i);
      const auto x = avx2::load_f32(x_row, i, n);
      avx2::store_f32(o, i, _mm256_mul_ps(x, avx2::sigmoid_ps(_mm256_mul_ps(x, alpha))), n);
    }
  }
}
#endif

at::Tensor gated_silu_cpu(const at::Tensor& gate, const at::Tensor& up) {
  check_gated_silu_args(gate, up);
  if (takes_unfused_ops(gate.scalar_type())) return gated_silu_reference(gate, up).contiguous();
  const auto g = as_rows(gate), u = as_rows(up);
  auto out = at::empty(gate.sizes(), gate.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t cols = gate.dim() == 0 ? 1 : gate.size(-1);
  const int64_t rows = cols == 0 ? 0 : gate.numel() / cols;
#ifdef UNIME_HAVE_AVX512_PATH
  const auto dtype = gate.scalar_type();
  if ((dtype == at::kBFloat16 || dtype == at::kFloat) && avx512::has_avx512f()) {
    const void *gp = g.tensor.const_data_ptr(), *up_ = u.tensor.const_data_ptr();
    void* op = out.mutable_data_ptr();
    at::parallel_for(0, rows, grain(cols), [&](int64_t begin, int64_t end) {
      if (dtype == at::kBFloat16)
        gated_silu_rows_avx512<true>(gp, g.stride, up_, u.stride, op, cols, begin, end);
      else
        gated_silu_rows_avx512<false>(gp, g.stride, up_, u.stride, op, cols, begin, end);
    });
    return out;
  }
#endif
#ifdef UNIME_HAVE_AVX2_PATH
  if (gate.scalar_type() == at::kFloat && avx2::has_avx2_fma()) {
    const float *gp = g.tensor.const_data_ptr<float>(), *up_ = u.tensor.const_data_ptr<float>();
    float* op = out.mutable_data_ptr<float>();
    at::parallel_for(0, rows, grain(cols), [&](int64_t begin, int64_t end) {
      gated_silu_rows_avx2(gp, g.stride, up_, u.stride, op, cols, begin, end);
    });
    return out;
  }
#endif
  AT_DISPATCH_FLOATING_TYPES(gate.scalar_type(), "unime_gated_silu_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = g.tensor.const_data_ptr<scalar_t>();
    const scalar_t* up_ = u.tensor.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, rows, grain(cols), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        for (int64_t i = 0; i < cols; ++i) {
          const auto x = static_cast<opmath_t>(gp[r * g.stride + i]);
          const auto silu = static_cast<scalar_t>(x / (opmath_t(1) + std::exp(-x)));
          op[r * cols + i] =
              static_cast<scalar_t>(static_cast<opmath_t>(silu) * static_cast<opmath_t>(up_[r * u.stride + i]));
        }
    });
  });
  return out;
}

at::Tensor quick_gelu_cpu(const at::Tensor& x) {
  check_quick_gelu_args(x);
  if (takes_unfused_ops(x.scalar_type())) return quick_gelu_reference(x).contiguous();
  const auto in = as_rows(x);
  auto out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t cols = x.dim() == 0 ? 1 : x.size(-1);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
#ifdef UNIME_HAVE_AVX512_PATH
  const auto dtype = x.scalar_type();
  if ((dtype == at::kBFloat16 || dtype == at::kFloat) && avx512::has_avx512f()) {
    const void* ip = in.tensor.const_data_ptr();
    void* op = out.mutable_data_ptr();
    at::parallel_for(0, rows, grain(cols), [&](int64_t begin, int64_t end) {
      if (dtype == at::kBFloat16)
        quick_gelu_rows_avx512<true>(ip, in.stride, op, cols, begin, end);
      else
        quick_gelu_rows_avx512<false>(ip, in.stride, op, cols, begin, end);
    });
    return out;
  }
#endif
#ifdef UNIME_HAVE_AVX2_PATH
  if (x.scalar_type() == at::kFloat && avx2::has_avx2_fma()) {
    const float* ip = in.tensor.const_data_ptr<float>();
    float* op = out.mutable_data_ptr<float>();
    at::parallel_for(0, rows, grain(cols),
                     [&](int64_t begin, int64_t end) { quick_gelu_rows_avx2(ip, in.stride, op, cols, begin, end); });
    return out;
  }
#endif
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "unime_quick_gelu_cpu", [&] {
    using opmath_t = at::opmath_type<scalar_t>;
    const scalar_t* ip = in.tensor.const_data_ptr<scalar_t>();
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    const auto alpha = static_cast<opmath_t>(kQuickGeluAlpha);
    at::parallel_for(0, rows, grain(cols), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        for (int64_t i = 0; i < cols; ++i) {
          const auto v = static_cast<opmath_t>(ip[r * in.stride + i]);
          const auto t = static_cast<opmath_t>(static_cast<scalar_t>(v * alpha));
          const auto s = static_cast<scalar_t>(opmath_t(1) / (opmath_t(1) + std::exp(-t)));
          op[r * cols + i] = static_cast<scalar_t>(v * static_cast<opmath_t>(s));
        }
    });
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(unime, CPU, m) {
  m.impl("gated_silu", &gated_silu_cpu);
  m.impl("quick_gelu", &quick_gelu_cpu);
}

}  // namespace unime::ops
