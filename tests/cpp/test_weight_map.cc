#include <gtest/gtest.h>

#include <set>

#include "model/decoder.h"
#include "model/decoder_backbone.h"
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
  c.attention_bias = bias;
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

TEST(WeightMap, UnknownAndIgnorableNames) {
  unime::model::DecoderBackbone backbone(tiny_config(false));
  const auto& map = backbone.weight_map();
  EXPECT_FALSE(map.to_module("model.layers.0.self_attn.rotary_emb.inv_freq").has_value());
  EXPECT_TRUE(map.is_ignorable("model.layers.3.self_attn.rotary_emb.inv_freq"));
  EXPECT_TRUE(map.is_ignorable("lm_head.weight"));
  EXPECT_FALSE(map.is_ignorable("model.extra.weight"));
  EXPECT_FALSE(map.to_module("layers.0.mlp.up_proj.weight").has_value());  // missing prefix
  EXPECT_FALSE(map.to_hf("layers.0.mlp.up_proj.weight").has_value());      // missing module prefix
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
