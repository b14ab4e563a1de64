#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "train/sampler.h"

namespace {

using unime::train::EpochSampler;

// peek() is what next() gives next, across an epoch boundary too, and leaves the position alone:
// the trainer prepares the following step's batch from it while a step runs.
TEST(EpochSampler, PeekIsTheNextBatchAndMovesNothing) {
  EpochSampler sampler(10, 4, /*seed=*/7, /*rank=*/1, /*world_size=*/2);  // 2 batches per epoch
  for (int step = 0; step < 7; ++step) {
    const auto ahead = sampler.peek();
    EXPECT_EQ(sampler.peek(), ahead);
    const int64_t epoch = sampler.epoch(), batch = sampler.batch_in_epoch();
    EXPECT_EQ(sampler.next(), ahead) << "step " << step;
    EXPECT_EQ(ahead.size(), 2u);
    if (batch < sampler.batches_per_epoch()) {
      EXPECT_EQ(sampler.epoch(), epoch);
      EXPECT_EQ(sampler.batch_in_epoch(), batch + 1);
    } else {
      EXPECT_EQ(sampler.epoch(), epoch + 1);
      EXPECT_EQ(sampler.batch_in_epoch(), 1);
    }
  }
}

TEST(EpochSampler, EpochsAreDifferentPermutations) {
  EpochSampler sampler(8, 8, 3);
  const auto first = sampler.next();
  const auto second = sampler.peek();
  EXPECT_EQ(std::set<int64_t>(first.begin(), first.end()), std::set<int64_t>(second.begin(), second.end()));
  EXPECT_NE(first, second);
  EXPECT_EQ(sampler.epoch(), 0);
}

}  // namespace
