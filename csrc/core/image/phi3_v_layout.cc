#include "core/image/phi3_v_layout.h"

#include <cmath>
#include <cstring>
#include <string>

#include "core/errors.h"

namespace unime::core::image {

Phi3VLayout phi3v_layout(int64_t height, int64_t width, int64_t num_crops) {
  if (height <= 0 || width <= 0)
    throw InvalidInputError("image size must be positive, got " + std::to_string(height) + "x" + std::to_string(width));
  if (num_crops <= 0) throw InvalidInputError("num_crops must be positive, got " + std::to_string(num_crops));
  Phi3VLayout l;
  l.transposed = width < height;
  const int64_t w = l.transposed ? height : width, h = l.transposed ? width : height;
  // The original's search (Python floats, numpy ceil): the most columns such that
  // columns * ceil(columns / ratio) crops fit in num_crops.
  const double ratio = static_cast<double>(w) / static_cast<double>(h);
  int64_t scale = 1;
  while (static_cast<double>(scale) * std::ceil(static_cast<double>(scale) / ratio) <= static_cast<double>(num_crops))
    ++scale;
  --scale;
  l.resized_width = scale * kPhi3VCrop;
  l.resized_height = static_cast<int64_t>(static_cast<double>(l.resized_width) / ratio);  // int(): truncation
  if (l.resized_height < 1)
    throw InvalidInputError("image " + std::to_string(height) + "x" + std::to_string(width) +
                            " is too elongated for Phi-3.5-V's HD transform (its short side would resize to 0 pixels)");
  const int64_t padded =
      static_cast<int64_t>(std::ceil(static_cast<double>(l.resized_height) / kPhi3VCrop)) * kPhi3VCrop;
  l.pad_top = (padded - l.resized_height) / 2;
  l.height = l.transposed ? l.resized_width : padded;
  l.width = l.transposed ? padded : l.resized_width;
  return l;
}

namespace {
std::vector<uint8_t> transpose_rgb(const uint8_t* src, int64_t h, int64_t w) {
  std::vector<uint8_t> out(static_cast<size_t>(h * w * 3));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) std::memcpy(&out[static_cast<size_t>((x * h + y) * 3)], src + (y * w + x) * 3, 3);
  return out;
}
}  // namespace

std::vector<uint8_t> phi3v_hd_canvas(const ImageView& image, const Phi3VLayout& layout) {
  // In the frame where width >= height: resize, then white rows above and below.
  std::vector<uint8_t> transposed;
  ImageView src = image;
  if (layout.transposed) {
    transposed = transpose_rgb(image.data, image.height, image.width);
    src = {transposed.data(), image.width, image.height};
  }
  const auto resized = resize_rgb(src, layout.resized_height, layout.resized_width, Filter::kBilinear);
  const int64_t frame_h = layout.transposed ? layout.width : layout.height;
  const int64_t frame_w = layout.resized_width;
  std::vector<uint8_t> frame(static_cast<size_t>(frame_h * frame_w * 3), 255);
  std::memcpy(&frame[static_cast<size_t>(layout.pad_top * frame_w * 3)], resized.data(), resized.size());
  return layout.transposed ? transpose_rgb(frame.data(), frame_h, frame_w) : frame;
}

}  // namespace unime::core::image
