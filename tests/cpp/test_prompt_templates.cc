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
  EXPECT_EQ(build_prompt(t, std::nullopt, true, std::nullopt), "[INST] <image>\nSummary above image in one word: [/INST]");
}

TEST(PromptTemplates, MmebFormWithInstructionOrImageAndText) {
  const auto& t = template_for("llava_next");
  EXPECT_EQ(build_prompt(t, std::string("What is it?"), true,
                         std::string("Represent the given image with the following question:")),
            "<image>\nRepresent the given image with the following question: What is it?\n");
  EXPECT_EQ(build_prompt(t, std::nullopt, true, std::string("Represent the given image.")),
            "<image>\nRepresent the given image.\n");
  EXPECT_EQ(build_prompt(t, std::string("a red car"), false, std::string("Find me an everyday image that matches the given caption:")),
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

}  // namespace
