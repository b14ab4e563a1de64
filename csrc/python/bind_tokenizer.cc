// unime._C.Tokenizer: the C++ tokenizer (csrc/core/tokenizer) for Python; unime/tokenizer.py wraps
// it as unime.Tokenizer.
//
// Text crosses the boundary without copies: str objects give their cached UTF-8 buffers (which
// stay valid while the caller's objects live), and the GIL is released while the core works.
// A str holding lone surrogates has no UTF-8 form and is refused with ValueError naming the input;
// bytes are accepted too and validated by the core (ValueError with the byte offset).
#include <Python.h>

#include "core/errors.h"
#include "core/tokenizer/tokenizer.h"
#include "python/bindings.h"
#include "python/convert.h"

namespace unime::python {
namespace {

using core::Tokenizer;

py::list to_list(const std::vector<int32_t>& ids) {
  PyObject* list = PyList_New(Py_ssize_t(ids.size()));
  if (!list) throw py::error_already_set();
  for (size_t i = 0; i < ids.size(); ++i) PyList_SET_ITEM(list, Py_ssize_t(i), PyLong_FromLong(ids[i]));
  return py::reinterpret_steal<py::list>(list);
}

}  // namespace

void bind_tokenizer(py::module_& m) {
  py::class_<Tokenizer, std::shared_ptr<Tokenizer>>(
      m, "Tokenizer",
      "Hugging Face tokenizer.json tokenization in the C++ core (same ids as the "
      "tokenizers library). Immutable apart from its settings; thread-safe.")
      .def_static(
          "from_file",
          [](const std::string& path) {
            py::gil_scoped_release release;
            return Tokenizer::from_file(path);
          },
          py::arg("path"), "Load a tokenizer.json file.")
      .def_static(
          "from_str",
          [](const std::string& json) {
            py::gil_scoped_release release;
            return Tokenizer::from_string(json);
          },
          py::arg("json"), "Load tokenizer.json content from a string.")
      .def(
          "encode",
          [](const Tokenizer& t, const py::handle& text, bool add_special_tokens) {
            std::string_view view = utf8_view(text, "text");
            std::vector<int32_t> ids;
            {
              py::gil_scoped_release release;
              ids = t.encode(view, add_special_tokens);
            }
            return to_list(ids);
          },
          py::arg("text"), py::arg("add_special_tokens") = true)
      .def(
          "encode_batch",
          [](const Tokenizer& t, const py::sequence& texts, bool add_special_tokens, size_t num_threads) {
            // Hold the items: their UTF-8 buffers must outlive the GIL-free section.
            std::vector<py::object> keep;
            std::vector<std::string_view> views;
            size_t n = size_t(py::len(texts));
            keep.reserve(n);
            views.reserve(n);
            for (size_t i = 0; i < n; ++i) {
              keep.push_back(texts[i]);
              views.push_back(utf8_view(keep.back(), "input " + std::to_string(i)));
            }
            std::vector<std::vector<int32_t>> out;
            {
              py::gil_scoped_release release;
              out = t.encode_batch(views, add_special_tokens, num_threads);
            }
            py::list result(out.size());
            for (size_t i = 0; i < out.size(); ++i) result[i] = to_list(out[i]);
            return result;
          },
          py::arg("texts"), py::arg("add_special_tokens") = true, py::arg("num_threads") = 0)
      .def(
          "decode",
          [](const Tokenizer& t, const std::vector<int32_t>& ids, bool skip_special_tokens) {
            std::string text;
            {
              py::gil_scoped_release release;
              text = t.decode(ids, skip_special_tokens);
            }
            return py::str(text);
          },
          py::arg("ids"), py::arg("skip_special_tokens") = true)
      .def("token_to_id", &Tokenizer::token_to_id, py::arg("token"))
      .def("id_to_token", &Tokenizer::id_to_token, py::arg("id"))
      .def("vocab_size", &Tokenizer::vocab_size, py::arg("with_added_tokens") = true)
      .def(
          "special_tokens",
          [](const Tokenizer& t) {
            std::vector<std::pair<std::string, int32_t>> out;
            for (const auto& a : t.added_tokens().tokens())
              if (a.special) out.emplace_back(a.content, a.id);
            return out;
          },
          "(content, id) of the added tokens marked special, in file order.")
      .def_property(
          "max_input_chars", [](const Tokenizer& t) { return t.max_input_chars(); },
          [](Tokenizer& t, size_t limit) { t.set_max_input_chars(limit); })
      .def_property(
          "truncation",
          [](const Tokenizer& t) -> std::optional<std::pair<size_t, std::string>> {
            if (!t.truncation()) return std::nullopt;
            return std::make_pair(t.truncation()->max_length, std::string(t.truncation()->left ? "left" : "right"));
          },
          [](Tokenizer& t, std::optional<std::pair<size_t, std::string>> value) {
            if (!value) return t.set_truncation(std::nullopt);
            if (value->second != "left" && value->second != "right") {
              throw InvalidInputError("truncation direction must be \"left\" or \"right\", got \"" + value->second +
                                      "\"");
            }
            t.set_truncation(core::Truncation{value->first, value->second == "left"});
          });
}

}  // namespace unime::python
