// libFuzzer target for the image path of the C++ core: Pillow-exact resizing and LLaVA-NeXT anyres
// preprocessing on arbitrary sizes, pixels and configurations (tools/run_fuzz.sh builds it with ASan
// and UBSan). Decoding is Pillow's (Python) and is not fuzzed here.
//
// Input '{...': a preprocessor/model config JSON, then a small fixed image run through it.
// Otherwise: 8 header bytes choose the image size (1-96 x 1-96), a resize target (1-200 x 1-200),
// the filter and one of three small configurations; the rest fills the pixels (cycled).
// Contract: only unime::InvalidInputError may escape; outputs have the promised sizes and are finite.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "core/errors.h"
#include "core/image/llava_next_layout.h"
#include "core/image/llava_next_processor.h"
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
      auto config = LlavaNextConfig::from_json(json, "fuzz");
      // Keep the work bounded: huge crops are valid but slow, and not what this target explores.
      if (config.crop_size > 64 || config.grid_pinpoints.size() > 16) return 0;
      for (const auto& [h, w] : config.grid_pinpoints)
        if (h > 512 || w > 512) return 0;
      auto px = pixels(data, size, 17, 23);
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
    preprocess(view, small_config(data[7] % 3));
  } catch (const unime::InvalidInputError&) {
  }
  return 0;
}
