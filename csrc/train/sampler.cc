#include "train/sampler.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/errors.h"

namespace unime::train {

EpochSampler::EpochSampler(int64_t num_examples, int64_t batch_size, uint64_t seed, int64_t rank, int64_t world_size)
    : num_examples_(num_examples), batch_size_(batch_size), rank_(rank), world_size_(world_size), seed_(seed) {
  if (batch_size <= 0 || world_size <= 0 || batch_size % world_size != 0)
    throw InvalidInputError("the global batch size (" + std::to_string(batch_size) +
                            ") must be a positive multiple of the world size (" + std::to_string(world_size) + ")");
  if (num_examples < batch_size)
    throw InvalidInputError("the dataset has " + std::to_string(num_examples) + " examples, fewer than one batch of " +
                            std::to_string(batch_size));
  shuffle();
}

void EpochSampler::shuffle() {
  // A generator of its own (not the global one): the order depends on (seed, epoch) alone.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed_ * 1000003ULL + static_cast<uint64_t>(epoch_));
  auto perm = at::randperm(num_examples_, gen, at::TensorOptions().dtype(at::kLong));
  order_.assign(perm.data_ptr<int64_t>(), perm.data_ptr<int64_t>() + num_examples_);
}

std::vector<int64_t> EpochSampler::next() {
  if (batch_ >= batches_per_epoch()) {
    ++epoch_;
    batch_ = 0;
    shuffle();
  }
  return share_of(batch_++);
}

std::vector<int64_t> EpochSampler::peek() const {
  if (batch_ >= batches_per_epoch()) {  // the next epoch's order: shuffled on a copy
    EpochSampler ahead = *this;
    return ahead.next();
  }
  return share_of(batch_);
}

std::vector<int64_t> EpochSampler::share_of(int64_t batch) const {
  const int64_t share = batch_size_ / world_size_;
  const int64_t start = batch * batch_size_ + rank_ * share;
  return {order_.begin() + start, order_.begin() + start + share};
}

void EpochSampler::set_position(int64_t epoch, int64_t batch_in_epoch) {
  if (epoch < 0 || batch_in_epoch < 0 || batch_in_epoch > batches_per_epoch())
    throw InvalidInputError("sampler position (" + std::to_string(epoch) + ", " + std::to_string(batch_in_epoch) +
                            ") is outside the data");
  epoch_ = epoch;
  batch_ = batch_in_epoch;
  shuffle();
}

}  // namespace unime::train
