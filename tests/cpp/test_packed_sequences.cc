// The packed layout (model/packed_attention.h) read from attention masks and lengths: every index
// array that attention, rotary positions and pooling use, built in one host buffer.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <vector>

#include "core/errors.h"
#include "model/packed_attention.h"

namespace {

std::vector<int64_t> values(const at::Tensor& t) {
  auto c = t.to(at::kLong).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

TEST(PackedSequences, FromAMaskWithLeftRightAndNoPadding) {
  // Row 0 left padded by 2, row 1 right padded by 1, row 2 full, row 3 a single token.
  auto mask = at::tensor({0, 0, 1, 1, 1,  //
                          1, 1, 1, 1, 0,  //
                          1, 1, 1, 1, 1,  //
                          0, 0, 0, 0, 1},
                         at::kLong)
                  .view({4, 5});
  const auto p = unime::model::pack_sequences(mask, at::kCPU);
  EXPECT_EQ(p.batch(), 4);
  EXPECT_EQ(p.offsets, (std::vector<int64_t>{0, 3, 7, 12, 13}));
  EXPECT_EQ(p.max_len, 5);
  EXPECT_EQ(values(p.positions), (std::vector<int64_t>{0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4, 0}));
  EXPECT_EQ(values(p.token_index), (std::vector<int64_t>{2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 19}));
  EXPECT_EQ(values(p.last_index), (std::vector<int64_t>{2, 6, 11, 12}));
  EXPECT_EQ(p.cu_seqlens.scalar_type(), at::kInt);
  EXPECT_EQ(values(p.cu_seqlens), p.offsets);
  for (const auto* t : {&p.positions, &p.token_index, &p.last_index, &p.cu_seqlens}) EXPECT_TRUE(t->is_contiguous());
}

TEST(PackedSequences, FromLengthsTheTokensAreTheirOwnIndex) {
  const auto p = unime::model::pack_lengths({2, 1, 3}, at::kCPU);
  EXPECT_EQ(p.offsets, (std::vector<int64_t>{0, 2, 3, 6}));
  EXPECT_EQ(values(p.positions), (std::vector<int64_t>{0, 1, 0, 0, 1, 2}));
  EXPECT_EQ(values(p.token_index), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(values(p.last_index), (std::vector<int64_t>{1, 2, 5}));
  EXPECT_EQ(p.max_len, 3);
}

TEST(PackedSequences, EmptyBatchAndBadInputs) {
  const auto empty = unime::model::pack_lengths({}, at::kCPU);
  EXPECT_EQ(empty.batch(), 0);
  EXPECT_EQ(empty.positions.numel(), 0);
  EXPECT_EQ(values(empty.cu_seqlens), (std::vector<int64_t>{0}));
  EXPECT_THROW(unime::model::pack_lengths({3, 0}, at::kCPU), c10::ValueError);
  auto hole = at::tensor({1, 0, 1}, at::kLong).view({1, 3});
  EXPECT_THROW(unime::model::pack_sequences(hole, at::kCPU), unime::InvalidInputError);
  auto none = at::zeros({2, 3}, at::kLong);
  EXPECT_THROW(unime::model::pack_sequences(none, at::kCPU), unime::InvalidInputError);
}

}  // namespace
