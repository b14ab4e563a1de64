#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "model/backbone.h"
#include "model/config.h"

namespace {

using unime::model::DecoderConfig;

nlohmann::json mistral() {
  return nlohmann::json::parse(R"({"model_type": "mistral", "vocab_size": 100, "hidden_size": 64,
    "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5, "rope_theta": 1000000.0, "sliding_window": 4096, "torch_dtype": "bfloat16"})");
}

TEST(DecoderConfig, ReadsMistral) {
  auto c = DecoderConfig::from_json(mistral(), "config.json");
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);
  ASSERT_TRUE(c.sliding_window.has_value());
  EXPECT_EQ(*c.sliding_window, 4096);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
}

TEST(DecoderConfig, Defaults) {
  auto j = mistral();
  j["model_type"] = "llama";
  j.erase("num_key_value_heads");
  j["sliding_window"] = nullptr;
  auto c = DecoderConfig::from_json(j, "config.json");
  EXPECT_EQ(c.num_key_value_heads, 4);  // Llama: derived from num_attention_heads
  EXPECT_FALSE(c.sliding_window.has_value());
  j = mistral();
  j.erase("num_key_value_heads");
  // Mistral's default is 8 key/value heads, which 4 query heads cannot share: refused, not guessed.
  EXPECT_THROW(DecoderConfig::from_json(j, "config.json"), unime::InvalidInputError);
}

nlohmann::json phi3_longrope() {
  auto j = mistral();
  j["model_type"] = "phi3";
  j["max_position_embeddings"] = 131072;
  j["original_max_position_embeddings"] = 4096;
  j["rope_scaling"] = {
      {"type", "su"}, {"short_factor", std::vector<double>(8, 1.5)}, {"long_factor", std::vector<double>(8, 3.0)}};
  return j;
}

TEST(DecoderConfig, ReadsPhi3LongRope) {
  auto c = DecoderConfig::from_json(phi3_longrope(), "config.json");
  EXPECT_EQ(c.rope.type, "longrope");  // "su" is LongRoPE's first name
  EXPECT_EQ(c.rope.short_factor, std::vector<double>(8, 1.5));
  EXPECT_EQ(c.rope.long_factor, std::vector<double>(8, 3.0));
  EXPECT_EQ(c.rope.original_max_position_embeddings, 4096);
  // Phi-3.5's sqrt(1 + ln(131072 / 4096) / ln(4096)) = sqrt(17 / 12) (backbones.md B.3).
  EXPECT_DOUBLE_EQ(c.rope.attention_factor, std::sqrt(1.0 + std::log(32.0) / std::log(4096.0)));
  EXPECT_NEAR(c.rope.attention_factor, std::sqrt(17.0 / 12.0), 1e-12);
  auto j = phi3_longrope();
  j["rope_scaling"]["attention_factor"] = 1.25;
  EXPECT_DOUBLE_EQ(DecoderConfig::from_json(j, "config.json").rope.attention_factor, 1.25);
  j = phi3_longrope();
  j["max_position_embeddings"] = 4096;  // factor 1: no magnitude scaling
  EXPECT_DOUBLE_EQ(DecoderConfig::from_json(j, "config.json").rope.attention_factor, 1.0);
}

TEST(DecoderConfig, Rejections) {
  auto expect_invalid = [](nlohmann::json j, const char* needle) {
    try {
      DecoderConfig::from_json(j, "cfg.json");
      ADD_FAILURE() << "accepted " << j.dump();
    } catch (const unime::InvalidInputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto j = mistral();
  j["num_key_value_heads"] = 3;
  expect_invalid(j, "multiple of num_key_value_heads");
  j = mistral();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_invalid(j, "rope_scaling");
  j = phi3_longrope();
  j["rope_scaling"]["long_factor"] = std::vector<double>(7, 3.0);
  expect_invalid(j, "long_factor has 7 values; LongRoPE needs head_dim / 2 = 8");
  j = phi3_longrope();
  j["rope_scaling"].erase("short_factor");
  expect_invalid(j, "short_factor must be a list");
  j = phi3_longrope();
  j["rope_scaling"]["type"] = "yarn";
  expect_invalid(j, "ambiguous");
  j = phi3_longrope();
  j["model_type"] = "llama";
  expect_invalid(j, "supported for phi3 only");
  j = mistral();
  j["hidden_act"] = "gelu";
  expect_invalid(j, "hidden_act");
  j = mistral();
  j["hidden_size"] = 0;
  expect_invalid(j, "positive");
  j = mistral();
  j["num_hidden_layers"] = "2";
  expect_invalid(j, "num_hidden_layers");
  j = mistral();
  j.erase("model_type");
  EXPECT_THROW(DecoderConfig::from_json(j, "cfg.json"), unime::MissingKeyError);
}

// Omitted keys take the defaults of the model type's transformers config class (4.48.3), and
// derived ones (head_dim, Llama's num_key_value_heads) are derived from what is there.
TEST(DecoderConfig, OmittedKeysTakeTheModelTypesDefaults) {
  auto m = DecoderConfig::from_json(nlohmann::json{{"model_type", "mistral"}}, "cfg.json");
  EXPECT_EQ(m.vocab_size, 32000);
  EXPECT_EQ(m.intermediate_size, 14336);
  EXPECT_EQ(m.num_key_value_heads, 8);
  EXPECT_EQ(m.head_dim, 128);
  ASSERT_TRUE(m.sliding_window.has_value());
  EXPECT_EQ(*m.sliding_window, 4096);
  auto l = DecoderConfig::from_json(
      nlohmann::json{{"model_type", "llama"}, {"hidden_size", 64}, {"num_attention_heads", 4}}, "cfg.json");
  EXPECT_EQ(l.intermediate_size, 11008);
  EXPECT_EQ(l.num_key_value_heads, 4);  // derived: equals num_attention_heads
  EXPECT_EQ(l.head_dim, 16);            // derived: hidden_size / num_attention_heads
  EXPECT_FALSE(l.sliding_window.has_value());
  auto explicit_null =
      DecoderConfig::from_json(nlohmann::json{{"model_type", "mistral"}, {"sliding_window", nullptr}}, "cfg.json");
  EXPECT_FALSE(explicit_null.sliding_window.has_value());  // null means off, not "use the default"
}

// Each family's layout comes from its config, not from special cases in the decoder.
TEST(DecoderConfig, FamilyLayouts) {
  auto qwen = DecoderConfig::from_json(
      nlohmann::json{
          {"model_type", "qwen2"}, {"hidden_size", 64}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}},
      "cfg.json");
  EXPECT_TRUE(qwen.q_bias && qwen.k_bias && qwen.v_bias);
  EXPECT_FALSE(qwen.o_bias || qwen.mlp_bias || qwen.fused_qkv);
  EXPECT_FALSE(qwen.sliding_window.has_value());  // use_sliding_window defaults to false
  EXPECT_EQ(qwen.max_position_embeddings, 32768);
  auto phi = DecoderConfig::from_json(
      nlohmann::json{{"model_type", "phi3"}, {"hidden_size", 64}, {"num_attention_heads", 4}, {"sliding_window", 2047}},
      "cfg.json");
  EXPECT_TRUE(phi.fused_qkv && phi.fused_gate_up);
  EXPECT_FALSE(phi.q_bias || phi.o_bias);
  EXPECT_EQ(phi.sliding_window.value_or(0), 2047);
  ASSERT_TRUE(phi.pad_token_id.has_value());
  EXPECT_EQ(*phi.pad_token_id, 32000);
  auto llama = DecoderConfig::from_json(nlohmann::json{{"model_type", "llama"}, {"attention_bias", true}}, "cfg.json");
  EXPECT_TRUE(llama.q_bias && llama.k_bias && llama.v_bias && llama.o_bias);
  EXPECT_THROW(
      DecoderConfig::from_json(nlohmann::json{{"model_type", "qwen2"}, {"use_sliding_window", true}}, "cfg.json"),
      unime::InvalidInputError);
}

TEST(Registry, UnknownModelTypeListsSupported) {
  auto j = mistral();
  j["model_type"] = "bert";
  try {
    unime::model::create_backbone(j, "cfg.json");
    FAIL();
  } catch (const unime::InvalidInputError& e) {
    EXPECT_NE(std::string(e.what()).find("'bert'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("mistral"), std::string::npos);
  }
}

}  // namespace
