// Image preprocessing for Python: Pillow-exact resizing and the LLaVA-NeXT processor of
// csrc/core/image, wrapped by unime/images.py.
//
// Images cross the boundary as numpy uint8 arrays of shape (H, W, 3) (decoding and colour
// conversion happen in Python with Pillow, as in transformers); strided arrays are copied to
// C-contiguous first. The pixel output is a torch float32 tensor allocated before the work, which
// then runs without the GIL; the batch variant spreads images over threads.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/image/llava_next_processor.h"
#include "core/json_file.h"
#include "python/bindings.h"
#include "python/convert.h"

namespace unime::python {
namespace {

using core::image::Filter;
using core::image::ImageView;
using core::image::LlavaNextConfig;
using core::image::LlavaNextLayout;
Filter parse_filter(const std::string& name) {
  if (name == "bicubic") return Filter::kBicubic;
  if (name == "bilinear") return Filter::kBilinear;
  throw InvalidInputError("filter must be 'bicubic' or 'bilinear', got '" + name + "'");
}

// None -> defaults (llava-hf/llava-v1.6-mistral-7b-hf); a LlavaNextImageConfig; a dict (a
// preprocessor_config.json or config.json as loaded by json.load); or a path to either file, or to
// a directory holding preprocessor_config.json (else config.json, as model::llava_next_image_config).
LlavaNextConfig to_config(const py::handle& obj) {
  if (obj.is_none()) return LlavaNextConfig{};
  if (py::isinstance<LlavaNextConfig>(obj)) return obj.cast<LlavaNextConfig>();
  if (py::isinstance<py::dict>(obj)) {
    auto text = py::module_::import("json").attr("dumps")(obj).cast<std::string>();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw InvalidInputError(std::string("image config dict is not valid JSON: ") + e.what());
    }
    return LlavaNextConfig::from_json(j, "image config dict");
  }
  if (py::isinstance<py::str>(obj) || py::hasattr(obj, "__fspath__")) {
    std::string path = py::str(py::module_::import("os").attr("fspath")(obj)).cast<std::string>();
    py::gil_scoped_release release;
    return LlavaNextConfig::from_path(path);
  }
  throw InvalidInputError("image config must be None, a dict, a path or a LlavaNextImageConfig, got " +
                          std::string(Py_TYPE(obj.ptr())->tp_name));
}

py::dict layout_dict(const LlavaNextLayout& l, int64_t height, int64_t width) {
  py::dict d;
  d["image_size"] = py::make_tuple(height, width);
  d["best_resolution"] = py::make_tuple(l.best_height, l.best_width);
  d["tiles"] = py::make_tuple(l.tiles_h, l.tiles_w);
  d["resized_size"] = py::make_tuple(l.resized_height, l.resized_width);
  d["feature_rows"] = py::make_tuple(l.feat_rows_begin, l.feat_rows_end);
  d["feature_cols"] = py::make_tuple(l.feat_cols_begin, l.feat_cols_end);
  d["num_patches"] = l.num_patches();
  d["num_image_tokens"] = l.num_image_tokens;
  return d;
}

at::Tensor empty_pixels(const LlavaNextLayout& l, const LlavaNextConfig& c) {
  return at::empty({l.num_patches(), 3, c.crop_size, c.crop_size}, at::kFloat);
}

}  // namespace

void bind_image(py::module_& m) {
  py::class_<LlavaNextConfig>(m, "LlavaNextImageConfig",
                              "LLaVA-NeXT image processor settings (grid pinpoints, crop, "
                              "normalisation, padding version). Read-only.")
      .def(py::init([](const py::object& config) { return to_config(config); }), py::arg("config") = py::none(),
           "From None (llava-hf defaults), a dict, or a path to preprocessor_config.json / "
           "config.json / a directory holding one.")
      .def_property_readonly("grid_pinpoints", [](const LlavaNextConfig& c) { return c.grid_pinpoints; })
      .def_readonly("crop_size", &LlavaNextConfig::crop_size)
      .def_readonly("shortest_edge", &LlavaNextConfig::shortest_edge)
      .def_readonly("patch_size", &LlavaNextConfig::patch_size)
      .def_readonly("mean", &LlavaNextConfig::mean)
      .def_readonly("std", &LlavaNextConfig::std)
      .def_readonly("rescale_factor", &LlavaNextConfig::rescale_factor)
      .def_readonly("exact_pad", &LlavaNextConfig::exact_pad)
      .def("__repr__", [](const LlavaNextConfig& c) {
        return "LlavaNextImageConfig(crop_size=" + std::to_string(c.crop_size) +
               ", shortest_edge=" + std::to_string(c.shortest_edge) +
               ", pinpoints=" + std::to_string(c.grid_pinpoints.size()) +
               ", exact_pad=" + (c.exact_pad ? "True" : "False") + ")";
      });

  m.def(
      "resize_rgb",
      [](const py::object& image, int64_t height, int64_t width, const std::string& filter) {
        auto a = rgb_array(image, "image");
        const Filter f = parse_filter(filter);
        U8Array out({height > 0 ? height : 0, width > 0 ? width : 0, int64_t{3}});
        uint8_t* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          core::image::resize_rgb(view_of(a), height, width, f, dst);
        }
        return out;
      },
      py::arg("image"), py::arg("height"), py::arg("width"), py::arg("filter") = "bicubic",
      "Resize a uint8 (H, W, 3) array exactly as PIL.Image.resize((width, height), filter).");

  m.def(
      "llava_next_layout",
      [](int64_t height, int64_t width, const py::object& config) {
        const auto c = to_config(config);
        return layout_dict(core::image::llava_next_layout(height, width, c), height, width);
      },
      py::arg("height"), py::arg("width"), py::arg("config") = py::none(),
      "Tile grid, unpadded feature rows/cols and image token count for an image of this size.");

  m.def(
      "llava_next_preprocess",
      [](const py::object& image, const py::object& config) {
        const auto c = to_config(config);
        auto a = rgb_array(image, "image");
        const auto layout = core::image::llava_next_layout(a.shape(0), a.shape(1), c);
        auto pixels = empty_pixels(layout, c);
        float* out = pixels.data_ptr<float>();
        {
          py::gil_scoped_release release;
          core::image::llava_next_preprocess_into(view_of(a), c, layout, out);
        }
        return py::make_tuple(pixels, layout_dict(layout, a.shape(0), a.shape(1)));
      },
      py::arg("image"), py::arg("config") = py::none(),
      "LlavaNextImageProcessor (transformers 4.48.3) on one RGB uint8 (H, W, 3) array: returns "
      "(pixel_values float32 (1 + tiles, 3, crop, crop), layout dict).");

  m.def(
      "llava_next_preprocess_batch",
      [](const py::sequence& images, const py::object& config, int64_t num_threads) {
        const auto c = to_config(config);
        const size_t n = images.size();
        std::vector<U8Array> arrays;
        std::vector<LlavaNextLayout> layouts;
        std::vector<at::Tensor> outputs;
        for (size_t i = 0; i < n; ++i) {
          const std::string what = "image " + std::to_string(i);
          arrays.push_back(rgb_array(images[i], what));
          try {
            layouts.push_back(core::image::llava_next_layout(arrays[i].shape(0), arrays[i].shape(1), c));
          } catch (const InvalidInputError& e) {
            throw InvalidInputError(what + ": " + e.what());
          }
          outputs.push_back(empty_pixels(layouts[i], c));
        }
        std::vector<ImageView> views;
        std::vector<float*> outs;
        for (size_t i = 0; i < n; ++i) {
          views.push_back(view_of(arrays[i]));
          outs.push_back(outputs[i].data_ptr<float>());
        }
        {
          py::gil_scoped_release release;
          core::throw_first(core::image::llava_next_preprocess_batch(views, c, layouts, outs,
                                                                     size_t(std::max<int64_t>(num_threads, 0))),
                            "image ");
        }
        py::list result;
        for (size_t i = 0; i < n; ++i)
          result.append(py::make_tuple(outputs[i], layout_dict(layouts[i], views[i].height, views[i].width)));
        return result;
      },
      py::arg("images"), py::arg("config") = py::none(), py::arg("num_threads") = 0,
      "llava_next_preprocess on a list of arrays, spread over num_threads threads (0 = one per "
      "core); returns a list of (pixel_values, layout) in input order. Errors name the image "
      "index.");
}

}  // namespace unime::python
