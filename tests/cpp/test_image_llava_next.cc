// csrc/core/image/llava_next_*: layout (tile grid, token count, unpadding) and preprocessing.
// Values against transformers 4.48.3 itself are in tests/python/test_image_llava_next.py; these
// check the worked examples of shared/reference/backbones.md A.4 and the structure of the output.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/image/llava_next_processor.h"

namespace unime::core::image {
namespace {

using nlohmann::json;

TEST(LlavaNextLayout, WorkedExamples) {
  LlavaNextConfig c;
  // 336x336: (336, 672) is the first of the tied candidates; columns unpadded 12 on each side.
  auto a = llava_next_layout(336, 336, c);
  EXPECT_EQ(a.best_height, 336);
  EXPECT_EQ(a.best_width, 672);
  EXPECT_EQ(a.num_patches(), 3);
  EXPECT_EQ(a.feat_cols_begin, 12);
  EXPECT_EQ(a.feat_cols_end, 36);
  EXPECT_EQ(a.num_image_tokens, 1176);
  // 640 wide x 480 high: 2x2 tiles, rows 6..42 kept.
  auto b = llava_next_layout(480, 640, c);
  EXPECT_EQ(b.tiles_h, 2);
  EXPECT_EQ(b.tiles_w, 2);
  EXPECT_EQ(b.feat_rows_begin, 6);
  EXPECT_EQ(b.feat_rows_end, 42);
  EXPECT_EQ(b.feat_cols_end - b.feat_cols_begin, 48);
  EXPECT_EQ(b.num_image_tokens, 2340);
  EXPECT_EQ(llava_next_layout(1344, 1344, c).num_image_tokens, 2928);
  // Portrait 640 high x 480 wide: the transpose of b, but one newline per row: 48 rows of 36.
  auto p = llava_next_layout(640, 480, c);
  EXPECT_EQ(p.feat_cols_begin, 6);
  EXPECT_EQ(p.feat_cols_end, 42);
  EXPECT_EQ(p.num_image_tokens, 576 + 48 * 36 + 48);
}

TEST(LlavaNextLayout, ExtremeAspectPicksLongPinpoint) {
  LlavaNextConfig c;
  auto l = llava_next_layout(10, 1000, c);
  EXPECT_EQ(l.best_height, 336);
  EXPECT_EQ(l.best_width, 1008);
  EXPECT_EQ(l.resized_width, 1008);
  EXPECT_EQ(l.resized_height, 11);  // ceil(10 * 1.008)
  // new_h = 10 * 72 // 1000 = 0: all rows are padding but the count stays well defined.
  EXPECT_EQ(l.feat_rows_end - l.feat_rows_begin, 0);
  EXPECT_EQ(l.num_image_tokens, 576);
}

TEST(LlavaNextLayout, SelectBestResolutionFirstWinsTies) {
  std::vector<std::pair<int64_t, int64_t>> pins{{336, 672}, {672, 336}};
  EXPECT_EQ(select_best_resolution(100, 100, pins), (std::pair<int64_t, int64_t>{336, 672}));
  EXPECT_EQ(select_best_resolution(500, 100, pins), (std::pair<int64_t, int64_t>{672, 336}));
  EXPECT_EQ(fit_size(480, 640, 672, 672), (std::pair<int64_t, int64_t>{504, 672}));
  EXPECT_EQ(fit_size(3, 1000, 336, 1008), (std::pair<int64_t, int64_t>{4, 1008}));
}

TEST(LlavaNextLayout, RejectsEmptyImage) {
  LlavaNextConfig c;
  EXPECT_THROW(llava_next_layout(0, 10, c), InvalidInputError);
  EXPECT_THROW(llava_next_layout(10, -1, c), InvalidInputError);
}

TEST(LlavaNextConfig, ReadsPreprocessorConfig) {
  auto j = json::parse(R"({
    "crop_size": {"height": 28, "width": 28}, "size": {"shortest_edge": 28},
    "image_grid_pinpoints": [[28, 56], [56, 56]], "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.25, 0.5, 1.0], "resample": 2, "rescale_factor": 0.00392156862745098,
    "do_resize": true, "do_center_crop": true, "do_pad": true, "patch_size": 14})");
  auto c = LlavaNextConfig::from_json(j, "pp.json");
  EXPECT_EQ(c.crop_size, 28);
  EXPECT_EQ(c.shortest_edge, 28);
  EXPECT_EQ(c.patch_size, 14);
  EXPECT_EQ(c.grid_pinpoints.size(), 2u);
  EXPECT_EQ(c.std[0], 0.25f);
  EXPECT_EQ(c.resample, Filter::kBilinear);
  EXPECT_EQ(c.rescale_factor, 1.0 / 255.0);
  EXPECT_FALSE(c.exact_pad);
}

TEST(LlavaNextConfig, ReadsModelConfig) {
  auto j = json::parse(R"({"model_type": "llava_next", "image_grid_pinpoints": [[56, 28]],
                           "vision_config": {"image_size": 28, "patch_size": 7}})");
  auto c = LlavaNextConfig::from_json(j, "config.json");
  EXPECT_EQ(c.crop_size, 28);
  EXPECT_EQ(c.shortest_edge, 28);
  EXPECT_EQ(c.patch_size, 7);
  EXPECT_EQ(c.mean, kOpenAiClipMean);
  // side 4, tiles 2x1 -> an 8x4 feature map; a square image keeps 4 of its 8 rows.
  auto l = llava_next_layout(10, 10, c);
  EXPECT_EQ(l.feat_rows_begin, 2);
  EXPECT_EQ(l.feat_rows_end, 6);
  EXPECT_EQ(l.num_image_tokens, 16 + 4 * 4 + 4);
}

TEST(LlavaNextConfig, ErrorsNameTheField) {
  auto expect_error = [](const char* text, const char* needle) {
    try {
      LlavaNextConfig::from_json(json::parse(text), "pp.json");
      ADD_FAILURE() << "no error for " << text;
    } catch (const InvalidInputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("pp.json"), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"image_grid_pinpoints": [[336, 500]]})", "image_grid_pinpoints[0]");
  expect_error(R"({"image_grid_pinpoints": []})", "image_grid_pinpoints");
  expect_error(R"({"image_grid_pinpoints": [[336]]})", "image_grid_pinpoints[0]");
  expect_error(R"({"crop_size": {"height": 336, "width": 300}})", "crop_size");
  expect_error(R"({"image_std": [1, 0, 1]})", "image_std");
  expect_error(R"({"image_mean": [1, 2]})", "image_mean");
  expect_error(R"({"resample": 1})", "resample");
  expect_error(R"({"do_normalize": false})", "do_normalize");
  expect_error(R"({"patch_size": 15})", "patch_size");
  expect_error(R"({"size": {"longest_edge": 3}})", "size");
  expect_error(R"([1, 2])", "object");
}

std::vector<uint8_t> noise(int64_t h, int64_t w, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(static_cast<size_t>(h) * w * 3);
  for (auto& x : v) x = static_cast<uint8_t>(rng() & 255);
  return v;
}

TEST(LlavaNextPreprocess, ShapesAndBaseImage) {
  LlavaNextConfig c;
  auto img = noise(480, 640, 1);
  auto r = llava_next_preprocess({img.data(), 480, 640}, c);
  ASSERT_EQ(r.num_patches, 5);
  ASSERT_EQ(r.pixels.size(), 5u * 3 * 336 * 336);
  // Patch 0 is the whole image squashed to 336x336, normalised.
  auto base = resize_rgb({img.data(), 480, 640}, 336, 336, Filter::kBicubic);
  for (int c3 = 0; c3 < 3; ++c3) {
    const size_t i = 17 * 336 + 200;  // any pixel
    const float x = static_cast<float>(base[i * 3 + c3] * (1.0 / 255.0));
    EXPECT_EQ(r.pixels[c3 * 336 * 336 + i], (x - c.mean[c3]) / c.std[c3]);
  }
}

TEST(LlavaNextPreprocess, PaddingIsBlackAndOddPaddingMatchesVersion) {
  // 480x640 -> 504x672 inside 672x672: 84 rows of black above and below, so tiles 1 and 2 start
  // with 84 black rows.
  LlavaNextConfig c;
  auto img = noise(480, 640, 2);
  auto r = llava_next_preprocess({img.data(), 480, 640}, c);
  const float black_r = (0.0f - c.mean[0]) / c.std[0];
  const size_t patch = 3 * 336 * 336;
  EXPECT_EQ(r.pixels[patch + 0], black_r);
  EXPECT_EQ(r.pixels[patch + 83 * 336 + 100], black_r);
  EXPECT_NE(r.pixels[patch + 84 * 336 + 100], black_r);

  // 335x1000 -> (336, 1008), resized 336x1003: 5 columns of padding, so the 4.48 canvas is 1007
  // wide and its last tile 335 wide.
  auto odd = noise(335, 1000, 3);
  auto l = llava_next_layout(335, 1000, c);
  EXPECT_EQ(l.best_width, 1008);
  EXPECT_EQ(l.resized_height, 336);
  EXPECT_EQ(l.resized_width, 1003);
  // Both versions produce the same number of patches and the same base image.
  LlavaNextConfig exact = c;
  exact.exact_pad = true;
  auto a = llava_next_preprocess({odd.data(), 335, 1000}, c);
  auto b = llava_next_preprocess({odd.data(), 335, 1000}, exact);
  ASSERT_EQ(a.pixels.size(), b.pixels.size());
  EXPECT_TRUE(std::equal(a.pixels.begin(), a.pixels.begin() + patch, b.pixels.begin()));
}

TEST(LlavaNextPreprocess, ShortCanvasDiffersOnlyWithOddPadding) {
  // The 4.48 canvas is one pixel short exactly when the padding is odd: the two modes differ then
  // and agree otherwise.
  LlavaNextConfig c, exact;
  exact.exact_pad = true;
  for (auto [h, w] : {std::pair<int64_t, int64_t>{480, 640}, {333, 1000}, {97, 100}, {700, 31}}) {
    auto img = noise(h, w, static_cast<unsigned>(h * w));
    auto l = llava_next_layout(h, w, c);
    const bool odd = (l.best_height - l.resized_height) % 2 || (l.best_width - l.resized_width) % 2;
    auto a = llava_next_preprocess({img.data(), h, w}, c);
    auto b = llava_next_preprocess({img.data(), h, w}, exact);
    EXPECT_EQ(a.pixels != b.pixels, odd) << h << "x" << w;
  }
}

TEST(LlavaNextPreprocess, TinyAndSmallCropConfigs) {
  LlavaNextConfig c;
  c.crop_size = 28;
  c.shortest_edge = 28;
  c.grid_pinpoints = {{28, 56}, {56, 28}, {56, 56}};
  for (auto [h, w] : {std::pair<int64_t, int64_t>{1, 1}, {2, 9}, {16, 3}, {57, 13}}) {
    auto img = noise(h, w, 7);
    auto r = llava_next_preprocess({img.data(), h, w}, c);
    EXPECT_EQ(static_cast<int64_t>(r.pixels.size()), r.num_patches * 3 * 28 * 28);
    for (float v : r.pixels) ASSERT_TRUE(std::isfinite(v));
  }
}

TEST(LlavaNextPreprocess, ShortestEdgeSmallerThanCropPadsLikeTransformers) {
  // shortest_edge 20 < crop 28: center_crop pads with zeros (value (0 - mean) / std) around the
  // 20x20 base image: ceil(8 / 2) = 4 rows above.
  LlavaNextConfig c;
  c.crop_size = 28;
  c.shortest_edge = 20;
  c.grid_pinpoints = {{28, 28}};
  auto img = noise(40, 40, 9);
  auto r = llava_next_preprocess({img.data(), 40, 40}, c);
  const float black_r = (0.0f - c.mean[0]) / c.std[0];
  EXPECT_EQ(r.pixels[3 * 28 + 10], black_r);
  EXPECT_EQ(r.pixels[10 * 28 + 3], black_r);
  EXPECT_EQ(r.pixels[24 * 28 + 10], black_r);
}

TEST(LlavaNextPreprocess, RejectsBadImages) {
  LlavaNextConfig c;
  uint8_t px[3] = {0, 0, 0};
  EXPECT_THROW(llava_next_preprocess({nullptr, 4, 4}, c), InvalidInputError);
  EXPECT_THROW(llava_next_preprocess({px, 0, 1}, c), InvalidInputError);
  EXPECT_THROW(llava_next_preprocess({px, 1, kMaxSide + 1}, c), InvalidInputError);
}

}  // namespace
}  // namespace unime::core::image
