// C++ error categories -> Python exceptions (see csrc/core/errors.h for the mapping).
#include "core/errors.h"
#include "python/bindings.h"

namespace unime::python {

void register_error_translators(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InvalidInputError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const FileNotFoundError& e) {
      PyErr_SetString(PyExc_FileNotFoundError, e.what());
    } catch (const MissingKeyError& e) {
      PyErr_SetString(PyExc_KeyError, e.what());
    } catch (const c10::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what_without_backtrace());
    }
  });
}

}  // namespace unime::python
