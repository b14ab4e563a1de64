// Python -> C++ conversions shared by the binding files, with errors that name the input.
#pragma once

#include <pybind11/numpy.h>

#include <string>
#include <string_view>

#include "core/image/resample.h"
#include "python/bindings.h"

namespace unime::python {

using U8Array = py::array_t<uint8_t, py::array::c_style>;

// The UTF-8 view of a str or bytes object; `what` names it in errors ("text", "input 3"). The view
// borrows from `obj`. A str with a lone surrogate, or another type, is an InvalidInputError.
std::string_view utf8_view(const py::handle& obj, const std::string& what);

// A C-contiguous (H, W, 3) uint8 array (borrowed or copied) after checking dtype and shape.
U8Array rgb_array(const py::handle& obj, const std::string& what);
inline core::image::ImageView view_of(const U8Array& a) { return {a.data(), a.shape(0), a.shape(1)}; }

}  // namespace unime::python
