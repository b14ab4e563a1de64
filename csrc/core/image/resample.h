// Pillow-exact resizing of 8-bit RGB images (plain C++, no LibTorch, no Python).
//
// The Hugging Face image processors resize with PIL's Image.resize on uint8 images, so pixel parity
// with them needs Pillow's integer arithmetic, not a mathematically nicer resampler. What is
// reproduced (Pillow >= 7, reducing_gap=None, box = the whole image; see
// shared/reference/backbones.md section 1.8):
//   - separable: a horizontal pass, then a vertical pass on the uint8 result of the first; a pass
//     whose axis keeps its size is skipped, and an unchanged size is a plain copy;
//   - per axis, scale = in / out, filterscale = max(scale, 1) (antialiasing when shrinking),
//     support = filter support * filterscale, taps [xmin, xmax) around center = (o + 0.5) * scale,
//     weights K((j - center + 0.5) / filterscale) normalised to sum 1 in double precision;
//   - weights in fixed point with 22 fractional bits, rounded half away from zero; each output is
//     clamp((2^21 + sum(pixel * weight)) >> 22, 0, 255) in 32-bit integers.
// Every double is computed in Pillow's order of operations. The sources of this file are built with
// -ffp-contract=off (CMakeLists.txt): a fused multiply-add would change the last bit of a weight
// and so, now and then, an output pixel.
#pragma once

#include <cstdint>
#include <vector>

namespace unime::core::image {

// An RGB image the caller owns: height * width * 3 bytes, row-major HWC, rows packed (no stride).
struct ImageView {
  const uint8_t* data = nullptr;
  int64_t height = 0;
  int64_t width = 0;
};

// PIL.Image.Resampling values: BILINEAR = 2, BICUBIC = 3 (the numbers of preprocessor_config.json's
// "resample" field). BICUBIC is Keys' cubic with a = -0.5, support 2; BILINEAR is the triangle,
// support 1.
enum class Filter : int { kBilinear = 2, kBicubic = 3 };

// Resizes `image` to out_h x out_w into `out` (out_h * out_w * 3 bytes, caller-owned, must not
// overlap the input). Throws InvalidInputError naming the argument when a size is not positive,
// the input has no data, or a size exceeds kMaxSide.
void resize_rgb(const ImageView& image, int64_t out_h, int64_t out_w, Filter filter, uint8_t* out);

// The same, returning a new buffer of out_h * out_w * 3 bytes.
std::vector<uint8_t> resize_rgb(const ImageView& image, int64_t out_h, int64_t out_w, Filter filter);

// Sides above this are refused: Pillow's own arithmetic is 32-bit (int sizes, int accumulators),
// and no processor here needs more than a few thousand pixels.
inline constexpr int64_t kMaxSide = 1 << 20;

}  // namespace unime::core::image
