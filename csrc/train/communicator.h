// What the trainer needs from the processes it trains with: rank, world size, and three collectives.
// One process is LocalCommunicator; torch.distributed's process group (NCCL or gloo) implements the
// same interface (distributed.h), so the trainer runs unchanged on 1 CPU, 8 GPUs or several machines.
#pragma once

#include <ATen/core/Tensor.h>
#include <memory>
#include <vector>

namespace unime::train {

// A collective in flight; wait() returns when it is done (its result is in the tensors it was given).
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t world_size() const = 0;
  // Every rank's `local` (same shape on every rank) concatenated along dim 0 in rank order. No
  // gradient: callers put their own slice back (gather_with_grad).
  virtual at::Tensor all_gather(const at::Tensor& local) = 0;
  // In place: each tensor becomes the sum over ranks.
  virtual void all_reduce_sum(std::vector<at::Tensor>& tensors) = 0;
  // all_reduce_sum of one tensor, started now and finished by wait() (for overlapping the
  // gradient reduction with the backward pass). The default runs it at once.
  virtual std::unique_ptr<PendingCollective> all_reduce_sum_async(at::Tensor tensor);
  // In place: each tensor becomes rank 0's.
  virtual void broadcast(std::vector<at::Tensor>& tensors) = 0;
  virtual void barrier() = 0;
};

class LocalCommunicator : public Communicator {
 public:
  int64_t rank() const override { return 0; }
  int64_t world_size() const override { return 1; }
  at::Tensor all_gather(const at::Tensor& local) override { return local; }
  void all_reduce_sum(std::vector<at::Tensor>&) override {}
  void broadcast(std::vector<at::Tensor>&) override {}
  void barrier() override {}
};

// The global (world * b, ...) tensor whose slice for this rank is `local` itself, so the result is
// differentiable w.r.t. the local shard (the released UniME code's missing line; VLM2Vec's fix).
at::Tensor gather_with_grad(Communicator& comm, const at::Tensor& local);

}  // namespace unime::train
