#include "train/grad_reducer.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

namespace unime::train {

std::unique_ptr<PendingCollective> Communicator::all_reduce_sum_async(at::Tensor tensor) {
  std::vector<at::Tensor> one{tensor};
  all_reduce_sum(one);
  return nullptr;
}

struct ReadyHook : torch::autograd::PostAccumulateGradHook {
  ReadyHook(GradReducer* reducer, size_t index) : reducer(reducer), index(index) {}
  void operator()(const torch::autograd::Variable&) override { reducer->ready(index); }
  GradReducer* reducer;
  size_t index;
};

GradReducer::GradReducer(std::vector<at::Tensor> params, Communicator& comm, int64_t bucket_bytes)
    : params_(std::move(params)), comm_(comm), bucket_of_(params_.size()), marked_(params_.size(), false) {
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const int64_t size = params_[k].numel() * 4;
    if (buckets_.empty() || (bytes + size > bucket_bytes && !buckets_.back().params.empty())) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().params.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    bytes += size;
  }
  for (size_t k = 0; k < params_.size(); ++k)
    torch::autograd::impl::set_post_acc_grad_hooks(params_[k], std::make_unique<ReadyHook>(this, k));
}

GradReducer::~GradReducer() {
  for (auto& p : params_) torch::autograd::impl::set_post_acc_grad_hooks(p, nullptr);
}

void GradReducer::arm() {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = true;
}

void GradReducer::ready(size_t param) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_ || marked_[param]) return;
  marked_[param] = true;
  ++buckets_[bucket_of_[param]].ready;
  // Buckets start in index order on every rank (collectives must match across ranks), so a full
  // bucket waits for the ones before it.
  while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].params.size()) launch(next_++);
}

void GradReducer::launch(size_t bucket) {
  auto& b = buckets_[bucket];
  std::vector<at::Tensor> parts;
  for (size_t k : b.params) {
    auto& p = params_[k];
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
    parts.push_back(p.grad().reshape(-1).to(at::kFloat));
  }
  b.flat = at::cat(parts);
  b.pending = comm_.all_reduce_sum_async(b.flat);
}

void GradReducer::finish() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (next_ < buckets_.size()) launch(next_++);
    armed_ = false;
    next_ = 0;
  }
  for (auto& b : buckets_) {
    if (b.pending) b.pending->wait();
    int64_t offset = 0;
    for (size_t k : b.params) {
      auto& g = params_[k].mutable_grad();
      g.copy_(b.flat.narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
    b.pending.reset();
    b.flat = at::Tensor();
    b.ready = 0;
  }
  std::fill(marked_.begin(), marked_.end(), false);
}

}  // namespace unime::train
