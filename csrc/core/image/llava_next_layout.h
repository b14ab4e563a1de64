// LLaVA-NeXT "anyres" geometry: the processor configuration, the choice of tile grid, and the one
// computation of an image's token count and of which feature rows/columns survive unpadding
// (plain C++; shared/reference/backbones.md section A.4).
//
// Token count vs unpadding in transformers 4.48.3 (the version UniME pins). With
// (cur_h, cur_w) = (side * tiles_h, side * tiles_w), side = crop_size / patch_size:
//   - LlavaNextProcessor._get_unpadded_features: new_h = (H0 * cur_w) // W0 (exact integers);
//   - LlavaNextForConditionalGeneration's unpad_image: new_h = int(round(H0 * (cur_w / W0), 7)).
// The two differ only when H0 * cur_w / W0 lies within 5e-8 of an integer without being one, which
// needs W0 (or H0) above 2 * 10^7 pixels: for every image this library accepts they agree, and
// tests/python/test_image_llava_next.py checks llava_next_layout against both (the processor's
// count, and the model's pack_image_features position by position) on every (H0, W0) in
// [1, 120]^2, 1500 random sizes up to 6000 and extreme aspect ratios. We use the exact integer
// form, so the count that expands the prompt and the slice that unpads the features come from one
// place. The aspect test "W0 / H0 > cur_w / cur_h" is done in doubles exactly as Python does.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/image/resample.h"

namespace unime::core::image {

inline constexpr std::array<float, 3> kOpenAiClipMean{0.48145466f, 0.4578275f, 0.40821073f};
inline constexpr std::array<float, 3> kOpenAiClipStd{0.26862954f, 0.26130258f, 0.27577711f};

struct LlavaNextConfig {
  // Candidate canvas sizes (height, width), in the listed order (ties keep the first). Each side a
  // positive multiple of crop_size.
  std::vector<std::pair<int64_t, int64_t>> grid_pinpoints{{336, 672}, {672, 336}, {672, 672}, {1008, 336}, {336, 1008}};
  int64_t crop_size = 336;                      // tile side and center-crop side (crop_size.height == width)
  int64_t shortest_edge = 336;                  // size.shortest_edge: the base image is resized to this square
  int64_t patch_size = 14;                      // vision patch side: crop_size / patch_size features per tile side
  std::array<float, 3> mean = kOpenAiClipMean;  // float32, as numpy casts image_mean
  std::array<float, 3> std = kOpenAiClipStd;
  double rescale_factor = 1.0 / 255.0;  // applied in float64, then cast to float32
  Filter resample = Filter::kBicubic;
  // false: transformers <= 4.51 symmetric padding (UniME, 4.48): the canvas is one pixel short
  // when the padding is odd and the last tile row/column is resized up to the crop. true: >= 4.52,
  // the remainder goes to the bottom/right so the canvas is exact.
  bool exact_pad = false;

  // Reads a preprocessor_config.json (image_grid_pinpoints, crop_size, size.shortest_edge,
  // image_mean, image_std, rescale_factor, resample, do_* flags) or a LLaVA-NeXT model config.json
  // (image_grid_pinpoints, vision_config.image_size / patch_size); absent fields keep the
  // defaults above (llava-hf/llava-v1.6-mistral-7b-hf). Also reads "patch_size" (processor_config)
  // and "exact_pad" (ours). Throws InvalidInputError naming `source` and the field on bad values
  // (flags set to what this implementation does not do, pinpoints that are not multiples of the
  // crop, non-positive sizes), including when validate() fails.
  static LlavaNextConfig from_json(const nlohmann::json& preprocessor_config_or_model_config,
                                   const std::string& source);

  // From a preprocessor_config.json or config.json file, or a checkpoint directory: its
  // preprocessor_config.json when present, else its config.json. FileNotFoundError when absent.
  static LlavaNextConfig from_path(const std::string& path);

  // Throws InvalidInputError naming `source` and the offending field.
  void validate(const std::string& source) const;
};

struct LlavaNextLayout {
  int64_t best_height = 0, best_width = 0;        // the chosen pinpoint (canvas before tiling)
  int64_t tiles_h = 0, tiles_w = 0;               // tile grid: best / crop_size
  int64_t resized_height = 0, resized_width = 0;  // the image inside the canvas (aspect kept)
  // The stitched feature map has (side * tiles_h) x (side * tiles_w) positions; these half-open
  // ranges are what unpadding keeps, in patch units.
  int64_t feat_rows_begin = 0, feat_rows_end = 0;
  int64_t feat_cols_begin = 0, feat_cols_end = 0;
  // side^2 (base image) + rows * cols (unpadded grid) + rows (one image_newline per row):
  // 576 + h'w' + h' for the default config and vision_feature_select_strategy "default".
  int64_t num_image_tokens = 0;
  int64_t num_patches() const { return 1 + tiles_h * tiles_w; }
};

// transformers' select_best_resolution: the (height, width) pinpoint that keeps the most of the
// image's pixels after an aspect-preserving fit, then wastes the least canvas; first wins ties.
std::pair<int64_t, int64_t> select_best_resolution(int64_t height, int64_t width,
                                                   const std::vector<std::pair<int64_t, int64_t>>& pinpoints);

// The aspect-preserving size of an image fitted into target (height, width): one side equals the
// target's, the other is ceil(side * scale) capped at the target (transformers'
// _get_patch_output_size).
std::pair<int64_t, int64_t> fit_size(int64_t height, int64_t width, int64_t target_height, int64_t target_width);

// The ONE place where the tile grid, the token count and the unpadding ranges are computed.
// Throws InvalidInputError when height or width is not in [1, kMaxSide].
LlavaNextLayout llava_next_layout(int64_t height, int64_t width, const LlavaNextConfig& config);

}  // namespace unime::core::image
