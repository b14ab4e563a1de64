// Checkpoint I/O and weight-map helpers for Python: load/save safetensors through the C++ reader
// and writer (used by tests against the safetensors package, and by users inspecting checkpoints).
#include "core/safetensors.h"
#include "python/bindings.h"
#include "model/checkpoint_loader.h"
#include "model/decoder_weight_map.h"
#include "model/embedding_model.h"

namespace unime::python {

void bind_checkpoint(py::module_& m) {
  m.def(
      "load_safetensors",
      [](const std::string& path, std::optional<std::string> dtype, const std::string& device) {
        std::optional<at::ScalarType> type;
        if (dtype) type = at::ScalarType(model::parse_float_dtype(*dtype));
        py::gil_scoped_release release;
        auto checkpoint = core::Checkpoint::open(path);
        std::vector<std::pair<std::string, at::Tensor>> out;
        for (const auto& name : checkpoint.names()) {
          auto found = checkpoint.find(name);
          out.emplace_back(name, model::read_tensor(*found.file, *found.info, type, c10::Device(device)));
        }
        return out;
      },
      py::arg("path"), py::arg("dtype") = py::none(), py::arg("device") = "cpu",
      "Read every tensor of a safetensors file, or of a checkpoint directory (sharded or not), as "
      "(name, tensor) pairs in name order. Floating tensors are converted to dtype when given.");
  m.def(
      "save_safetensors",
      [](const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
         const std::map<std::string, std::string>& metadata) {
        py::gil_scoped_release release;
        model::save_tensors(path, tensors, metadata);
      },
      py::arg("path"), py::arg("tensors"), py::arg("metadata") = std::map<std::string, std::string>{},
      "Write (name, tensor) pairs to a safetensors file: temp file + rename, 8-byte aligned header.");
  m.def(
      "decoder_weight_rules",
      []() {
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& r : model::decoder_weight_map().rules()) out.emplace_back(r.hf, r.module);
        return out;
      },
      "The Llama/Mistral decoder's (Hugging Face pattern, module pattern) table.");
}

}  // namespace unime::python
