// libFuzzer target for the image path of the C++ core: Pillow-exact resizing and the three families'
// preprocessing (LLaVA-NeXT anyres, Phi-3.5-V's HD transform, Qwen2-VL's smart_resize and patches, GME's
// pre-resize) on arbitrary sizes, pixels and configurations (tools/run_fuzz.sh builds it with ASan and
// UBSan). Decoding is Pillow's (Python) and is not fuzzed here.
//
// Input '{...': a preprocessor/model config JSON (read as LLaVA-NeXT's and as Qwen2-VL's), then a
// small fixed image run through it. Otherwise: 8 header bytes choose the image size (1-96 x 1-96), a
// resize target (1-200 x 1-200), the filter, one of three small LLaVA-NeXT configurations and the
// family whose preprocessing follows; the rest fills the pixels (cycled). The size arithmetic of each
// family (grids, token counts, smart_resize) also runs on sizes scaled up to 2^40, as a caller of
// image_token_count(height, width) may pass.
// Contract: only unime::InvalidInputError may escape; outputs have the promised sizes and are finite.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "core/errors.h"
#include "core/image/llava_next_layout.h"
#include "core/image/llava_next_processor.h"
#include "core/image/phi3_v_layout.h"
#include "core/image/qwen2_vl_image.h"
#include "core/image/resample.h"

namespace {

using namespace unime::core::image;

#define FUZZ_CHECK(cond)       \
  do {                         \
    if (!(cond)) std::abort(); \
  } while (0)

std::vector<uint8_t> pixels(const uint8_t* data, size_t size, int64_t h, int64_t w) {
  std::vector<uint8_t> out(static_cast<size_t>(h * w * 3));
  for (size_t i = 0; i < out.size(); ++i) out[i] = size ? data[i % size] : static_cast<uint8_t>(i * 31);
  return out;
}

void preprocess(const ImageView& view, const LlavaNextConfig& config) {
  auto layout = llava_next_layout(view.height, view.width, config);
  FUZZ_CHECK(layout.tiles_h >= 1 && layout.tiles_w >= 1);
  FUZZ_CHECK(layout.feat_rows_begin <= layout.feat_rows_end && layout.feat_cols_begin <= layout.feat_cols_end);
  auto out = llava_next_preprocess(view, config);
  FUZZ_CHECK(out.num_patches == layout.num_patches());
  FUZZ_CHECK(out.pixels.size() == static_cast<size_t>(out.num_patches * 3 * config.crop_size * config.crop_size));
  for (float v : out.pixels) FUZZ_CHECK(std::isfinite(v));
}

LlavaNextConfig small_config(int which) {
  LlavaNextConfig c;
  c.crop_size = c.shortest_edge = 28;
  c.grid_pinpoints = {{28, 56}, {56, 28}, {56, 56}, {84, 28}, {28, 84}};
  if (which == 1) c.exact_pad = true;
  if (which == 2) c.resample = Filter::kBilinear, c.grid_pinpoints = {{28, 28}, {84, 84}};
  return c;
}

void phi3_v(const ImageView& view, int64_t num_crops, int64_t big_h, int64_t big_w) {
  try {  // the arithmetic alone on a large size
    auto big = phi3v_layout(big_h, big_w, num_crops);
    FUZZ_CHECK(big.height % kPhi3VCrop == 0 && big.width % kPhi3VCrop == 0 && big.num_image_tokens() > 0);
  } catch (const unime::InvalidInputError&) {
  }
  auto layout = phi3v_layout(view.height, view.width, num_crops);
  FUZZ_CHECK(layout.crop_rows() >= 1 && layout.crop_cols() >= 1);
  FUZZ_CHECK(layout.crop_rows() * layout.crop_cols() <= num_crops);
  auto canvas = phi3v_hd_canvas(view, layout);
  FUZZ_CHECK(canvas.size() == static_cast<size_t>(layout.height * layout.width * 3));
}

void qwen2_vl(const ImageView& view, const Qwen2VLImageConfig& config, int64_t big_h, int64_t big_w) {
  try {
    auto [h, w] = qwen2_vl_smart_resize(big_h, big_w, config);
    FUZZ_CHECK(h > 0 && w > 0 && h % config.factor() == 0 && w % config.factor() == 0);
  } catch (const unime::InvalidInputError&) {
  }
  auto [h, w] = qwen2_vl_smart_resize(view.height, view.width, config);
  FUZZ_CHECK(h > 0 && w > 0 && h % config.factor() == 0 && w % config.factor() == 0);
  if (h * w > 256 * 256) return;  // valid, but large outputs are slow and explore nothing new
  std::vector<float> out(static_cast<size_t>((h / config.patch_size) * (w / config.patch_size) * config.patch_dim()));
  qwen2_vl_preprocess_into(view, config, h, w, out.data());
  for (float v : out) FUZZ_CHECK(std::isfinite(v));
}

void gme(int64_t height, int64_t width) {
  auto [h, w] = gme_pre_resize_size(height, width);
  FUZZ_CHECK(h >= 28 && w >= 28 && h % 28 == 0 && w % 28 == 0);
  FUZZ_CHECK(std::max(h, w) <= 200 * std::min(h, w));
}

// A small Qwen2-VL configuration from two bytes: patch 1-4, merge 1-2, temporal 1-2, pixel limits.
Qwen2VLImageConfig qwen2_vl_config(uint8_t a, uint8_t b) {
  Qwen2VLImageConfig c;
  c.patch_size = 1 + a % 4;
  c.merge_size = 1 + (a >> 2) % 2;
  c.temporal_patch_size = 1 + (a >> 3) % 2;
  c.min_pixels = 1 + (b % 16) * 64;
  c.max_pixels = c.min_pixels + (b >> 4) * 1024;
  c.validate("fuzz");
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  try {
    if (!input.empty() && input[0] == '{') {
      nlohmann::json json;
      try {
        json = nlohmann::json::parse(input);
      } catch (const nlohmann::json::exception&) {
        return 0;  // not JSON: the loaders read files through core/json_file, tested elsewhere
      }
      auto px = pixels(data, size, 17, 23);
      try {
        auto qwen = Qwen2VLImageConfig::from_json(json, "fuzz");
        qwen2_vl({px.data(), 17, 23}, qwen, int64_t{17} << 30, int64_t{23} << 20);
      } catch (const unime::InvalidInputError&) {
      }
      auto config = LlavaNextConfig::from_json(json, "fuzz");
      // Keep the work bounded: huge crops are valid but slow, and not what this target explores.
      if (config.crop_size > 64 || config.grid_pinpoints.size() > 16) return 0;
      for (const auto& [h, w] : config.grid_pinpoints)
        if (h > 512 || w > 512) return 0;
      preprocess({px.data(), 17, 23}, config);
      return 0;
    }
    if (size < 8) return 0;
    const int64_t h = 1 + data[0] % 96, w = 1 + data[1] % 96;
    const int64_t out_h = 1 + (data[2] | (data[3] << 8)) % 200, out_w = 1 + (data[4] | (data[5] << 8)) % 200;
    const Filter filter = data[6] % 2 ? Filter::kBicubic : Filter::kBilinear;
    auto px = pixels(data + 8, size - 8, h, w);
    const ImageView view{px.data(), h, w};
    auto resized = resize_rgb(view, out_h, out_w, filter);
    FUZZ_CHECK(resized.size() == static_cast<size_t>(out_h * out_w * 3));
    if (out_h == h && out_w == w) FUZZ_CHECK(resized == px);  // identity, as Pillow
    // Sizes up to 2^40 for the arithmetic: the image's, shifted by 0-39 bits each.
    const int64_t big_h = h << (data[2] % 40), big_w = w << (data[3] % 40);
    switch ((data[7] / 3) % 4) {
      case 0: {
        const auto config = small_config(data[7] % 3);
        try {
          auto big = llava_next_layout(big_h, big_w, config);
          FUZZ_CHECK(big.tiles_h >= 1 && big.tiles_w >= 1 && big.num_patches() >= 2);
        } catch (const unime::InvalidInputError&) {
        }
        preprocess(view, config);
        break;
      }
      case 1:
        phi3_v(view, 1 + data[4] % 16, big_h, big_w);
        break;
      case 2:
        qwen2_vl(view, qwen2_vl_config(data[4], data[5]), big_h, big_w);
        break;
      default:
        try {
          gme(big_h, big_w);
        } catch (const unime::InvalidInputError&) {
        }
        gme(h, w);
    }
  } catch (const unime::InvalidInputError&) {
  }
  return 0;
}
