#include "core/image/llava_next_layout.h"

#include <cmath>
#include <limits>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/json_file.h"

namespace unime::core::image {
namespace {

using nlohmann::json;

std::string str(int64_t v) { return std::to_string(v); }

// crop_size / size entries are either an int or {"height": h, "width": w} / {"shortest_edge": s}.
int64_t square_side(const json& v, const std::string& field, const std::string& source) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_object() && v.contains("height") && v.contains("width")) {
    const auto h = get_required<int64_t>(v, "height", source + " (" + field + ")");
    const auto w = get_required<int64_t>(v, "width", source + " (" + field + ")");
    if (h != w)
      throw InvalidInputError(source + ": " + field + " " + str(h) + "x" + str(w) +
                              " is not square; only square crops are supported");
    return h;
  }
  throw InvalidInputError(source + ": field '" + field + "' must be an integer or {\"height\", \"width\"}, got " +
                          v.dump());
}

std::array<float, 3> three_floats(const json& obj, const char* name, std::array<float, 3> fallback,
                                  const std::string& source) {
  if (!obj.contains(name) || obj[name].is_null()) return fallback;
  const auto& v = obj[name];
  std::array<float, 3> out{};
  if (v.is_number()) {
    out.fill(static_cast<float>(v.get<double>()));
    return out;
  }
  if (!v.is_array() || v.size() != 3)
    throw InvalidInputError(source + ": field '" + name + "' must be a number or 3 numbers, got " + v.dump());
  for (size_t c = 0; c < 3; ++c) {
    if (!v[c].is_number()) throw InvalidInputError(source + ": field '" + name + "' holds a non-number: " + v.dump());
    out[c] = static_cast<float>(v[c].get<double>());  // numpy: np.array(mean, dtype=float32)
  }
  return out;
}

void require_flag(const json& obj, const char* name, bool expected, const std::string& source) {
  if (get_or<bool>(obj, name, expected, source) != expected)
    throw InvalidInputError(source + ": " + name + "=" + (expected ? "false" : "true") +
                            " is not supported by the LLaVA-NeXT image processor here");
}

}  // namespace

LlavaNextConfig LlavaNextConfig::from_json(const json& cfg, const std::string& source) {
  if (!cfg.is_object()) throw InvalidInputError(source + ": image config must be a JSON object");
  LlavaNextConfig c;
  if (cfg.contains("image_grid_pinpoints") && !cfg["image_grid_pinpoints"].is_null()) {
    const auto& pins = cfg["image_grid_pinpoints"];
    if (!pins.is_array() || pins.empty())
      throw InvalidInputError(source + ": image_grid_pinpoints must be a non-empty list of [h, w]");
    c.grid_pinpoints.clear();
    for (size_t i = 0; i < pins.size(); ++i) {
      const auto& p = pins[i];
      if (!p.is_array() || p.size() != 2 || !p[0].is_number_integer() || !p[1].is_number_integer())
        throw InvalidInputError(source + ": image_grid_pinpoints[" + std::to_string(i) +
                                "] must be [height, width] integers, got " + p.dump());
      c.grid_pinpoints.emplace_back(p[0].get<int64_t>(), p[1].get<int64_t>());
    }
  }
  if (cfg.contains("vision_config") && cfg["vision_config"].is_object()) {
    // A model config.json: the crop is the vision tower's input size.
    const auto& vision = cfg["vision_config"];
    c.crop_size = get_or<int64_t>(vision, "image_size", c.crop_size, source + " (vision_config)");
    c.patch_size = get_or<int64_t>(vision, "patch_size", c.patch_size, source + " (vision_config)");
    c.shortest_edge = c.crop_size;
  }
  if (cfg.contains("crop_size") && !cfg["crop_size"].is_null())
    c.crop_size = square_side(cfg["crop_size"], "crop_size", source);
  if (cfg.contains("size") && !cfg["size"].is_null()) {
    const auto& size = cfg["size"];
    if (size.is_object() && size.contains("shortest_edge")) {
      c.shortest_edge = get_required<int64_t>(size, "shortest_edge", source + " (size)");
    } else if (size.is_object() && size.contains("height") && size.contains("width")) {
      // transformers then resizes the base image to min(height, width) and the tiles to h x w;
      // only the square form, where both agree, is supported.
      c.shortest_edge = square_side(size, "size", source);
    } else {
      throw InvalidInputError(source + ": field 'size' must hold shortest_edge, got " + size.dump());
    }
  }
  if (cfg.contains("patch_size") && cfg["patch_size"].is_number_integer())
    c.patch_size = cfg["patch_size"].get<int64_t>();
  c.mean = three_floats(cfg, "image_mean", c.mean, source);
  c.std = three_floats(cfg, "image_std", c.std, source);
  c.rescale_factor = get_or<double>(cfg, "rescale_factor", c.rescale_factor, source);
  const auto resample = get_or<int64_t>(cfg, "resample", 3, source);
  if (resample != 2 && resample != 3)
    throw InvalidInputError(source + ": resample " + str(resample) + " is not supported (2 = BILINEAR, 3 = BICUBIC)");
  c.resample = static_cast<Filter>(resample);
  for (const char* flag : {"do_resize", "do_center_crop", "do_rescale", "do_normalize", "do_convert_rgb"})
    require_flag(cfg, flag, true, source);
  c.exact_pad = get_or<bool>(cfg, "exact_pad", c.exact_pad, source);
  c.validate(source);
  return c;
}

LlavaNextConfig LlavaNextConfig::from_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string file = path;
  if (fs::is_directory(path, ec)) {
    const auto pre = fs::path(path) / "preprocessor_config.json";
    file = fs::exists(pre, ec) ? pre.string() : (fs::path(path) / "config.json").string();
  }
  return from_json(read_json_file(file), file);
}

void LlavaNextConfig::validate(const std::string& source) const {
  if (crop_size <= 0 || crop_size > 8192)
    throw InvalidInputError(source + ": crop_size " + str(crop_size) + " is not in [1, 8192]");
  if (shortest_edge <= 0 || shortest_edge > 8192)
    throw InvalidInputError(source + ": size.shortest_edge " + str(shortest_edge) + " is not in [1, 8192]");
  if (patch_size <= 0 || crop_size % patch_size != 0)
    throw InvalidInputError(source + ": patch_size " + str(patch_size) + " must be positive and divide crop_size " +
                            str(crop_size));
  if (grid_pinpoints.empty()) throw InvalidInputError(source + ": image_grid_pinpoints is empty");
  for (size_t i = 0; i < grid_pinpoints.size(); ++i) {
    const auto [h, w] = grid_pinpoints[i];
    // transformers' model counts tiles as best // crop while the processor cuts ceil(best / crop)
    // tiles: they only agree on multiples of the crop.
    if (h <= 0 || w <= 0 || h % crop_size != 0 || w % crop_size != 0 || h > 65536 || w > 65536)
      throw InvalidInputError(source + ": image_grid_pinpoints[" + std::to_string(i) + "] (" + str(h) + ", " + str(w) +
                              ") must be positive multiples of crop_size " + str(crop_size) + " (at most 65536)");
  }
  for (int c = 0; c < 3; ++c)
    if (!(std[c] != 0.0f) || !std::isfinite(std[c]) || !std::isfinite(mean[c]))
      throw InvalidInputError(source + ": image_std must be finite and non-zero, image_mean finite");
  if (!std::isfinite(rescale_factor)) throw InvalidInputError(source + ": rescale_factor must be finite");
}

std::pair<int64_t, int64_t> select_best_resolution(int64_t height, int64_t width,
                                                   const std::vector<std::pair<int64_t, int64_t>>& pinpoints) {
  std::pair<int64_t, int64_t> best{0, 0};
  int64_t best_effective = 0;
  double best_wasted = std::numeric_limits<double>::infinity();
  for (const auto& [h, w] : pinpoints) {
    // Python: scale = min(width / W0, height / H0) in doubles, int() truncates.
    const double scale = std::min(static_cast<double>(w) / static_cast<double>(width),
                                  static_cast<double>(h) / static_cast<double>(height));
    const auto dw = static_cast<int64_t>(static_cast<double>(width) * scale);
    const auto dh = static_cast<int64_t>(static_cast<double>(height) * scale);
    const int64_t effective = std::min(dw * dh, width * height);
    const int64_t wasted = w * h - effective;
    if (effective > best_effective || (effective == best_effective && static_cast<double>(wasted) < best_wasted)) {
      best_effective = effective;
      best_wasted = static_cast<double>(wasted);
      best = {h, w};
    }
  }
  return best;
}

std::pair<int64_t, int64_t> fit_size(int64_t height, int64_t width, int64_t target_height, int64_t target_width) {
  const double scale_w = static_cast<double>(target_width) / static_cast<double>(width);
  const double scale_h = static_cast<double>(target_height) / static_cast<double>(height);
  if (scale_w < scale_h) {
    const auto h = static_cast<int64_t>(std::ceil(static_cast<double>(height) * scale_w));
    return {std::min(h, target_height), target_width};
  }
  const auto w = static_cast<int64_t>(std::ceil(static_cast<double>(width) * scale_h));
  return {target_height, std::min(w, target_width)};
}

LlavaNextLayout llava_next_layout(int64_t height, int64_t width, const LlavaNextConfig& config) {
  if (height <= 0 || width <= 0 || height > kMaxSide || width > kMaxSide)
    throw InvalidInputError("llava_next_layout: image size " + str(height) + "x" + str(width) +
                            " (height x width) is not in [1, " + str(kMaxSide) + "]");
  LlavaNextLayout l;
  std::tie(l.best_height, l.best_width) = select_best_resolution(height, width, config.grid_pinpoints);
  l.tiles_h = l.best_height / config.crop_size;
  l.tiles_w = l.best_width / config.crop_size;
  std::tie(l.resized_height, l.resized_width) = fit_size(height, width, l.best_height, l.best_width);
  const int64_t side = config.crop_size / config.patch_size;
  const int64_t cur_h = side * l.tiles_h, cur_w = side * l.tiles_w;
  l.feat_rows_begin = 0, l.feat_rows_end = cur_h;
  l.feat_cols_begin = 0, l.feat_cols_end = cur_w;
  const double aspect = static_cast<double>(width) / static_cast<double>(height);
  const double grid_aspect = static_cast<double>(cur_w) / static_cast<double>(cur_h);
  if (aspect > grid_aspect) {  // wider than the grid: padding rows at top and bottom
    const int64_t new_h = height * cur_w / width;
    const int64_t pad = (cur_h - new_h) / 2;  // new_h <= cur_h here, so this is floor division
    l.feat_rows_begin = pad, l.feat_rows_end = cur_h - pad;
  } else {
    const int64_t new_w = width * cur_h / height;
    const int64_t pad = (cur_w - new_w) / 2;
    l.feat_cols_begin = pad, l.feat_cols_end = cur_w - pad;
  }
  const int64_t rows = l.feat_rows_end - l.feat_rows_begin;
  const int64_t cols = l.feat_cols_end - l.feat_cols_begin;
  l.num_image_tokens = side * side + rows * cols + rows;
  return l;
}

}  // namespace unime::core::image
