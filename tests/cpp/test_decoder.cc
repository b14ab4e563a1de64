// Decoder pieces against their definitions (HF parity of the whole model is tested from Python).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "core/errors.h"
#include "model/decoder.h"
#include "model/layers.h"
#include "model/rotary.h"
#include "model/pooling.h"
#include "ops/ops.h"

namespace {

TEST(AttentionMask, CausalPaddingAndWindow) {
  // Row 0 left padded by 2, row 1 right padded by 1.
  auto mask = at::tensor({0, 0, 1, 1, 1, 1, 1, 1, 1, 0}, at::kLong).view({2, 5});
  auto m = unime::model::build_attention_mask(mask, std::nullopt);
  ASSERT_EQ(m.sizes(), at::IntArrayRef({2, 1, 5, 5}));
  auto a = m.accessor<bool, 4>();
  EXPECT_TRUE(a[0][0][0][0]);   // a pad query sees itself only (no fully masked row)
  EXPECT_FALSE(a[0][0][2][1]);  // a real query never sees a pad key
  EXPECT_TRUE(a[0][0][4][2]);
  EXPECT_FALSE(a[0][0][2][3]);  // causal
  EXPECT_TRUE(a[1][0][3][0]);
  EXPECT_FALSE(a[1][0][3][4]);  // the right pad key is invisible
  auto window = unime::model::build_attention_mask(at::ones({1, 5}, at::kLong), 2);
  auto w = window.accessor<bool, 4>();
  EXPECT_TRUE(w[0][0][4][3]);
  EXPECT_FALSE(w[0][0][4][2]);  // i - j = 2 is outside a window of 2
}

TEST(Pooling, LastRealToken) {
  auto mask = at::tensor({0, 1, 1, 1, 1, 0, 1, 0, 0}, at::kLong).view({3, 3});
  auto idx = unime::model::last_token_indices(mask);
  EXPECT_EQ(idx[0].item<int64_t>(), 2);
  EXPECT_EQ(idx[1].item<int64_t>(), 1);
  EXPECT_EQ(idx[2].item<int64_t>(), 0);
  auto hidden = at::arange(3 * 3 * 2, at::kFloat).view({3, 3, 2});
  auto pooled = unime::model::last_token_pool(hidden, mask, /*normalize=*/true);
  EXPECT_TRUE(at::allclose(pooled.norm(2, -1), at::ones({3})));
  EXPECT_TRUE(at::allclose(unime::model::last_token_pool(hidden, mask, false)[1], hidden[1][1]));
}

TEST(Pooling, EmptyRowIsNamed) {
  auto mask = at::tensor({1, 1, 0, 0}, at::kLong).view({2, 2});
  try {
    unime::model::last_token_indices(mask);
    FAIL();
  } catch (const unime::InvalidInputError& e) {
    EXPECT_NE(std::string(e.what()).find("row 1"), std::string::npos);
  }
}

TEST(RmsNormOp, MatchesReferenceAndChecksArguments) {
  auto x = at::randn({3, 7, 33});
  auto w = at::randn({33});
  EXPECT_TRUE(at::allclose(unime::ops::rms_norm(x, w, 1e-5), unime::ops::rms_norm_reference(x, w, 1e-5)));
  EXPECT_THROW(unime::ops::rms_norm(x, at::randn({32}), 1e-5), c10::ValueError);
  EXPECT_THROW(unime::ops::rms_norm(x, w.to(at::kDouble), 1e-5), c10::ValueError);
}

TEST(Rotary, PairsDimensionIWithIPlusHalf) {
  unime::model::DefaultRotaryEmbedding rope(8, 10000.0);
  auto t = rope.tables(at::arange(5, at::kLong), at::kFloat);
  ASSERT_EQ(t.cos.sizes(), at::IntArrayRef({5, 8}));
  EXPECT_TRUE(at::equal(t.cos.narrow(1, 0, 4), t.cos.narrow(1, 4, 4)));
  EXPECT_TRUE(at::allclose(t.cos[0], at::ones({8})));
  // Position 1, pair 0 rotates by exactly 1 radian.
  EXPECT_NEAR(t.sin[1][0].item<float>(), std::sin(1.0), 1e-6);
}

TEST(Rotary, TablesFollowAnyPositionsShape) {
  unime::model::DefaultRotaryEmbedding rope(6, 1e6);
  auto positions = at::tensor({3, 0, 7, 3}, at::kLong).view({2, 2});
  auto t = rope.tables(positions, at::kFloat);
  ASSERT_EQ(t.cos.sizes(), at::IntArrayRef({2, 2, 6}));
  auto flat = rope.tables(at::arange(8, at::kLong), at::kFloat);
  EXPECT_TRUE(at::equal(t.cos[0][0], flat.cos[3]));  // one product per entry: bit-identical
  EXPECT_TRUE(at::equal(t.sin[1][0], flat.sin[7]));
  unime::model::RotaryConfig yarn;
  yarn.type = "yarn";
  EXPECT_THROW(unime::model::make_rotary_embedding(yarn, 6), unime::InvalidInputError);
}

TEST(Rotary, LongRopeSwitchesFactorsPastTheOriginalLengthAndScalesBoth) {
  unime::model::RotaryConfig c;
  c.type = "longrope";
  c.short_factor = {1.0, 2.0};
  c.long_factor = {4.0, 8.0};
  c.original_max_position_embeddings = 6;
  c.attention_factor = 1.5;
  auto rope = unime::model::make_rotary_embedding(c, 4);
  unime::model::DefaultRotaryEmbedding plain(4, c.theta);
  // Longest position + 1 = 6: short factors; pair 0's factor is 1, so its angle is the default one.
  auto short_t = rope->tables(at::arange(6, at::kLong), at::kFloat);
  auto p = plain.tables(at::arange(6, at::kLong), at::kFloat);
  EXPECT_TRUE(at::allclose(short_t.cos.select(1, 0), p.cos.select(1, 0) * 1.5));
  EXPECT_TRUE(at::allclose(short_t.sin.select(1, 0), p.sin.select(1, 0) * 1.5));
  // Position 1, pair 1: 1 / (2 * 10000^(2/4)) radians.
  EXPECT_NEAR(short_t.sin[1][1].item<float>(), 1.5 * std::sin(1.0 / (2.0 * 100.0)), 1e-6);
  // Longest position + 1 = 7: the long factors for every position of the call, position 1 included.
  auto long_t = rope->tables(at::arange(7, at::kLong), at::kFloat);
  EXPECT_NEAR(long_t.sin[1][0].item<float>(), 1.5 * std::sin(1.0 / 4.0), 1e-6);
  EXPECT_NEAR(long_t.sin[1][1].item<float>(), 1.5 * std::sin(1.0 / (8.0 * 100.0)), 1e-6);
  c.long_factor = {4.0};
  EXPECT_THROW(unime::model::make_rotary_embedding(c, 4), unime::InvalidInputError);
}

TEST(Lora, ZeroBEqualsThePlainLayerAndMergeRoundTrips) {
  at::manual_seed(0);
  unime::model::Linear plain(7, 5, true), adapted(7, 5, true);
  auto w = at::randn({5, 7}), b = at::randn({5});
  for (auto* l : {&plain, &adapted}) l->weight.set_data(w.clone()), l->bias.set_data(b.clone());
  unime::model::LoraConfig config;
  config.rank = 3;
  config.alpha = 6;
  adapted.add_lora(config, at::kFloat);
  auto x = at::randn({4, 7});
  EXPECT_TRUE(at::equal(adapted.forward(x), plain.forward(x)));  // B = 0: exactly the plain layer
  adapted.lora_B->weight.data().normal_();
  auto unmerged = adapted.forward(x);
  EXPECT_FALSE(at::allclose(unmerged, plain.forward(x)));
  adapted.merge();
  EXPECT_TRUE(at::allclose(adapted.forward(x), unmerged, 0, 1e-5));
  adapted.unmerge();
  EXPECT_TRUE(at::allclose(adapted.weight, w, 0, 1e-6));
  EXPECT_EQ(adapted.named_parameters().size(), 4u);  // weight, bias, lora_A.weight, lora_B.weight
  EXPECT_TRUE(adapted.named_parameters().contains("lora_A.weight"));
  config.rank = 0;
  EXPECT_THROW(plain.add_lora(config, at::kFloat), unime::InvalidInputError);
}

}  // namespace
