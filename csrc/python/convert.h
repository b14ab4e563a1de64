// Python -> C++ conversions shared by the binding files, with errors that name the input.
#pragma once

#include <pybind11/numpy.h>

#include <string>
#include <string_view>

#include "core/image/resample.h"
#include "model/processor.h"
#include "python/bindings.h"

namespace unime::python {

using U8Array = py::array_t<uint8_t, py::array::c_style>;

// The UTF-8 view of a str or bytes object; `what` names it in errors ("text", "input 3"). The view
// borrows from `obj`. A str with a lone surrogate, or another type, is an InvalidInputError.
std::string_view utf8_view(const py::handle& obj, const std::string& what);

// A C-contiguous (H, W, 3) uint8 array (borrowed or copied) after checking dtype and shape.
U8Array rgb_array(const py::handle& obj, const std::string& what);
inline core::image::ImageView view_of(const U8Array& a) { return {a.data(), a.shape(0), a.shape(1)}; }

// Encode inputs from parallel Python lists (texts, images as uint8 arrays, instructions; None
// entries allowed; `prompts` None or a list of raw prompts). `keep` holds the Python objects whose
// buffers the inputs borrow: keep it alive while the inputs are used (GIL released). Errors name
// the input index.
std::vector<model::EncodeInput> to_inputs(const py::sequence& texts, const py::sequence& images,
                                          const py::sequence& instructions, std::vector<py::object>& keep,
                                          const py::object& prompts);

}  // namespace unime::python
