// Prompt templates (csrc/core/prompt) for Python: the processors build every prompt through these.
#include "core/errors.h"
#include "core/prompt/prompt_templates.h"
#include "python/bindings.h"

namespace unime::python {

void bind_prompt(py::module_& m) {
  using core::prompt::PromptTemplate;
  py::class_<PromptTemplate>(m, "PromptTemplate")
      .def_readonly("family", &PromptTemplate::family)
      .def_readonly("image_placeholder", &PromptTemplate::image_placeholder)
      .def_readonly("instruction_image", &PromptTemplate::instruction_image)
      .def_readonly("text", &PromptTemplate::text)
      .def_readonly("image", &PromptTemplate::image)
      .def_readonly("distill", &PromptTemplate::distill)
      .def_readonly("reserved", &PromptTemplate::reserved);
  m.def("prompt_template", &core::prompt::template_for, py::arg("model_type"), py::return_value_policy::reference,
        "The prompt template of a model_type (ValueError listing the known ones otherwise).");
  m.def(
      "build_prompt",
      [](const std::string& model_type, std::optional<std::string> text, bool has_image,
         std::optional<std::string> instruction, const std::string& prompt) {
        if (prompt != "embed" && prompt != "distill")
          throw InvalidInputError("prompt must be 'embed' or 'distill', got '" + prompt + "'");
        const auto kind = prompt == "embed" ? core::prompt::PromptKind::kEmbed : core::prompt::PromptKind::kDistill;
        return core::prompt::build_prompt(core::prompt::template_for(model_type), text, has_image, instruction, kind);
      },
      py::arg("model_type"), py::arg("text") = py::none(), py::arg("has_image") = false,
      py::arg("instruction") = py::none(), py::arg("prompt") = "embed",
      "The prompt string of one input (BOS is added by the tokenizer, the image placeholder is not expanded).");
}

}  // namespace unime::python
