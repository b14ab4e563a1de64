// LLaVA-NeXT pixel preprocessing, value for value the same as transformers 4.48.3's
// LlavaNextImageProcessor (plain C++; shared/reference/backbones.md sections 1.8, 1.9, A.4):
//   1. base image: the whole image resized (Pillow BICUBIC) to shortest_edge x shortest_edge,
//      aspect ratio not kept;
//   2. tiles: the image resized into the chosen pinpoint keeping its aspect (llava_next_layout),
//      centered on a black (0) canvas, cut row-major into crop_size tiles; with exact_pad = false
//      (4.48) the canvas is one pixel short on an axis whose padding is odd, so the last tile on
//      that axis is crop_size - 1 wide/high;
//   3. every patch (base first): resized so its shortest edge is shortest_edge (long edge
//      int(shortest_edge * long / short); a no-op for full tiles), center-cropped to crop_size
//      (zero-padded where smaller), rescaled x = float32(float64(u8) * rescale_factor) and
//      normalised (x - mean) / std in float32, channels first.
// Step 3's arithmetic only depends on the byte value and the channel, so it is a 3 x 256 table
// built with exactly those operations: the floats are bit-identical to numpy's.
#pragma once

#include <cstdint>
#include <vector>

#include "core/image/llava_next_layout.h"
#include "core/image/resample.h"
#include "core/util/parallel.h"

namespace unime::core::image {

struct LlavaNextPixels {
  std::vector<float> pixels;  // (num_patches, 3, crop_size, crop_size) float32, base image first
  int64_t num_patches = 0;    // 1 + tiles_h * tiles_w
  LlavaNextLayout layout;
};

// Preprocesses one RGB image. Throws InvalidInputError when the image is empty or too large
// (a side above kMaxSide) or the config is invalid.
LlavaNextPixels llava_next_preprocess(const ImageView& image, const LlavaNextConfig& config);

// The same into a caller-owned buffer of layout.num_patches() * 3 * crop_size^2 floats, where
// `layout` is llava_next_layout(image.height, image.width, config) (lets a caller allocate the
// output, e.g. a torch tensor, before the work). Thread-safe: shares no state between calls.
void llava_next_preprocess_into(const ImageView& image, const LlavaNextConfig& config, const LlavaNextLayout& layout,
                                float* out);

// llava_next_preprocess_into for every image, on `num_threads` threads (0: one per core): image i
// writes to outs[i], laid out as layouts[i]. Every image is attempted; the failures come back by
// index (core/util/parallel.h) instead of being thrown.
std::vector<ItemError> llava_next_preprocess_batch(const std::vector<ImageView>& images, const LlavaNextConfig& config,
                                                   const std::vector<LlavaNextLayout>& layouts,
                                                   const std::vector<float*>& outs, size_t num_threads);

// Step 3 alone for one uint8 HWC patch of any size: shortest-edge resize, center crop, rescale and
// normalise into `out` (3 x crop_size x crop_size floats).
void llava_next_finish_patch(const ImageView& patch, const LlavaNextConfig& config, float* out);

}  // namespace unime::core::image
