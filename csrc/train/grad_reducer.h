// Summing the adapters' gradients over ranks in buckets, overlapped with the backward pass: during
// the step's last backward, a parameter's post-accumulate-grad hook marks it ready; when every
// parameter of a bucket is, the bucket is flattened and its all-reduce starts while autograd goes on
// with the layers below (DDP's scheme). finish() starts what is left (parameters that got no
// gradient in that last backward), waits, and writes the sums back into the gradients.
#pragma once

#include <ATen/core/Tensor.h>
#include <memory>
#include <mutex>
#include <vector>

#include "train/communicator.h"

namespace unime::train {

class GradReducer {
 public:
  // params in module order; buckets are filled in reverse order (the order their gradients are
  // ready in a backward pass) up to bucket_bytes of float32 each.
  GradReducer(std::vector<at::Tensor> params, Communicator& comm, int64_t bucket_bytes = 25 << 20);
  ~GradReducer();

  void arm();     // the next backward's hooks start bucket reductions
  void finish();  // reduce the rest, wait for all, write back; disarms
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  friend struct ReadyHook;
  void ready(size_t param);
  void launch(size_t bucket);  // with mutex_ held

  struct Bucket {
    std::vector<size_t> params;
    size_t ready = 0;
    at::Tensor flat;
    std::unique_ptr<PendingCollective> pending;
  };
  std::vector<at::Tensor> params_;
  Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;
  std::vector<bool> marked_;
  size_t next_ = 0;  // the next bucket to launch
  bool armed_ = false;
  std::mutex mutex_;
};

}  // namespace unime::train
