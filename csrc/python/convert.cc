#include "python/convert.h"

#include <Python.h>

#include "core/errors.h"

namespace unime::python {

std::string_view utf8_view(const py::handle& obj, const std::string& what) {
  if (PyUnicode_Check(obj.ptr())) {
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(obj.ptr(), &size);
    if (!data) {
      PyErr_Clear();
      throw InvalidInputError(what + " cannot be encoded as UTF-8 (it holds a lone surrogate)");
    }
    return std::string_view(data, size_t(size));
  }
  if (PyBytes_Check(obj.ptr()))
    return std::string_view(PyBytes_AS_STRING(obj.ptr()), size_t(PyBytes_GET_SIZE(obj.ptr())));
  throw InvalidInputError(what + " must be str or bytes, got " + std::string(Py_TYPE(obj.ptr())->tp_name));
}

U8Array rgb_array(const py::handle& obj, const std::string& what) {
  if (!py::isinstance<py::array>(obj))
    throw InvalidInputError(what + " must be a numpy uint8 array of shape (H, W, 3), got " +
                            std::string(Py_TYPE(obj.ptr())->tp_name));
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<uint8_t>()))
    throw InvalidInputError(what + " must have dtype uint8, got " + py::str(arr.dtype()).cast<std::string>());
  if (arr.ndim() != 3 || arr.shape(2) != 3 || arr.shape(0) < 1 || arr.shape(1) < 1)
    throw InvalidInputError(
        what + " must have shape (H, W, 3) with H, W >= 1, got " +
        py::str(py::tuple(py::cast(std::vector<py::ssize_t>(arr.shape(), arr.shape() + arr.ndim()))))
            .cast<std::string>());
  return U8Array::ensure(arr);
}

}  // namespace unime::python
