// The order examples are seen in: a seeded permutation per epoch, cut into global batches, each
// rank taking its contiguous share. Deterministic from (seed, epoch), so a resumed run continues
// with exactly the batches the interrupted one would have had; its position checkpoints as two
// integers.
#pragma once

#include <cstdint>
#include <vector>

namespace unime::train {

class EpochSampler {
 public:
  // num_examples examples, global batches of batch_size (the last partial batch of an epoch is
  // dropped), shared by world_size ranks (batch_size must divide by world_size).
  EpochSampler(int64_t num_examples, int64_t batch_size, uint64_t seed, int64_t rank = 0, int64_t world_size = 1);

  // This rank's example indices of the next global batch; moves the position on (to the next epoch
  // when this one is exhausted).
  std::vector<int64_t> next();
  // What next() will return, without moving the position (for preparing a batch ahead).
  std::vector<int64_t> peek() const;
  int64_t epoch() const { return epoch_; }
  int64_t batch_in_epoch() const { return batch_; }
  int64_t batches_per_epoch() const { return num_examples_ / batch_size_; }
  void set_position(int64_t epoch, int64_t batch_in_epoch);

 private:
  void shuffle();
  std::vector<int64_t> share_of(int64_t batch) const;  // this rank's indices of batch `batch` of the epoch
  int64_t num_examples_, batch_size_, rank_, world_size_;
  uint64_t seed_;
  int64_t epoch_ = 0, batch_ = 0;
  std::vector<int64_t> order_;
};

}  // namespace unime::train
