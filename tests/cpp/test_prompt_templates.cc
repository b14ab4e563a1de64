#include <gtest/gtest.h>

#include "core/errors.h"
#include "core/prompt/prompt_templates.h"

namespace {

using unime::core::prompt::build_prompt;
using unime::core::prompt::template_for;

TEST(PromptTemplates, UniMEZeroShotPromptsForLlavaNext) {
  const auto& t = template_for("llava_next");
  EXPECT_EQ(build_prompt(t, std::string("A dog."), false, std::nullopt),
            "[INST] A dog.\nSummary above sentence in one word: [/INST]");
  EXPECT_EQ(build_prompt(t, std::nullopt, true, std::nullopt),
            "[INST] <image>\nSummary above image in one word: [/INST]");
}

TEST(PromptTemplates, MmebFormWithInstructionOrImageAndText) {
  const auto& t = template_for("llava_next");
  EXPECT_EQ(build_prompt(t, std::string("What is it?"), true,
                         std::string("Represent the given image with the following question:")),
            "<image>\nRepresent the given image with the following question: What is it?\n");
  EXPECT_EQ(build_prompt(t, std::nullopt, true, std::string("Represent the given image.")),
            "<image>\nRepresent the given image.\n");
  EXPECT_EQ(build_prompt(t, std::string("a red car"), false,
                         std::string("Find me an everyday image that matches the given caption:")),
            "Find me an everyday image that matches the given caption: a red car\n");
  EXPECT_EQ(build_prompt(t, std::string("a red car"), true, std::nullopt), "<image>\na red car\n");
}

TEST(PromptTemplates, Errors) {
  const auto& t = template_for("llava_next");
  EXPECT_THROW(build_prompt(t, std::nullopt, false, std::nullopt), unime::InvalidInputError);
  EXPECT_THROW(build_prompt(t, std::string("look: <image>"), true, std::nullopt), unime::InvalidInputError);
  EXPECT_THROW(build_prompt(template_for("mistral"), std::nullopt, true, std::nullopt), unime::InvalidInputError);
  EXPECT_THROW(template_for("bert"), unime::InvalidInputError);
  EXPECT_EQ(build_prompt(template_for("mistral"), std::string("plain"), false, std::nullopt), "plain");
}

TEST(PromptTemplates, NumberedAndVisionTokenPlaceholders) {
  const auto& phi = template_for("phi3_v");
  EXPECT_EQ(build_prompt(phi, std::nullopt, true, std::nullopt),
            "<|user|>\n<|image_1|>\nSummary above image in one word:<|end|>\n<|assistant|>\n");
  EXPECT_EQ(build_prompt(phi, std::nullopt, true, std::string("Represent the given image for classification")),
            "<|image_1|>\nRepresent the given image for classification\n");
  EXPECT_THROW(build_prompt(phi, std::string("see <|image_2|>"), false, std::nullopt), unime::InvalidInputError);
  const auto& qwen = template_for("qwen2_vl");
  EXPECT_EQ(build_prompt(qwen, std::nullopt, true, std::nullopt),
            "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>\nSummary above image in one word:"
            "<|im_end|>\n<|im_start|>assistant\n");
  // VLM2Vec's MMEB rows carry a bare <|image_pad|> for Qwen2-VL.
  EXPECT_EQ(build_prompt(qwen, std::nullopt, true, std::string("Represent the given image.")),
            "<|image_pad|>\nRepresent the given image.\n");
  EXPECT_THROW(build_prompt(qwen, std::string("a <|vision_start|>"), false, std::nullopt), unime::InvalidInputError);
}

TEST(PromptTemplates, GmeChatFormForEveryInput) {
  const auto& gme = template_for("gme");
  const std::string head = "<|im_start|>system\n", user = "<|im_end|>\n<|im_start|>user\n",
                    tail = "<|im_end|>\n<|im_start|>assistant\n<|endoftext|>",
                    vision = "<|vision_start|><|image_pad|><|vision_end|>";
  EXPECT_EQ(build_prompt(gme, std::string("a cat"), false, std::nullopt),
            head + "You are a helpful assistant." + user + "a cat" + tail);
  EXPECT_EQ(build_prompt(gme, std::nullopt, true, std::nullopt),
            head + "You are a helpful assistant." + user + vision + tail);
  EXPECT_EQ(build_prompt(gme, std::string("what?"), true, std::string("Answer.")),
            head + "Answer." + user + vision + "what?" + tail);
  // A text holding a slot's name stays literal.
  EXPECT_EQ(build_prompt(gme, std::string("{instruction} {image}"), false, std::string("{text}")),
            head + "{text}" + user + "{instruction} {image}" + tail);
  EXPECT_THROW(build_prompt(gme, std::string("a <|image_pad|>"), false, std::nullopt), unime::InvalidInputError);
}

TEST(PromptTemplates, UniMEV2PlainTextsAndItsImagePrompt) {
  const auto& v2 = template_for("unime_v2");
  EXPECT_EQ(build_prompt(v2, std::string("a red car"), false, std::nullopt), "a red car");
  EXPECT_EQ(build_prompt(v2, std::nullopt, true, std::nullopt),
            "<|image_pad|> Find an image caption describing the given image.");
  EXPECT_EQ(build_prompt(v2, std::nullopt, true, std::string("Represent the given image.")),
            "<|image_pad|>\nRepresent the given image.\n");
}

TEST(PromptTemplates, DistillPromptAndCustomTemplates) {
  using unime::core::prompt::fill_template;
  using unime::core::prompt::PromptKind;
  const auto& t = template_for("llava_next");
  EXPECT_EQ(build_prompt(t, std::string("A man sleeps."), false, std::nullopt, PromptKind::kDistill),
            "[INST] A man sleeps.\nSummary above sentences in one word: [/INST]");
  EXPECT_THROW(build_prompt(t, std::string("x"), true, std::nullopt, PromptKind::kDistill), unime::InvalidInputError);
  EXPECT_EQ(fill_template(t, "{text} Summary above sentences in one word: \n", std::string("A {image} cat."), false),
            "A {image} cat. Summary above sentences in one word: \n");  // the text stays literal
  EXPECT_EQ(fill_template(t, "{image} {text}", std::string("x"), true), "<image> x");
  EXPECT_THROW(fill_template(t, "no slot", std::string("x"), false), unime::InvalidInputError);
  EXPECT_THROW(fill_template(t, "{text} {text}", std::string("x"), false), unime::InvalidInputError);
  EXPECT_THROW(fill_template(t, "{text}", std::string("x"), true), unime::InvalidInputError);
  EXPECT_THROW(fill_template(template_for("mistral"), "{image}", std::nullopt, true), unime::InvalidInputError);
}

}  // namespace
