// Declarations shared by the binding files of unime._C (the only place that includes pybind11).
#pragma once

#include <torch/python.h>

namespace unime::python {

namespace py = pybind11;

void register_error_translators(py::module_& m);
void bind_model(py::module_& m);
void bind_checkpoint(py::module_& m);
void bind_tokenizer(py::module_& m);
void bind_image(py::module_& m);
void bind_prompt(py::module_& m);
void bind_layers(py::module_& m);
void bind_train(py::module_& m);

}  // namespace unime::python
