// Phi-3.5-V's HD transform (Phi3VImageProcessor of the original remote code, backbones.md B.4) on
// uint8 pixels, plain C++: the crop grid an image gets for `num_crops`, its token count, and the
// white-padded HD canvas (Pillow-exact bilinear resize). Normalisation, the bicubic global thumbnail
// and the cutting into 336-px crops are float work done in the LibTorch layer (model/phi3_v_processor).
#pragma once

#include <cstdint>
#include <vector>

#include "core/image/resample.h"

namespace unime::core::image {

inline constexpr int64_t kPhi3VCrop = 336;           // CLIP ViT-L/14-336 input side, fixed by the original code
inline constexpr int64_t kPhi3VTokensPerCrop = 144;  // 24 x 24 patches merged 2 x 2

struct Phi3VLayout {
  bool transposed = false;  // portrait input: resized as its transpose, as the original does
  // The resize target in the (possibly transposed) frame: width a multiple of 336, height by the ratio.
  int64_t resized_height = 0, resized_width = 0;
  int64_t pad_top = 0;  // white rows above the resized image (in the transposed frame)
  // The HD canvas in the input's orientation: multiples of 336.
  int64_t height = 0, width = 0;
  int64_t crop_rows() const { return height / kPhi3VCrop; }
  int64_t crop_cols() const { return width / kPhi3VCrop; }
  // (rows * cols + 1) * 144 + 1 + (rows + 1) * 12: the crops and the global image, 12 x 12 merged
  // features each, a separator column per feature row, and one between the crops and the global image.
  int64_t num_image_tokens() const {
    return (crop_rows() * crop_cols() + 1) * kPhi3VTokensPerCrop + 1 + (crop_rows() + 1) * 12;
  }
};

// The layout of a height x width image for `num_crops` (the most crops the grid may have).
// InvalidInputError for non-positive sizes or num_crops, or an image so elongated that its resized
// short side would be empty.
Phi3VLayout phi3v_layout(int64_t height, int64_t width, int64_t num_crops);

// The HD canvas of `image` (layout.height x layout.width x 3 uint8, HWC): resized bilinearly as
// Pillow does (transposed first for portrait images), padded with white above and below.
std::vector<uint8_t> phi3v_hd_canvas(const ImageView& image, const Phi3VLayout& layout);

}  // namespace unime::core::image
