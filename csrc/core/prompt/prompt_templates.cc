#include "core/prompt/prompt_templates.h"

#include <map>

#include "core/errors.h"

namespace unime::core::prompt {
namespace {

const std::map<std::string, PromptTemplate>& table() {
  // UniME's evaluation prompts (self_evaluate/retrieval_self.py); LLaVA-NeXT's "[INST]" wrapping
  // is plain text to its tokenizer. Text-only decoders get the text as it is.
  static const std::map<std::string, PromptTemplate> t = {
      {"llava_next",
       {"llava_next", "<image>", "[INST] {text}\nSummary above sentence in one word: [/INST]",
        "[INST] {image}\nSummary above image in one word: [/INST]"}},
      {"llama", {"llama", "", "{text}", ""}},
      {"mistral", {"mistral", "", "{text}", ""}},
  };
  return t;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

}  // namespace

const PromptTemplate& template_for(const std::string& model_type) {
  auto it = table().find(model_type);
  if (it == table().end()) {
    std::string known;
    for (const auto& f : template_families()) known += (known.empty() ? "" : ", ") + f;
    throw InvalidInputError("no prompt template for model_type '" + model_type + "' (known: " + known + ")");
  }
  return it->second;
}

std::vector<std::string> template_families() {
  std::vector<std::string> out;
  for (const auto& [name, _] : table()) out.push_back(name);
  return out;
}

std::string build_prompt(const PromptTemplate& t, const std::optional<std::string>& text, bool has_image,
                         const std::optional<std::string>& instruction) {
  if (!text && !has_image) throw InvalidInputError("an input needs a text, an image or both");
  if (has_image && t.image_placeholder.empty())
    throw InvalidInputError("model_type '" + t.family + "' is text-only but the input has an image");
  if (!t.image_placeholder.empty()) {
    for (const auto* s : {text ? &*text : nullptr, instruction ? &*instruction : nullptr})
      if (s && s->find(t.image_placeholder) != std::string::npos)
        throw InvalidInputError("text or instruction contains the image placeholder '" + t.image_placeholder +
                                "': pass images through images=, not inside the text");
  }
  if (!instruction && !(text && has_image)) {
    if (text) return replace_all(t.text, "{text}", *text);
    return replace_all(t.image, "{image}", t.image_placeholder);
  }
  // The MMEB form: "{image}\n" + instruction + " " + text + "\n".
  std::string out = has_image ? t.image_placeholder + "\n" : "";
  std::string body = instruction ? *instruction : "";
  if (text) body += (body.empty() ? "" : " ") + *text;
  return out + body + "\n";
}

}  // namespace unime::core::prompt
