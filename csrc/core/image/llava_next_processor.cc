#include "core/image/llava_next_processor.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "core/errors.h"
#include "core/image/normalise.h"

namespace unime::core::image {
namespace {

using Table = NormalisationTable;

Table normalisation_table(const LlavaNextConfig& config) {
  return image::normalisation_table(config.rescale_factor, config.mean, config.std);
}

// Python's floor division (transformers' center_crop offsets can be negative).
int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Writes the crop x crop window of `img` whose top-left corner is (top, left) in image coordinates
// (possibly outside: zeros there, as transformers pads before cropping) through the table.
void crop_normalise(const ImageView& img, int64_t top, int64_t left, int64_t crop, const Table& table, float* out) {
  const size_t plane = static_cast<size_t>(crop) * crop;
  for (int64_t y = 0; y < crop; ++y) {
    const int64_t sy = top + y;
    for (int c = 0; c < 3; ++c) {
      float* dst = out + c * plane + static_cast<size_t>(y) * crop;
      const float zero = table[c][0];
      if (sy < 0 || sy >= img.height) {
        std::fill(dst, dst + crop, zero);
        continue;
      }
      const uint8_t* row = img.data + static_cast<size_t>(sy) * img.width * 3;
      for (int64_t x = 0; x < crop; ++x) {
        const int64_t sx = left + x;
        dst[x] = (sx < 0 || sx >= img.width) ? zero : table[c][row[sx * 3 + c]];
      }
    }
  }
}

void finish_patch(const ImageView& patch, const LlavaNextConfig& config, const Table& table, float* out) {
  // transformers' get_resize_output_image_size(default_to_square=False).
  const int64_t h = patch.height, w = patch.width, s = config.shortest_edge;
  const int64_t shorter = std::min(h, w), longer = std::max(h, w);
  const auto new_long = static_cast<int64_t>(static_cast<double>(s * longer) / static_cast<double>(shorter));
  const int64_t rh = w <= h ? new_long : s, rw = w <= h ? s : new_long;
  std::vector<uint8_t> resized;
  ImageView img = patch;
  if (rh != h || rw != w) {
    resized = resize_rgb(patch, rh, rw, config.resample);
    img = {resized.data(), rh, rw};
  }
  // transformers' center_crop: top = (h - crop) // 2 on the image zero-padded by
  // ceil((crop - h) / 2) when smaller; both cases are the same window in image coordinates.
  const int64_t crop = config.crop_size;
  const int64_t pad_top = img.height < crop ? (crop - img.height + 1) / 2 : 0;
  const int64_t pad_left = img.width < crop ? (crop - img.width + 1) / 2 : 0;
  const int64_t win_top = img.height >= crop ? floor_div(img.height - crop, 2) : -pad_top;
  const int64_t win_left = img.width >= crop ? floor_div(img.width - crop, 2) : -pad_left;
  crop_normalise(img, win_top, win_left, crop, table, out);
}

}  // namespace

void llava_next_finish_patch(const ImageView& patch, const LlavaNextConfig& config, float* out) {
  if (patch.data == nullptr || patch.height <= 0 || patch.width <= 0)
    throw InvalidInputError("llava_next_finish_patch: empty patch");
  finish_patch(patch, config, normalisation_table(config), out);
}

void llava_next_preprocess_into(const ImageView& image, const LlavaNextConfig& config, const LlavaNextLayout& layout,
                                float* out) {
  if (image.data == nullptr) throw InvalidInputError("llava_next_preprocess: image data is null");
  if (image.height <= 0 || image.width <= 0 || image.height > kMaxSide || image.width > kMaxSide)
    throw InvalidInputError("llava_next_preprocess: image size " + std::to_string(image.height) + "x" +
                            std::to_string(image.width) + " is not in [1, " + std::to_string(kMaxSide) + "]");
  const Table table = normalisation_table(config);
  const int64_t crop = config.crop_size;
  const size_t patch_floats = 3 * static_cast<size_t>(crop) * crop;

  // 1. Base image.
  {
    const int64_t s = config.shortest_edge;
    auto base = resize_rgb(image, s, s, config.resample);
    finish_patch({base.data(), s, s}, config, table, out);
  }

  // 2. Canvas: the aspect-kept resize, centered on black. 4.48 pads (pad, pad) on each axis, so an
  // odd remainder leaves the canvas one pixel short; exact_pad puts the remainder at the end.
  const int64_t nh = layout.resized_height, nw = layout.resized_width;
  const int64_t th = layout.best_height, tw = layout.best_width;
  const int64_t py = (th - nh) / 2, px = (tw - nw) / 2;
  const int64_t ch = config.exact_pad ? th : nh + 2 * py;
  const int64_t cw = config.exact_pad ? tw : nw + 2 * px;
  std::vector<uint8_t> canvas(static_cast<size_t>(ch) * cw * 3, 0);
  {
    auto resized = resize_rgb(image, nh, nw, config.resample);
    for (int64_t y = 0; y < nh; ++y)
      std::memcpy(&canvas[(static_cast<size_t>(y + py) * cw + px) * 3], &resized[static_cast<size_t>(y) * nw * 3],
                  static_cast<size_t>(nw) * 3);
  }

  // 3. Tiles, row-major; a full tile is read in place, a short edge tile is copied out and resized
  // by finish_patch like any other patch.
  std::vector<uint8_t> tile;
  int64_t index = 1;
  for (int64_t i = 0; i < ch; i += crop) {
    for (int64_t j = 0; j < cw; j += crop, ++index) {
      const int64_t h = std::min(crop, ch - i), w = std::min(crop, cw - j);
      float* dst = out + index * patch_floats;
      if (h == crop && w == crop && config.shortest_edge == crop) {
        crop_normalise({&canvas[(static_cast<size_t>(i) * cw + j) * 3], ch - i, cw}, 0, 0, crop, table, dst);
        continue;
      }
      tile.resize(static_cast<size_t>(h) * w * 3);
      for (int64_t y = 0; y < h; ++y)
        std::memcpy(&tile[static_cast<size_t>(y) * w * 3], &canvas[(static_cast<size_t>(i + y) * cw + j) * 3],
                    static_cast<size_t>(w) * 3);
      finish_patch({tile.data(), h, w}, config, table, dst);
    }
  }
  if (index != layout.num_patches())
    throw InvalidInputError("llava_next_preprocess: cut " + std::to_string(index) + " patches but the layout expects " +
                            std::to_string(layout.num_patches()));
}

LlavaNextPixels llava_next_preprocess(const ImageView& image, const LlavaNextConfig& config) {
  LlavaNextPixels result;
  result.layout = llava_next_layout(image.height, image.width, config);
  result.num_patches = result.layout.num_patches();
  result.pixels.resize(static_cast<size_t>(result.num_patches) * 3 * config.crop_size * config.crop_size);
  llava_next_preprocess_into(image, config, result.layout, result.pixels.data());
  return result;
}

std::vector<ItemError> llava_next_preprocess_batch(const std::vector<ImageView>& images, const LlavaNextConfig& config,
                                                   const std::vector<LlavaNextLayout>& layouts,
                                                   const std::vector<float*>& outs, size_t num_threads) {
  if (layouts.size() != images.size() || outs.size() != images.size())
    throw InvalidInputError("llava_next_preprocess_batch: images, layouts and outputs differ in number");
  return parallel_for_each(images.size(), num_threads,
                           [&](size_t i) { llava_next_preprocess_into(images[i], config, layouts[i], outs[i]); });
}

}  // namespace unime::core::image
