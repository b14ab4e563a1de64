// Qwen2-VL pixel preprocessing, value for value transformers 4.48.3's Qwen2VLImageProcessor
// (plain C++; backbones.md C.3):
//   1. smart_resize: both sides to multiples of patch * merge (28) by Python's round (half to even),
//      then, outside [min_pixels, max_pixels], scaled by beta = sqrt(area ratio) with floor / ceil;
//   2. Pillow BICUBIC resize to that size (no-op when unchanged);
//   3. rescale and normalise (normalise.h);
//   4. the frame repeated temporal_patch_size times and cut into patches: rows in the order
//      (grid_h / 2, grid_w / 2, 2, 2) so each 2 x 2 merge window is 4 consecutive rows, columns
//      (channel, temporal, patch row, patch column): pixel_values (grid_h * grid_w, 3 * 2 * 14 * 14).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include <nlohmann/json_fwd.hpp>

#include "core/image/resample.h"

namespace unime::core::image {

struct Qwen2VLImageConfig {
  int64_t min_pixels = 56 * 56;  // Qwen2VLImageProcessor's defaults; checkpoints set their own
  int64_t max_pixels = 28 * 28 * 1280;
  int64_t patch_size = 14;
  int64_t temporal_patch_size = 2;
  int64_t merge_size = 2;
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};  // OpenAI CLIP
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
  double rescale_factor = 1.0 / 255.0;
  Filter resample = Filter::kBicubic;

  int64_t factor() const { return patch_size * merge_size; }
  int64_t patch_dim() const { return 3 * temporal_patch_size * patch_size * patch_size; }
  // preprocessor_config.json (min_pixels / max_pixels at the top level or under "size", patch_size,
  // temporal_patch_size, merge_size, image_mean, image_std, rescale_factor, resample).
  static Qwen2VLImageConfig from_json(const nlohmann::json& json, const std::string& source);
  // <model_dir>/preprocessor_config.json when present, else the defaults.
  static Qwen2VLImageConfig from_dir(const std::string& model_dir);
  void validate(const std::string& source) const;
};

// (height, width) after smart_resize; InvalidInputError for a side below the factor or an aspect
// ratio above 200, as transformers raises.
std::pair<int64_t, int64_t> qwen2_vl_smart_resize(int64_t height, int64_t width, const Qwen2VLImageConfig& config);

// GME's own smart_resize (gme_inference.py, a copy of qwen_vl_utils' with MIN_PIXELS 4 * 28^2 and
// MAX_PIXELS 16384 * 28^2), which GME applies with Pillow's BICUBIC before the image processor:
// sides rounded (half to even) to multiples of 28, at least 28, then scaled into the pixel range by
// floor / ceil; an aspect ratio above 200 is then clamped to 200 (qwen_vl_utils raises there, GME's
// copy warns and clamps). InvalidInputError when a side would be 0.
std::pair<int64_t, int64_t> gme_pre_resize_size(int64_t height, int64_t width);

// pixel_values of one RGB image into `out`: (resized_h / patch) * (resized_w / patch) rows of
// patch_dim() floats, where (resized_h, resized_w) = qwen2_vl_smart_resize(image's size).
void qwen2_vl_preprocess_into(const ImageView& image, const Qwen2VLImageConfig& config, int64_t resized_h,
                              int64_t resized_w, float* out);

}  // namespace unime::core::image
