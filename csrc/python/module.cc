// PYBIND11_MODULE(_C): the extension module. Importing it also registers torch.ops.unime.*.
#include "python/bindings.h"

PYBIND11_MODULE(_C, m) {
  m.doc() = "unime C++ core (LibTorch)";
  m.attr("__torch_version__") = UNIME_TORCH_VERSION;
  m.attr("__version__") = UNIME_VERSION;
#ifdef UNIME_WITH_CUDA
  m.attr("__with_cuda__") = true;
#else
  m.attr("__with_cuda__") = false;
#endif
  unime::python::register_error_translators(m);
  unime::python::bind_model(m);
  unime::python::bind_checkpoint(m);
  unime::python::bind_tokenizer(m);
  unime::python::bind_image(m);
  unime::python::bind_prompt(m);
  unime::python::bind_layers(m);
  unime::python::bind_train(m);
}
