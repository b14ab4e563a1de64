// unime._C.EmbeddingModel: the loaded model. Python's unime.Model wraps it (python/unime/model.py).
#include "python/bindings.h"
#include "model/embedding_model.h"

namespace unime::python {

namespace {
using ImageArg = std::tuple<at::Tensor, int64_t, int64_t>;  // (pixel_values, height, width)

model::EncodeBatch make_batch(const at::Tensor& ids, const at::Tensor& mask, const std::vector<ImageArg>& images) {
  model::EncodeBatch batch{ids, mask, {}};
  for (const auto& [pixels, h, w] : images) batch.images.push_back({pixels, h, w});
  return batch;
}
}  // namespace

void bind_model(py::module_& m) {
  using model::EmbeddingModel;
  py::class_<EmbeddingModel, std::shared_ptr<EmbeddingModel>>(m, "EmbeddingModel")
      .def_static(
          "load",
          [](const std::string& path, std::optional<std::string> dtype, const std::string& device) {
            std::optional<at::ScalarType> type;
            if (dtype) type = model::parse_float_dtype(*dtype);
            c10::Device dev(device);
            py::gil_scoped_release release;
            return EmbeddingModel::load(path, type, dev);
          },
          py::arg("path"), py::arg("dtype") = py::none(), py::arg("device") = "cpu",
          "Load a Hugging Face checkpoint directory. dtype: None = config.json's torch_dtype.")
      .def(
          "encode",
          [](const EmbeddingModel& m, const at::Tensor& ids, const at::Tensor& mask, const std::vector<ImageArg>& images,
             bool normalize, bool packed) { return m.encode(make_batch(ids, mask, images), normalize, packed); },
          py::arg("input_ids"), py::arg("attention_mask"), py::arg("images") = std::vector<ImageArg>{},
          py::arg("normalize") = true, py::arg("packed") = true, py::call_guard<py::gil_scoped_release>(),
          "images: [(pixel_values, height, width)] in placeholder order")
      .def(
          "last_hidden_state",
          [](const EmbeddingModel& m, const at::Tensor& ids, const at::Tensor& mask, const std::vector<ImageArg>& images) {
            return m.last_hidden_state(make_batch(ids, mask, images));
          },
          py::arg("input_ids"), py::arg("attention_mask"), py::arg("images") = std::vector<ImageArg>{},
          py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("image_token_id", [](const EmbeddingModel& m) { return m.backbone().image_token_id(); })
      .def("image_token_count", [](const EmbeddingModel& m, int64_t h, int64_t w) {
        return m.backbone().image_token_count(h, w);
      })
      .def_property_readonly("ignored_tensors", [](const EmbeddingModel& m) { return m.load_report().ignored; })
      .def_property_readonly("unexpected_tensors", [](const EmbeddingModel& m) { return m.load_report().unexpected; })
      .def_property_readonly("config_json", &EmbeddingModel::config_json)
      .def_property_readonly("model_type", &EmbeddingModel::model_type)
      .def_property_readonly("hidden_size", &EmbeddingModel::hidden_size)
      .def_property_readonly("dtype", [](const EmbeddingModel& m) { return std::string(c10::toString(m.dtype())); })
      .def_property_readonly("device", [](const EmbeddingModel& m) { return m.device().str(); })
      .def(
          "named_parameters",
          [](EmbeddingModel& m) {
            std::vector<std::pair<std::string, at::Tensor>> out;
            for (const auto& item : m.backbone().named_parameters()) out.emplace_back(item.key(), item.value());
            return out;
          },
          "(module path, tensor) for every parameter, sharing memory with the model");
}

}  // namespace unime::python
