#include "core/image/qwen2_vl_image.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/image/normalise.h"
#include "core/json_file.h"

namespace unime::core::image {

namespace {

std::array<float, 3> three_floats(const nlohmann::json& j, const char* key, std::array<float, 3> fallback,
                                  const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  const auto& v = j[key];
  if (!v.is_array() || v.size() != 3 || !v[0].is_number() || !v[1].is_number() || !v[2].is_number())
    throw InvalidInputError(source + ": " + key + " must be a list of 3 numbers, got " + v.dump());
  return {v[0].get<float>(), v[1].get<float>(), v[2].get<float>()};
}

}  // namespace

Qwen2VLImageConfig Qwen2VLImageConfig::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw InvalidInputError(source + ": image config must be a JSON object");
  Qwen2VLImageConfig c;
  c.min_pixels = get_or<int64_t>(j, "min_pixels", c.min_pixels, source);
  c.max_pixels = get_or<int64_t>(j, "max_pixels", c.max_pixels, source);
  if (j.contains("size") && j["size"].is_object()) {  // newer processors keep the limits under size
    c.min_pixels = get_or<int64_t>(j["size"], "min_pixels", c.min_pixels, source + " (size)");
    c.max_pixels = get_or<int64_t>(j["size"], "max_pixels", c.max_pixels, source + " (size)");
  }
  c.patch_size = get_or<int64_t>(j, "patch_size", c.patch_size, source);
  c.temporal_patch_size = get_or<int64_t>(j, "temporal_patch_size", c.temporal_patch_size, source);
  c.merge_size = get_or<int64_t>(j, "merge_size", c.merge_size, source);
  c.mean = three_floats(j, "image_mean", c.mean, source);
  c.std = three_floats(j, "image_std", c.std, source);
  c.rescale_factor = get_or<double>(j, "rescale_factor", c.rescale_factor, source);
  const auto resample = get_or<int64_t>(j, "resample", 3, source);
  if (resample != 2 && resample != 3)
    throw InvalidInputError(source + ": resample " + std::to_string(resample) + " (bilinear 2 or bicubic 3 only)");
  c.resample = static_cast<Filter>(resample);
  for (const char* flag : {"do_resize", "do_rescale", "do_normalize", "do_convert_rgb"})
    if (!get_or<bool>(j, flag, true, source))
      throw InvalidInputError(source + ": " + flag + " = false is not supported");
  c.validate(source);
  return c;
}

Qwen2VLImageConfig Qwen2VLImageConfig::from_dir(const std::string& model_dir) {
  const auto path = (std::filesystem::path(model_dir) / "preprocessor_config.json").string();
  if (!std::filesystem::exists(path)) return {};
  return from_json(read_json_file(path), path);
}

void Qwen2VLImageConfig::validate(const std::string& source) const {
  if (patch_size <= 0 || temporal_patch_size <= 0 || merge_size <= 0 || patch_size > 1024 || merge_size > 16 ||
      temporal_patch_size > 16)
    throw InvalidInputError(source + ": patch_size, temporal_patch_size and merge_size must be small positive ints");
  if (min_pixels <= 0 || max_pixels < min_pixels)
    throw InvalidInputError(source + ": need 0 < min_pixels <= max_pixels, got " + std::to_string(min_pixels) + ", " +
                            std::to_string(max_pixels));
  for (int c = 0; c < 3; ++c)
    if (!(std[c] != 0.0f) || !std::isfinite(std[c]) || !std::isfinite(mean[c]))
      throw InvalidInputError(source + ": image_std must be finite and non-zero, image_mean finite");
}

namespace {

// smart_resize's scaling, shared by transformers' and GME's copies: (h, w), already rounded to
// multiples of f, scaled by beta = sqrt(area ratio) with floor (above max_pixels) or ceil (below
// min_pixels) when outside the range. Python's order of operations, so results match to the bit.
std::pair<int64_t, int64_t> into_pixel_range(int64_t height, int64_t width, int64_t h, int64_t w, int64_t f,
                                             int64_t min_pixels, int64_t max_pixels) {
  const double H = static_cast<double>(height), W = static_cast<double>(width), F = static_cast<double>(f);
  int64_t area = 0;  // h * w as Python's ints compare it: a product past int64 is above any limit
  const bool huge = __builtin_mul_overflow(h, w, &area);
  if (huge || area > max_pixels) {
    const double beta = std::sqrt((H * W) / static_cast<double>(max_pixels));
    return {static_cast<int64_t>(std::floor(H / beta / F)) * f, static_cast<int64_t>(std::floor(W / beta / F)) * f};
  }
  if (area < min_pixels) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / (H * W));
    return {static_cast<int64_t>(std::ceil(H * beta / F)) * f, static_cast<int64_t>(std::ceil(W * beta / F)) * f};
  }
  return {h, w};
}

// Python's round(x / f) * f: half to even, which nearbyint does in the default rounding mode.
int64_t round_by_factor(int64_t x, int64_t f) {
  return static_cast<int64_t>(std::nearbyint(static_cast<double>(x) / static_cast<double>(f))) * f;
}

}  // namespace

std::pair<int64_t, int64_t> qwen2_vl_smart_resize(int64_t height, int64_t width, const Qwen2VLImageConfig& config) {
  const int64_t f = config.factor();
  const auto size = std::to_string(height) + "x" + std::to_string(width);
  if (height < f || width < f)
    throw InvalidInputError("image " + size + ": both sides must be at least " + std::to_string(f) +
                            " pixels (Qwen2-VL's smart_resize)");
  if (static_cast<double>(std::max(height, width)) / static_cast<double>(std::min(height, width)) > 200)
    throw InvalidInputError("image " + size + ": aspect ratio above 200 (Qwen2-VL's smart_resize)");
  const auto [h, w] = into_pixel_range(height, width, round_by_factor(height, f), round_by_factor(width, f), f,
                                       config.min_pixels, config.max_pixels);
  if (h == 0 || w == 0)  // transformers then fails inside PIL ("height and width must be > 0")
    throw InvalidInputError("image " + size + ": too elongated for max_pixels " + std::to_string(config.max_pixels) +
                            " (smart_resize gives " + std::to_string(h) + "x" + std::to_string(w) + ")");
  return {h, w};
}

std::pair<int64_t, int64_t> gme_pre_resize_size(int64_t height, int64_t width) {
  constexpr int64_t f = 28, min_pixels = 4 * 28 * 28, max_pixels = 16384 * 28 * 28, max_ratio = 200;
  if (height <= 0 || width <= 0)
    throw InvalidInputError("image " + std::to_string(height) + "x" + std::to_string(width) + ": empty");
  auto [h, w] = into_pixel_range(height, width, std::max(f, round_by_factor(height, f)),
                                 std::max(f, round_by_factor(width, f)), f, min_pixels, max_pixels);
  if (h == 0 || w == 0)  // GME divides by zero in its ratio check
    throw InvalidInputError("image " + std::to_string(height) + "x" + std::to_string(width) +
                            ": too elongated for GME's smart_resize (it gives " + std::to_string(h) + "x" +
                            std::to_string(w) + ")");
  if (static_cast<double>(std::max(h, w)) / static_cast<double>(std::min(h, w)) > max_ratio) {
    if (h > w)
      h = w * max_ratio;
    else
      w = h * max_ratio;
  }
  return {h, w};
}

void qwen2_vl_preprocess_into(const ImageView& image, const Qwen2VLImageConfig& config, int64_t resized_h,
                              int64_t resized_w, float* out) {
  if (!image.data || image.height <= 0 || image.width <= 0) throw InvalidInputError("empty image");
  const int64_t p = config.patch_size, m = config.merge_size, tp = config.temporal_patch_size;
  if (resized_h % (p * m) != 0 || resized_w % (p * m) != 0)
    throw InvalidInputError("resized size " + std::to_string(resized_h) + "x" + std::to_string(resized_w) +
                            " is not a multiple of " + std::to_string(p * m));
  std::vector<uint8_t> resized;
  const uint8_t* px = image.data;
  if (resized_h != image.height || resized_w != image.width) {  // PIL returns a copy for the same size
    resized = resize_rgb(image, resized_h, resized_w, config.resample);
    px = resized.data();
  }
  const auto table = normalisation_table(config.rescale_factor, config.mean, config.std);
  const int64_t gh = resized_h / p, gw = resized_w / p, plane = p * p, dim = config.patch_dim();
  // Row r = ((bh * gw/m + bw) * m + mh) * m + mw covers patch (bh*m + mh, bw*m + mw); its columns are
  // (channel, t, y, x), the t copies identical (one image = the frame repeated).
  int64_t row = 0;
  for (int64_t bh = 0; bh < gh / m; ++bh)
    for (int64_t bw = 0; bw < gw / m; ++bw)
      for (int64_t mh = 0; mh < m; ++mh)
        for (int64_t mw = 0; mw < m; ++mw, ++row) {
          const int64_t top = (bh * m + mh) * p, left = (bw * m + mw) * p;
          float* dst = out + row * dim;
          for (int64_t c = 0; c < 3; ++c) {
            float* first = dst + c * tp * plane;
            for (int64_t y = 0; y < p; ++y) {
              const uint8_t* src = px + ((top + y) * resized_w + left) * 3 + c;
              for (int64_t x = 0; x < p; ++x) first[y * p + x] = table[c][src[x * 3]];
            }
            for (int64_t t = 1; t < tp; ++t) std::memcpy(first + t * plane, first, sizeof(float) * plane);
          }
        }
}

}  // namespace unime::core::image
