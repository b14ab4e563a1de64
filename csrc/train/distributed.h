// The Communicator over a torch.distributed process group (c10d::ProcessGroup: NCCL on GPUs, gloo
// on CPUs), the one torchrun / init_process_group created in Python and passed in. No launcher or
// transport of our own.
//
// Failure: every collective waits at most `timeout`. When one fails (a peer's connection closed) or
// times out (a peer hung), the surviving ranks check in with rank 0 on `monitor` (a gloo group of
// its own, new_group(backend="gloo"), whose connections the failure has not broken), rank 0 names
// the ranks that do not answer within the timeout, and every rank throws; the job then ends instead
// of hanging.
#pragma once

#include <chrono>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include "train/communicator.h"

namespace unime::train {

class ProcessGroupCommunicator : public Communicator {
 public:
  ProcessGroupCommunicator(c10::intrusive_ptr<c10d::ProcessGroup> group, std::chrono::milliseconds timeout,
                           c10::intrusive_ptr<c10d::ProcessGroup> monitor = {});

  int64_t rank() const override { return group_->getRank(); }
  int64_t world_size() const override { return group_->getSize(); }
  at::Tensor all_gather(const at::Tensor& local) override;
  void all_reduce_sum(std::vector<at::Tensor>& tensors) override;
  std::unique_ptr<PendingCollective> all_reduce_sum_async(at::Tensor tensor) override;
  void broadcast(std::vector<at::Tensor>& tensors) override;
  void barrier() override;

  // Waits for `work`, or throws (naming the unresponsive ranks) on failure or after the timeout.
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what);

 private:
  [[noreturn]] void fail(const char* what, const std::string& reason);
  c10::intrusive_ptr<c10d::ProcessGroup> group_, monitor_;
  std::chrono::milliseconds timeout_;
};

}  // namespace unime::train
