#include "core/prompt/prompt_templates.h"

#include <map>

#include "core/errors.h"
#include "core/util/strings.h"

namespace unime::core::prompt {
namespace {

const std::map<std::string, PromptTemplate>& table() {
  // llava_next: UniME's evaluation prompts (self_evaluate/retrieval_self.py); "[INST]" is plain
  //   text to its tokenizer. Stage 1's prompt is "<Text> Summary above sentences in one word: \n"
  //   (paper 3.1.2; its chat wrapping is not released): we wrap it as the evaluation prompts are.
  // phi3_v: the same prompts in Phi-3.5-V's chat format with its numbered image tag (retrieval_self.py
  //   L89-98); MMEB rows carry "<|image_1|>" verbatim.
  // qwen2_vl: the one-word prompts in Qwen2's chat format; the image is
  //   <|vision_start|><|image_pad|><|vision_end|>. VLM2Vec's MMEB rows replace "<|image_1|>" by a
  //   bare "<|image_pad|>" (V2 src/model_utils.py L34-40), kept here as the instruction placeholder.
  // Text-only decoders get the text as it is.
  // Qwen2-VL's stage-1 prompt, which its recipes' templates keep.
  static const std::string kQwenDistill =
      "<|im_start|>user\n{text}\nSummary above sentences in one word:<|im_end|>\n<|im_start|>assistant\n";
  static const std::map<std::string, PromptTemplate> t = {
      {"llava_next",
       {"llava_next",
        "<image>",
        "<image>",
        "[INST] {text}\nSummary above sentence in one word: [/INST]",
        "[INST] {image}\nSummary above image in one word: [/INST]",
        "[INST] {text}\nSummary above sentences in one word: [/INST]",
        {"<image>"}}},
      {"phi3_v",
       {"phi3_v",
        "<|image_{n}|>",
        "<|image_{n}|>",
        "<|user|>\n{text}\nSummary above sentence in one word:<|end|>\n<|assistant|>\n",
        "<|user|>\n{image}\nSummary above image in one word:<|end|>\n<|assistant|>\n",
        "<|user|>\n{text}\nSummary above sentences in one word:<|end|>\n<|assistant|>\n",
        {"<|image_"}}},
      {"qwen2_vl",
       {"qwen2_vl",
        "<|vision_start|><|image_pad|><|vision_end|>",
        "<|image_pad|>",
        "<|im_start|>user\n{text}\nSummary above sentence in one word:<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\n{image}\nSummary above image in one word:<|im_end|>\n<|im_start|>assistant\n",
        kQwenDistill,
        {"<|vision_start|>", "<|image_pad|>", "<|vision_end|>"}}},
      // gme: GME's one chat form (gme_inference.py L115-131, backbones.md C.6): the instruction
      //   as the system turn, the vision block before the text, and a trailing <|endoftext|>, the
      //   token GME pools. Its stage-1 prompt is Qwen2-VL's (GME has none).
      {"gme",
       {"qwen2_vl",
        "<|vision_start|><|image_pad|><|vision_end|>",
        "<|vision_start|><|image_pad|><|vision_end|>",
        "",
        "",
        kQwenDistill,
        {"<|vision_start|>", "<|image_pad|>", "<|vision_end|>"},
        "<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{image}{text}<|im_end|>\n"
        "<|im_start|>assistant\n<|endoftext|>",
        "You are a helpful assistant."}},
      // unime_v2: UniME-V2's inference (utils/utils.py prepare_stage_data): texts as they are, images
      //   with VLM2Vec's bare <|image_pad|> and a space; instructions take the MMEB form its
      //   training rows have.
      {"unime_v2",
       {"qwen2_vl",
        "<|image_pad|>",
        "<|image_pad|>",
        "{text}",
        "{image} Find an image caption describing the given image.",
        kQwenDistill,
        {"<|vision_start|>", "<|image_pad|>", "<|vision_end|>"}}},
      {"llama", {"llama", "", "", "{text}", "", "{text}", {}}},
      {"mistral", {"mistral", "", "", "{text}", "", "{text}", {}}},
      {"qwen2", {"qwen2", "", "", "{text}", "", "{text}", {}}},
      {"phi3", {"phi3", "", "", "{text}", "", "{text}", {}}},
  };
  return t;
}

// The first image's placeholder ("{n}" = 1: one image per input).
std::string numbered(const std::string& placeholder) { return replace_all(placeholder, "{n}", "1"); }

// `form` with each "{name}" slot of `values` replaced in one left-to-right pass, so a value that
// itself holds "{text}" stays literal.
std::string fill_slots(const std::string& form, const std::vector<std::pair<std::string, std::string>>& values) {
  std::string out;
  size_t at = 0;
  while (at < form.size()) {
    bool matched = false;
    for (const auto& [slot, value] : values)
      if (form.compare(at, slot.size(), slot) == 0) {
        out += value;
        at += slot.size();
        matched = true;
        break;
      }
    if (!matched) out += form[at++];
  }
  return out;
}

void check_reserved(const PromptTemplate& t, const std::optional<std::string>& text,
                    const std::optional<std::string>& instruction) {
  const std::pair<const char*, const std::optional<std::string>*> fields[] = {{"text", &text},
                                                                              {"instruction", &instruction}};
  for (const auto& [name, value] : fields) {
    if (!*value) continue;
    for (const auto& r : t.reserved)
      if ((*value)->find(r) != std::string::npos)
        throw InvalidInputError(std::string(name) + " contains the image placeholder " + quote(r) +
                                ": pass images through images=, not inside the text");
  }
}

}  // namespace

const PromptTemplate& template_for(const std::string& model_type) {
  auto it = table().find(model_type);
  if (it == table().end())
    throw InvalidInputError("no prompt template for model_type " + quote(model_type) +
                            " (known: " + join(template_families(), ", ") + ")");
  return it->second;
}

std::vector<std::string> template_families() {
  std::vector<std::string> out;
  for (const auto& [name, _] : table()) out.push_back(name);
  return out;
}

std::string build_prompt(const PromptTemplate& t, const std::optional<std::string>& text, bool has_image,
                         const std::optional<std::string>& instruction, PromptKind kind) {
  if (!text && !has_image) throw InvalidInputError("an input needs a text, an image or both");
  if (has_image && t.image_placeholder.empty())
    throw InvalidInputError("model_type " + quote(t.family) + " is text-only but the input has an image");
  check_reserved(t, text, instruction);
  if (kind == PromptKind::kDistill) {
    if (has_image || instruction || !text)
      throw InvalidInputError("the stage-1 (distill) prompt takes a text alone, without image or instruction");
    return replace_all(t.distill, "{text}", *text);
  }
  if (!t.chat.empty())
    return fill_slots(t.chat, {{"{instruction}", instruction ? *instruction : t.default_instruction},
                               {"{image}", has_image ? numbered(t.image_placeholder) : ""},
                               {"{text}", text ? *text : ""}});
  if (!instruction && !(text && has_image)) {
    if (text) return replace_all(t.text, "{text}", *text);
    return replace_all(t.image, "{image}", numbered(t.image_placeholder));
  }
  // The MMEB form: "{image}\n" + instruction + " " + text + "\n".
  std::string out = has_image ? numbered(t.instruction_image) + "\n" : "";
  std::string body = instruction ? *instruction : "";
  if (text) body += (body.empty() ? "" : " ") + *text;
  return out + body + "\n";
}

std::string fill_template(const PromptTemplate& t, const std::string& custom, const std::optional<std::string>& text,
                          bool has_image) {
  auto count = [&](const std::string& key) {
    size_t n = 0;
    for (size_t at = custom.find(key); at != std::string::npos; at = custom.find(key, at + 1)) ++n;
    return n;
  };
  const size_t texts = count("{text}"), images = count("{image}");
  if (texts > 1 || images > 1)
    throw InvalidInputError("prompt template " + quote(custom) + " holds {text} or {image} more than once");
  if (text && texts == 0)
    throw InvalidInputError("prompt template " + quote(custom) + " has no {text} slot for the text");
  if (!text && texts == 1)
    throw InvalidInputError("prompt template " + quote(custom) + " has a {text} slot but the input has no text");
  if (has_image != (images == 1))
    throw InvalidInputError(
        "prompt template " + quote(custom) +
        (has_image ? " has no {image} slot for the image" : " has an {image} slot but the input has no image"));
  if (has_image && t.image_placeholder.empty())
    throw InvalidInputError("model_type " + quote(t.family) + " is text-only but the input has an image");
  check_reserved(t, text, std::nullopt);
  // Image first: a text holding "{image}" must stay literal.
  std::string out = has_image ? replace_all(custom, "{image}", numbered(t.image_placeholder)) : custom;
  if (!text) return out;
  const auto at = out.find("{text}");
  return out.substr(0, at) + *text + out.substr(at + 6);
}

}  // namespace unime::core::prompt
