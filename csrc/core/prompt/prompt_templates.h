// Prompt templates as data: one table row per backbone family, the strings UniME and VLM2Vec feed
// their models (unime-method.md 1.2-1.3, backbones.md A.5). Plain C++: no tokenizer, no torch.
//
// Which template an input gets:
//   text only, no instruction   -> `text`   (UniME zero-shot: "... Summary above sentence in one word: ...")
//   image only, no instruction  -> `image`  (UniME zero-shot: "... Summary above image in one word: ...")
//   otherwise (an instruction, or image and text together) -> the MMEB form UniME's stage 2 trains on
//       (VLM2Vec, no chat template): "{image}\n" when there is an image, then the instruction, then
//       the text, each separated by one space, and a final "\n".
// "{image}" stands for the family's image placeholder (one token that the processor later expands
// to the image's token count); BOS is not written here: the tokenizer's post-processor adds it.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace unime::core::prompt {

struct PromptTemplate {
  std::string family;             // config.json model_type ("llava_next", "mistral", ...)
  std::string image_placeholder;  // "<image>"; empty for text-only families
  std::string text;               // contains "{text}"
  std::string image;              // contains "{image}"; empty for text-only families
};

// The template of `model_type`; InvalidInputError listing the known families otherwise.
const PromptTemplate& template_for(const std::string& model_type);
std::vector<std::string> template_families();

// The prompt of one input. At least one of `text` and `has_image` must be given; an image for a
// text-only family, or a text or instruction holding the image placeholder itself, is an
// InvalidInputError (a second placeholder would desynchronise images and features).
std::string build_prompt(const PromptTemplate& t, const std::optional<std::string>& text, bool has_image,
                         const std::optional<std::string>& instruction);

}  // namespace unime::core::prompt
