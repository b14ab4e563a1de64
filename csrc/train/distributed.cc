#include "train/distributed.h"

#include <ATen/ATen.h>

#include "core/errors.h"
#include "core/util/strings.h"

namespace unime::train {

ProcessGroupCommunicator::ProcessGroupCommunicator(c10::intrusive_ptr<c10d::ProcessGroup> group,
                                                   std::chrono::milliseconds timeout,
                                                   c10::intrusive_ptr<c10d::ProcessGroup> monitor)
    : group_(std::move(group)), monitor_(std::move(monitor)), timeout_(timeout) {
  if (!group_) throw InvalidInputError("the process group is None");
  if (!monitor_ && group_->getBackendName() == "gloo") monitor_ = group_;
}

void ProcessGroupCommunicator::fail(const char* what, const std::string& reason) {
  // Which ranks are gone? Every rank that is still running fails too (a collective needs everyone),
  // so the survivors meet on the monitor group: each sends a token to rank 0, which notes who does
  // not answer within the timeout (dead: its connection is reset at once; hung: it never sends).
  std::string who;
  if (monitor_) {
    constexpr int kTag = 0x756e6d;  // "unm"
    std::vector<at::Tensor> token{at::zeros({1}, at::kFloat)};
    if (rank() == 0) {
      std::vector<std::string> missing;
      for (int64_t r = 1; r < world_size(); ++r) {
        bool answered = false;
        try {
          answered = monitor_->recv(token, static_cast<int>(r), kTag)->wait(timeout_);
        } catch (const std::exception&) {
        }
        if (!answered) missing.push_back(std::to_string(r));
      }
      who = missing.empty()
                ? "every rank answered a check afterwards"
                : std::string(missing.size() == 1 ? "rank " : "ranks ") + core::join(missing, ", ") +
                      " did not answer within " + std::to_string(timeout_.count() / 1000) + " s (dead or hung)";
    } else {
      bool sent = false;
      try {
        sent = monitor_->send(token, 0, kTag)->wait(timeout_);
      } catch (const std::exception&) {
      }
      who = sent ? "rank 0 names the ranks that failed"
                 : "rank 0 did not answer within " + std::to_string(timeout_.count() / 1000) + " s (dead or hung)";
    }
  }
  throw std::runtime_error((who.empty() ? "" : who + ": ") + "rank " + std::to_string(rank()) + ": " + what +
                           " across " + std::to_string(world_size()) + " ranks failed (" + reason + ")");
}

void ProcessGroupCommunicator::wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  bool done = false;
  std::string reason;
  try {
    done = work->wait(timeout_);
    if (!done) reason = "aborted";
  } catch (const std::exception& e) {
    reason = e.what();
  }
  if (!done) fail(what, reason.size() > 400 ? reason.substr(0, 400) + "..." : reason);
}

at::Tensor ProcessGroupCommunicator::all_gather(const at::Tensor& local) {
  std::vector<at::Tensor> in{local.contiguous()};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int64_t r = 0; r < world_size(); ++r) out[0].push_back(at::empty_like(in[0]));
  wait(group_->allgather(out, in), "all_gather");
  return at::cat(out[0], 0);
}

void ProcessGroupCommunicator::all_reduce_sum(std::vector<at::Tensor>& tensors) {
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  wait(group_->allreduce(tensors, opts), "all_reduce");
}

namespace {
class PendingWork : public PendingCollective {
 public:
  PendingWork(ProcessGroupCommunicator& comm, c10::intrusive_ptr<c10d::Work> work, std::vector<at::Tensor> tensors)
      : comm_(comm), work_(std::move(work)), tensors_(std::move(tensors)) {}
  void wait() override { comm_.wait(work_, "gradient all_reduce"); }

 private:
  ProcessGroupCommunicator& comm_;
  c10::intrusive_ptr<c10d::Work> work_;
  std::vector<at::Tensor> tensors_;  // kept alive while in flight
};
}  // namespace

std::unique_ptr<PendingCollective> ProcessGroupCommunicator::all_reduce_sum_async(at::Tensor tensor) {
  std::vector<at::Tensor> tensors{std::move(tensor)};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  auto work = group_->allreduce(tensors, opts);
  return std::make_unique<PendingWork>(*this, std::move(work), std::move(tensors));
}

void ProcessGroupCommunicator::broadcast(std::vector<at::Tensor>& tensors) {
  // One flat buffer (a c10d broadcast takes one tensor per device), copied back into each tensor.
  if (tensors.empty()) return;
  std::vector<at::Tensor> parts;
  for (const auto& t : tensors) parts.push_back(t.reshape(-1).to(at::kFloat));
  std::vector<at::Tensor> flat{at::cat(parts)};
  c10d::BroadcastOptions opts;
  opts.rootRank = 0;
  wait(group_->broadcast(flat, opts), "broadcast");
  int64_t offset = 0;
  for (auto& t : tensors) {
    t.copy_(flat[0].narrow(0, offset, t.numel()).view_as(t));
    offset += t.numel();
  }
}

void ProcessGroupCommunicator::barrier() {
  // A barrier through an all-reduce: it gets the same timeout and failure report as the others.
  std::vector<at::Tensor> one{
      at::zeros({1}, at::TensorOptions().device(group_->getBackendName() == "nccl" ? at::kCUDA : at::kCPU))};
  all_reduce_sum(one);
}

}  // namespace unime::train
