#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "model/decoder.h"
#include "model/decoder_backbone.h"
#include "model/backbone.h"
#include "model/checkpoint_loader.h"
#include "model/decoder_weight_map.h"
#include "model/weight_map.h"

namespace {

using unime::model::match_pattern;

unime::model::DecoderConfig tiny_config(bool bias) {
  unime::model::DecoderConfig c;
  c.model_type = "llama";
  c.vocab_size = 11;
  c.hidden_size = 8;
  c.intermediate_size = 12;
  c.num_hidden_layers = 12;  // two-digit layer numbers exercise {L}
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.q_bias = c.k_bias = c.v_bias = c.o_bias = bias;
  c.mlp_bias = bias;
  return c;
}

TEST(WeightMap, PatternMatching) {
  std::string layer;
  EXPECT_TRUE(match_pattern("layers.{L}.w", "layers.10.w", &layer));
  EXPECT_EQ(layer, "10");
  EXPECT_FALSE(match_pattern("layers.{L}.w", "layers..w", &layer));
  EXPECT_FALSE(match_pattern("layers.{L}.w", "layers.1a.w", &layer));
  EXPECT_FALSE(match_pattern("layers.{L}.w", "layers.01.w", &layer));  // one-to-one: no leading zeros
  EXPECT_FALSE(match_pattern("layers.{L}.w", "layers.1.w.x", &layer));
  EXPECT_TRUE(match_pattern("norm.weight", "norm.weight", nullptr));
  EXPECT_FALSE(match_pattern("norm.weight", "norm.weights", nullptr));
}

// Every parameter of the module maps to a distinct HF name, and that name maps back to it.
class WeightMapBothWays : public testing::TestWithParam<bool> {};

TEST_P(WeightMapBothWays, EveryParameterRoundTrips) {
  unime::model::DecoderBackbone backbone(tiny_config(GetParam()));
  const auto& map = backbone.weight_map();
  std::set<std::string> hf_names;
  for (const auto& item : backbone.named_parameters()) {
    auto hf = map.to_hf(item.key());
    ASSERT_TRUE(hf.has_value()) << item.key();
    EXPECT_EQ(hf->rfind("model.", 0), 0u) << *hf;
    auto back = map.to_module(*hf);
    ASSERT_TRUE(back.has_value()) << *hf;
    EXPECT_EQ(*back, item.key());
    EXPECT_TRUE(hf_names.insert(*hf).second) << "two parameters map to " << *hf;
  }
  // 2 norms + 4 attention + 3 MLP tensors per layer (plus biases), embeddings and the final norm.
  const size_t per_layer = GetParam() ? 2 + 8 + 6 : 2 + 4 + 3;
  EXPECT_EQ(hf_names.size(), 12 * per_layer + 2);
}

INSTANTIATE_TEST_SUITE_P(Bias, WeightMapBothWays, testing::Bool());

// Fused projections (Phi-3) keep the checkpoint's names; biases (Qwen2's q/k/v) pass through.
TEST(WeightMap, FusedAndBiasedLayoutsRoundTrip) {
  for (const char* type : {"phi3", "qwen2"}) {
    auto c = tiny_config(false);
    c.model_type = type;
    c.fused_qkv = c.fused_gate_up = std::string(type) == "phi3";
    c.q_bias = c.k_bias = c.v_bias = std::string(type) == "qwen2";
    unime::model::DecoderBackbone backbone(c);
    const auto& map = backbone.weight_map();
    size_t n = 0;
    for (const auto& item : backbone.named_parameters()) {
      auto hf = map.to_hf(item.key());
      ASSERT_TRUE(hf.has_value()) << item.key();
      EXPECT_EQ(map.to_module(*hf).value_or("<none>"), item.key());
      ++n;
    }
    if (std::string(type) == "phi3") {
      EXPECT_EQ(map.to_hf("decoder.layers.3.self_attn.qkv_proj.weight").value_or(""),
                "model.layers.3.self_attn.qkv_proj.weight");
      EXPECT_EQ(n, 12u * (2 + 2 + 2) + 2);  // norms, qkv + o, gate_up + down
    } else {
      EXPECT_EQ(map.to_hf("decoder.layers.0.self_attn.k_proj.bias").value_or(""),
                "model.layers.0.self_attn.k_proj.bias");
      EXPECT_EQ(n, 12u * (2 + 4 + 3 + 3) + 2);
    }
  }
}

// LoRA parameters carry PEFT's names: the prefix rule passes ".lora_A.weight" through both ways.
TEST(WeightMap, AdapterNamesRoundTrip) {
  unime::model::DecoderBackbone backbone(tiny_config(false));
  const auto& map = backbone.weight_map();
  EXPECT_EQ(map.to_hf("decoder.layers.10.self_attn.q_proj.lora_A.weight").value_or(""),
            "model.layers.10.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(map.to_module("model.layers.2.mlp.down_proj.lora_B.weight").value_or(""),
            "decoder.layers.2.mlp.down_proj.lora_B.weight");
  EXPECT_TRUE(unime::model::is_adapter_parameter("decoder.layers.2.mlp.down_proj.lora_B.weight"));
  EXPECT_FALSE(unime::model::is_adapter_parameter("decoder.layers.2.mlp.down_proj.weight"));
}

TEST(WeightMap, PrefixMatchingStopsAtDots) {
  std::string layer;
  EXPECT_EQ(unime::model::match_prefix("layers.{L}", "layers.12.mlp.w", &layer).value_or("<none>"), ".mlp.w");
  EXPECT_EQ(layer, "12");
  EXPECT_EQ(unime::model::match_prefix("norm", "norm", nullptr).value_or("<none>"), "");
  EXPECT_FALSE(unime::model::match_prefix("norm", "normal.weight", nullptr).has_value());
  EXPECT_FALSE(unime::model::match_prefix("layers.{L}", "layers.1x.w", nullptr).has_value());
  EXPECT_FALSE(unime::model::match_prefix("layers.{L}", "layers.01.w", nullptr).has_value());
}

TEST(WeightMap, UnknownAndIgnorableNames) {
  unime::model::DecoderBackbone backbone(tiny_config(false));
  const auto& map = backbone.weight_map();
  EXPECT_TRUE(map.is_ignorable("model.layers.3.self_attn.rotary_emb.inv_freq"));
  EXPECT_TRUE(map.is_ignorable("lm_head.weight"));
  EXPECT_FALSE(map.is_ignorable("model.extra.weight"));
  EXPECT_FALSE(map.to_module("layers.0.mlp.up_proj.weight").has_value());  // missing prefix
  EXPECT_FALSE(map.to_hf("layers.0.mlp.up_proj.weight").has_value());      // missing module prefix
}

// Every parameter of a two-layout backbone: each of its two HF names maps back to it, and the canonical
// names are distinct. Returns the canonical names.
std::set<std::string> canonical_names_of_every_parameter(const unime::model::Backbone& backbone) {
  const auto& map = backbone.weight_map();
  std::set<std::string> names;
  for (const auto& item : backbone.named_parameters()) {
    auto all = map.hf_candidates(item.key());
    EXPECT_EQ(all.size(), 2u) << item.key();
    for (const auto& hf : all) EXPECT_EQ(map.to_module(hf).value_or("<none>"), item.key()) << hf;
    EXPECT_TRUE(!all.empty() && names.insert(all.front()).second) << item.key();
  }
  return names;
}

// LLaVA-NeXT = decoder + CLIP + projector + newline: every parameter maps to a distinct HF name under
// both key layouts (transformers <= 4.51 and newer) and back; adapters on each part keep PEFT's names.
TEST(WeightMap, LlavaNextAndClipRoundTripInBothLayouts) {
  auto config = nlohmann::json::parse(R"({"model_type": "llava_next", "image_grid_pinpoints": [[28, 56]],
    "text_config": {"model_type": "mistral", "vocab_size": 50, "hidden_size": 8, "intermediate_size": 12,
      "num_hidden_layers": 11, "num_attention_heads": 2, "num_key_value_heads": 1},
    "vision_config": {"hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 12, "num_attention_heads": 2,
      "image_size": 28, "patch_size": 14}})");
  auto backbone = unime::model::create_backbone(config, "config.json");
  const auto& map = backbone->weight_map();
  const auto names = canonical_names_of_every_parameter(*backbone);
  EXPECT_EQ(map.to_hf("vision_tower.layers.10.self_attn.q_proj.weight").value_or(""),
            "vision_tower.vision_model.encoder.layers.10.self_attn.q_proj.weight");
  EXPECT_EQ(map.to_hf("vision_tower.patch_embedding").value_or(""),
            "vision_tower.vision_model.embeddings.patch_embedding.weight");
  EXPECT_EQ(map.to_hf("projector_1.lora_A.weight").value_or(""), "multi_modal_projector.linear_1.lora_A.weight");
  EXPECT_EQ(map.to_module("model.language_model.layers.3.self_attn.o_proj.lora_B.weight").value_or(""),
            "decoder.layers.3.self_attn.o_proj.lora_B.weight");
  EXPECT_EQ(map.to_module("model.image_newline").value_or(""), "image_newline");
  // Layer 11 of 12 is never run (vision_feature_layer -2): not built, so not a parameter.
  EXPECT_EQ(names.count("vision_tower.vision_model.encoder.layers.11.self_attn.q_proj.weight"), 0u);
  EXPECT_EQ(names.count("vision_tower.vision_model.encoder.layers.10.self_attn.q_proj.weight"), 1u);
}

// Qwen2-VL = decoder + vision transformer: every parameter maps to a distinct HF name under both
// layouts (model.* + visual.* of transformers <= 4.51, model.language_model.* + model.visual.* after).
TEST(WeightMap, Qwen2VLRoundTripsInBothLayouts) {
  auto config = nlohmann::json::parse(R"({"model_type": "qwen2_vl", "vocab_size": 50, "hidden_size": 16,
    "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
    "rope_scaling": {"type": "mrope", "mrope_section": [1, 1, 2]},
    "vision_config": {"depth": 11, "embed_dim": 8, "num_heads": 2, "mlp_ratio": 2, "hidden_size": 16}})");
  auto backbone = unime::model::create_backbone(config, "config.json");
  const auto& map = backbone->weight_map();
  const auto names = canonical_names_of_every_parameter(*backbone);
  EXPECT_EQ(names.count("visual.patch_embed.proj.weight"), 1u);
  EXPECT_EQ(names.count("visual.blocks.10.attn.qkv.bias"), 1u);
  EXPECT_EQ(names.count("visual.merger.mlp.2.weight"), 1u);
  EXPECT_EQ(names.count("model.layers.1.self_attn.q_proj.bias"), 1u);
  EXPECT_EQ(map.to_module("model.visual.blocks.3.mlp.fc1.lora_A.weight").value_or(""),
            "visual.blocks.3.mlp.fc1.lora_A.weight");
  EXPECT_EQ(map.to_module("model.language_model.layers.1.mlp.up_proj.weight").value_or(""),
            "decoder.layers.1.mlp.up_proj.weight");
  EXPECT_TRUE(map.is_ignorable("lm_head.weight"));
}

TEST(WeightMap, TableRulesRoundTripWithPrefixes) {
  auto map = unime::model::decoder_weight_map().with_prefixes("language_model.model.", "lm.", {});
  for (const auto& rule : map.rules()) {
    std::string hf = "language_model.model." + rule.hf, module = "lm." + rule.module;
    for (const char* l : {"0", "7", "31"}) {
      auto h = hf, m = module;
      if (auto at = h.find("{L}"); at != std::string::npos) h.replace(at, 3, l);
      if (auto at = m.find("{L}"); at != std::string::npos) m.replace(at, 3, l);
      EXPECT_EQ(map.to_module(h).value_or("<none>"), m);
      EXPECT_EQ(map.to_hf(m).value_or("<none>"), h);
    }
  }
}

}  // namespace
