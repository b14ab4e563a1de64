// Prompt templates as data: one table row per backbone family, the strings UniME, VLM2Vec and the
// Qwen2-VL line feed their models (unime-method.md 1.2-1.3, backbones.md A.5, B, C). Plain C++: no
// tokenizer, no torch.
//
// Which template an input gets (PromptKind::kEmbed):
//   text only, no instruction   -> `text`   (UniME zero-shot: "... Summary above sentence in one word: ...")
//   image only, no instruction  -> `image`  (UniME zero-shot: "... Summary above image in one word: ...")
//   otherwise (an instruction, or image and text together) -> the MMEB form UniME's stage 2 trains on
//       (VLM2Vec, no chat template): `instruction_image` + "\n" when there is an image, then the
//       instruction, then the text, each separated by one space, and a final "\n".
// A template with a `chat` form (GME) gives every kEmbed input that form instead: the instruction (or
// `default_instruction`) in the system turn, the image placeholder and the text in the user turn.
// PromptKind::kDistill (UniME stage 1, text only) -> `distill`.
// "{image}" stands for the family's image placeholder; "{n}" inside a placeholder is the image's
// 1-based number within the input (Phi-3.5-V's "<|image_1|>"). The processor later expands the
// placeholder to the image's token count. BOS is not written here: the tokenizer's post-processor
// (or the family's processor) adds it.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace unime::core::prompt {

enum class PromptKind { kEmbed, kDistill };

struct PromptTemplate {
  std::string family;             // config.json model_type ("llava_next", "phi3_v", "qwen2_vl", "mistral", ...)
  std::string image_placeholder;  // in `image`; empty for text-only families
  std::string instruction_image;  // the placeholder of the MMEB (instruction) form
  std::string text;               // contains "{text}"
  std::string image;              // contains "{image}"; empty for text-only families
  std::string distill;            // stage-1 text prompt, contains "{text}"
  // Substrings a user text or instruction may not contain: they would add a placeholder the
  // images cannot match ("<image>", "<|image_", "<|vision_start|>", ...).
  std::vector<std::string> reserved;
  // Recipes' one-form prompts: slots "{instruction}", "{image}" and "{text}", each filled with the
  // input's (the image's placeholder) or left empty; empty for the families' own templates.
  std::string chat = "";
  std::string default_instruction = "";
};

// The template of `model_type` (or of a recipe: "gme"); InvalidInputError listing the known ones otherwise.
const PromptTemplate& template_for(const std::string& model_type);
std::vector<std::string> template_families();

// The prompt of one input. At least one of `text` and `has_image` must be given; an image for a
// text-only family, a text or instruction holding a reserved placeholder, or kDistill with an
// image or an instruction is an InvalidInputError.
std::string build_prompt(const PromptTemplate& t, const std::optional<std::string>& text, bool has_image,
                         const std::optional<std::string>& instruction, PromptKind kind = PromptKind::kEmbed);

// A caller's own template (e.g. a stage-1 prompt of the trainer's config): "{text}" and "{image}"
// replaced by the text and the family's image placeholder. The template must hold "{text}" when a
// text is given and "{image}" when an image is; each at most once.
std::string fill_template(const PromptTemplate& t, const std::string& custom, const std::optional<std::string>& text,
                          bool has_image);

}  // namespace unime::core::prompt
