// unime._C.nn: the model layer's building blocks for Python (tests compare them with their plain
// references in tests/reference/; researchers can call them on their own tensors).
#include "model/packed_attention.h"
#include "model/rotary.h"
#include "python/bindings.h"

namespace unime::python {

void bind_layers(py::module_& root) {
  auto m = root.def_submodule("nn", "Model-layer building blocks (rotary tables, packed attention)");
  m.def(
      "packed_attention",
      [](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const std::vector<int64_t>& lengths,
         bool causal, std::optional<int64_t> sliding_window, bool last_only, std::optional<double> scale,
         int64_t query_block) {
        auto packed = model::pack_lengths(lengths, q.device());
        model::AttentionMaskSpec mask{causal, sliding_window, query_block};
        return model::packed_attention(q, k, v, packed, mask, last_only,
                                       scale.value_or(1.0 / std::sqrt(static_cast<double>(q.size(-1)))));
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::arg("lengths"), py::arg("causal") = true,
      py::arg("sliding_window") = py::none(), py::arg("last_only") = false, py::arg("scale") = py::none(),
      py::arg("query_block") = 0, py::call_guard<py::gil_scoped_release>(),
      "Attention within each of the packed sequences (lengths sum to T): q (T or B, H, d), k/v (T, Hkv, d).\n"
      "query_block: queries per block of the sliding-window path (0: by memory budget).");
  m.def(
      "apply_rotary",
      [](const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin, bool in_fp32) {
        return in_fp32 ? model::apply_rotary_in_fp32(x, cos, sin) : model::apply_rotary(x, cos, sin);
      },
      py::arg("x"), py::arg("cos"), py::arg("sin"), py::arg("in_fp32") = false,
      py::call_guard<py::gil_scoped_release>(),
      "x * cos + rotate_half(x) * sin in x's dtype; in_fp32: computed in fp32 (fp32 tables), returned in x's "
      "dtype.");
  m.def(
      "rotary_tables",
      [](const at::Tensor& positions, int64_t head_dim, double theta, const std::string& type, at::ScalarType dtype) {
        model::RotaryConfig config;
        config.type = type;
        config.theta = theta;
        auto rope = model::make_rotary_embedding(config, head_dim);
        auto t = rope->tables(positions, dtype);
        return std::make_pair(t.cos, t.sin);
      },
      py::arg("positions"), py::arg("head_dim"), py::arg("theta") = 10000.0, py::arg("type") = "default",
      py::arg("dtype") = at::kFloat, "(cos, sin) tables (..., head_dim) for int64 positions (...).");
}

}  // namespace unime::python
