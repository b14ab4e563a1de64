#include "core/image/resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/errors.h"

namespace unime::core::image {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS: 22

double bilinear_kernel(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

// Keys' cubic convolution, a = -0.5, written in Pillow's evaluation order.
double bicubic_kernel(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// The taps of one axis: output o reads inputs [first[o], first[o] + count[o]) with the integer
// weights weights[o * ksize + j] (22 fractional bits).
struct Taps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;
};

Taps compute_taps(int in_size, int out_size, Filter filter) {
  double (*kernel)(double) = filter == Filter::kBicubic ? bicubic_kernel : bilinear_kernel;
  const double kernel_support = filter == Filter::kBicubic ? 2.0 : 1.0;
  // Pillow: scale = (double)(in1 - in0) / outSize with a float box (in0 = 0, in1 = in_size).
  const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = kernel_support * filterscale;
  Taps taps;
  taps.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  taps.first.resize(out_size);
  taps.count.resize(out_size);
  taps.weights.assign(static_cast<size_t>(out_size) * taps.ksize, 0);
  std::vector<double> w(taps.ksize);
  for (int o = 0; o < out_size; ++o) {
    const double center = 0.0 + (o + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation, as Pillow's (int) cast
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double sum = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = kernel((x + xmin - center + 0.5) * ss);
      sum += w[x];
    }
    int32_t* k = &taps.weights[static_cast<size_t>(o) * taps.ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = sum != 0.0 ? w[x] / sum : w[x];
      // Round half away from zero into fixed point (Pillow's normalize_coeffs_8bpc).
      k[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                   : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    taps.first[o] = xmin;
    taps.count[o] = xmax;
  }
  return taps;
}

inline uint8_t clip8(int32_t acc) {
  if (acc < 0) return 0;
  const int32_t v = acc >> kPrecisionBits;
  return v > 255 ? 255 : static_cast<uint8_t>(v);
}

// Horizontal pass over rows [row0, row0 + rows) of `in` (in_w wide) into `out` (rows x out_w).
// Few taps (upscaling, small downscales): straight from the interleaved row.
void resample_rows_interleaved(const uint8_t* in, int in_w, int row0, int rows, const Taps& taps, int out_w,
                               uint8_t* out) {
  const size_t in_stride = static_cast<size_t>(in_w) * 3;
  for (int y = 0; y < rows; ++y) {
    const uint8_t* src = in + (static_cast<size_t>(row0) + y) * in_stride;
    uint8_t* dst = out + static_cast<size_t>(y) * out_w * 3;
    for (int o = 0; o < out_w; ++o) {
      const int32_t* k = &taps.weights[static_cast<size_t>(o) * taps.ksize];
      const uint8_t* p = src + static_cast<size_t>(taps.first[o]) * 3;
      int32_t r = 1 << (kPrecisionBits - 1), g = r, b = r;
      for (int j = 0; j < taps.count[o]; ++j) {
        r += p[3 * j + 0] * k[j];
        g += p[3 * j + 1] * k[j];
        b += p[3 * j + 2] * k[j];
      }
      dst[3 * o + 0] = clip8(r);
      dst[3 * o + 1] = clip8(g);
      dst[3 * o + 2] = clip8(b);
    }
  }
}

// Many taps (large downscales, where this pass over every source row is most of a resize's work):
// each row is split into three int32 planes first, so that an output pixel is three dot products
// of contiguous arrays, which vectorise. The integer sums are Pillow's in another order: exact.
inline __attribute__((always_inline)) void resample_rows_planar_impl(const uint8_t* in, int in_w, int row0, int rows,
                                                                     const Taps& taps, int out_w, uint8_t* out) {
  const size_t in_stride = static_cast<size_t>(in_w) * 3;
  std::vector<int32_t> planes(static_cast<size_t>(in_w) * 3);
  int32_t* red = planes.data();
  int32_t* green = red + in_w;
  int32_t* blue = green + in_w;
  for (int y = 0; y < rows; ++y) {
    const uint8_t* src = in + (static_cast<size_t>(row0) + y) * in_stride;
    for (int x = 0; x < in_w; ++x) {
      red[x] = src[3 * x];
      green[x] = src[3 * x + 1];
      blue[x] = src[3 * x + 2];
    }
    uint8_t* dst = out + static_cast<size_t>(y) * out_w * 3;
    for (int o = 0; o < out_w; ++o) {
      const int32_t* k = &taps.weights[static_cast<size_t>(o) * taps.ksize];
      const int f = taps.first[o], n = taps.count[o];
      int32_t r = 0, g = 0, b = 0;
      for (int j = 0; j < n; ++j) {
        r += red[f + j] * k[j];
        g += green[f + j] * k[j];
        b += blue[f + j] * k[j];
      }
      constexpr int32_t half = 1 << (kPrecisionBits - 1);
      dst[3 * o + 0] = clip8(r + half);
      dst[3 * o + 1] = clip8(g + half);
      dst[3 * o + 2] = clip8(b + half);
    }
  }
}

// x86-64 is built for its baseline (SSE2: no 32-bit vector multiply); an AVX2 build of the same
// loops is picked at run time where the CPU has it.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define UNIME_RESAMPLE_AVX2 1
bool has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2");
  return yes;
}

__attribute__((target("avx2"))) void resample_rows_planar_avx2(const uint8_t* in, int in_w, int row0, int rows,
                                                               const Taps& taps, int out_w, uint8_t* out) {
  resample_rows_planar_impl(in, in_w, row0, rows, taps, out_w, out);
}
#endif

void resample_rows_planar(const uint8_t* in, int in_w, int row0, int rows, const Taps& taps, int out_w, uint8_t* out) {
  resample_rows_planar_impl(in, in_w, row0, rows, taps, out_w, out);
}

constexpr int kPlanarMinTaps = 8;  // below this the split costs more than the vector loop gains

void resample_rows(const uint8_t* in, int in_w, int row0, int rows, const Taps& taps, int out_w, uint8_t* out) {
  if (taps.ksize < kPlanarMinTaps) return resample_rows_interleaved(in, in_w, row0, rows, taps, out_w, out);
#ifdef UNIME_RESAMPLE_AVX2
  if (has_avx2()) return resample_rows_planar_avx2(in, in_w, row0, rows, taps, out_w, out);
#endif
  resample_rows_planar(in, in_w, row0, rows, taps, out_w, out);
}

// Vertical pass: output row o mixes input rows first[o] - row0 ... of `in` (width w). The loop
// runs along the row for each tap so that the compiler vectorises the multiply-adds; the integer
// sums are the same in any order.
inline __attribute__((always_inline)) void resample_columns_impl(const uint8_t* in, int w, int row0, const Taps& taps,
                                                                 int out_h, uint8_t* out) {
  const size_t n = static_cast<size_t>(w) * 3;
  std::vector<int32_t> acc(n);
  for (int o = 0; o < out_h; ++o) {
    std::fill(acc.begin(), acc.end(), 1 << (kPrecisionBits - 1));
    const int32_t* k = &taps.weights[static_cast<size_t>(o) * taps.ksize];
    for (int j = 0; j < taps.count[o]; ++j) {
      const uint8_t* src = in + (static_cast<size_t>(taps.first[o] - row0) + j) * n;
      const int32_t kj = k[j];
      for (size_t i = 0; i < n; ++i) acc[i] += src[i] * kj;
    }
    uint8_t* dst = out + static_cast<size_t>(o) * n;
    for (size_t i = 0; i < n; ++i) dst[i] = clip8(acc[i]);
  }
}

#ifdef UNIME_RESAMPLE_AVX2
__attribute__((target("avx2"))) void resample_columns_avx2(const uint8_t* in, int w, int row0, const Taps& taps,
                                                           int out_h, uint8_t* out) {
  resample_columns_impl(in, w, row0, taps, out_h, out);
}
#endif

void resample_columns(const uint8_t* in, int w, int row0, const Taps& taps, int out_h, uint8_t* out) {
#ifdef UNIME_RESAMPLE_AVX2
  if (has_avx2()) return resample_columns_avx2(in, w, row0, taps, out_h, out);
#endif
  resample_columns_impl(in, w, row0, taps, out_h, out);
}

void check_side(int64_t v, const char* name) {
  if (v <= 0 || v > kMaxSide)
    throw InvalidInputError("resize_rgb: " + std::string(name) + " must be in [1, " + std::to_string(kMaxSide) +
                            "], got " + std::to_string(v));
}

}  // namespace

void resize_rgb(const ImageView& image, int64_t out_h, int64_t out_w, Filter filter, uint8_t* out) {
  check_side(image.height, "image height");
  check_side(image.width, "image width");
  check_side(out_h, "out_h");
  check_side(out_w, "out_w");
  if (image.data == nullptr) throw InvalidInputError("resize_rgb: image data is null");
  if (out == nullptr) throw InvalidInputError("resize_rgb: out is null");
  if (filter != Filter::kBicubic && filter != Filter::kBilinear)
    throw InvalidInputError("resize_rgb: unsupported filter " + std::to_string(static_cast<int>(filter)) +
                            " (2 bilinear, 3 bicubic)");
  const int in_h = static_cast<int>(image.height), in_w = static_cast<int>(image.width);
  const int oh = static_cast<int>(out_h), ow = static_cast<int>(out_w);
  if (in_h == oh && in_w == ow) {  // Pillow returns a copy
    std::memcpy(out, image.data, static_cast<size_t>(oh) * ow * 3);
    return;
  }
  const bool need_h = ow != in_w, need_v = oh != in_h;
  if (!need_v) {
    resample_rows(image.data, in_w, 0, in_h, compute_taps(in_w, ow, filter), ow, out);
    return;
  }
  const Taps vert = compute_taps(in_h, oh, filter);
  if (!need_h) {
    resample_columns(image.data, in_w, 0, vert, oh, out);
    return;
  }
  // As Pillow: the horizontal pass only covers the rows the vertical pass reads.
  const int row0 = vert.first[0];
  const int row1 = vert.first[oh - 1] + vert.count[oh - 1];
  std::vector<uint8_t> tmp(static_cast<size_t>(row1 - row0) * ow * 3);
  resample_rows(image.data, in_w, row0, row1 - row0, compute_taps(in_w, ow, filter), ow, tmp.data());
  resample_columns(tmp.data(), ow, row0, vert, oh, out);
}

std::vector<uint8_t> resize_rgb(const ImageView& image, int64_t out_h, int64_t out_w, Filter filter) {
  check_side(out_h, "out_h");
  check_side(out_w, "out_w");
  std::vector<uint8_t> out(static_cast<size_t>(out_h) * out_w * 3);
  resize_rgb(image, out_h, out_w, filter, out.data());
  return out;
}

}  // namespace unime::core::image
