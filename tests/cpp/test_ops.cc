// The unime ops from C++ alone (what the trainer sees): every op has a kernel per dispatch key, and
// the losses' C++ entry points give UniME-V2's released judge loss with its gradient.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>

#include <cmath>
#include <string>

#include "ops/ops.h"

namespace {

const char* const kOps[] = {"rms_norm", "similarity_kl", "hard_negative_infonce", "judge_alignment",
                            "mine_hard_negatives"};

TEST(OpsRegistration, EveryOpHasCpuMetaAutogradAndCudaWhereBuilt) {
  for (const char* name : kOps) {
    auto op = c10::Dispatcher::singleton().findSchemaOrThrow((std::string("unime::") + name).c_str(), "");
    EXPECT_TRUE(op.hasKernelForDispatchKey(c10::DispatchKey::CPU)) << name;
    EXPECT_TRUE(op.hasKernelForDispatchKey(c10::DispatchKey::Meta)) << name;
    EXPECT_TRUE(op.hasKernelForDispatchKey(c10::DispatchKey::Autograd)) << name;
#ifdef UNIME_WITH_CUDA
    EXPECT_TRUE(op.hasKernelForDispatchKey(c10::DispatchKey::CUDA)) << name;
#else
    EXPECT_FALSE(op.hasKernelForDispatchKey(c10::DispatchKey::CUDA)) << name;
#endif
  }
}

// Composite ops: one ATen implementation for every device, autograd from the ops it calls.
TEST(OpsRegistration, CompositeOpsHaveOneImplementationForEveryDevice) {
  auto op = c10::Dispatcher::singleton().findSchemaOrThrow("unime::lora_linear", "");
  EXPECT_TRUE(op.hasKernelForDispatchKey(c10::DispatchKey::CompositeImplicitAutograd));
  EXPECT_FALSE(op.hasKernelForDispatchKey(c10::DispatchKey::CPU));
}

// UniME-V2's loss.py: p = softmax(cos / tau), t = softmax(judge / tau),
// 0.5 * (mean_b sum t (log t - log(p + eps)) + mean_b sum p (log p - log(t + eps))).
at::Tensor released_judge_loss(const at::Tensor& q, const at::Tensor& c, const at::Tensor& judge, double tau,
                               double eps) {
  auto p = at::softmax(at::bmm(c, q.unsqueeze(2)).squeeze(2) / tau, 1);
  auto t = at::softmax(judge / tau, 1);
  auto kl_tp = (t * (t.log() - (p + eps).log())).sum(1).mean();
  auto kl_pt = (p * (p.log() - (t + eps).log())).sum(1).mean();
  return 0.5 * (kl_tp + kl_pt);
}

TEST(JudgeAlignmentOp, DefaultEpsIsTheReleasedLossInValueAndGradient) {
  at::manual_seed(0);
  auto q = at::randn({4, 16}, at::kDouble);
  q = q / q.norm(2, -1, true);
  auto c = at::randn({4, 9, 16}, at::kDouble);
  c = c / c.norm(2, -1, true);
  auto judge = at::rand({4, 9}, at::kDouble);
  auto q1 = q.clone().requires_grad_(true), q2 = q.clone().requires_grad_(true);
  auto ours = unime::ops::judge_alignment(q1, c, judge, 0.02);  // eps defaults to 1e-8
  auto theirs = released_judge_loss(q2, c, judge, 0.02, 1e-8);
  EXPECT_NEAR(ours.item<double>(), theirs.item<double>(), 1e-11);
  auto g1 = torch::autograd::grad({ours}, {q1})[0];
  auto g2 = torch::autograd::grad({theirs}, {q2})[0];
  EXPECT_TRUE(at::allclose(g1, g2, 1e-9, 1e-11));
  // eps = 0 is a different loss on these scores (tau = 0.02 puts probabilities below 1e-8).
  EXPECT_GT(std::abs(unime::ops::judge_alignment(q, c, judge, 0.02, 0.0).item<double>() - theirs.item<double>()), 1e-3);
  EXPECT_THROW(unime::ops::judge_alignment(q, c, judge, 0.02, -1.0), c10::ValueError);
}

TEST(LossOps, NormalizeEqualsNormalisingFirst) {
  at::manual_seed(1);
  auto q = at::randn({6, 8}, at::kDouble) * 3.0, c = at::randn({9, 8}, at::kDouble) * 0.5;
  auto unit = [](const at::Tensor& x) { return x / x.norm(2, -1, true); };
  auto [loss, picked] = unime::ops::hard_negative_infonce(q, c, std::nullopt, 3, 0.1, 0.02, false, true);
  auto [expected, expected_picked] =
      unime::ops::hard_negative_infonce(unit(q), unit(c), std::nullopt, 3, 0.1, 0.02, false);
  EXPECT_NEAR(loss.item<double>(), expected.item<double>(), 1e-12);
  EXPECT_TRUE(at::equal(picked, expected_picked));
  EXPECT_NEAR(unime::ops::similarity_kl(q, c.narrow(0, 0, 6), 0.05, "symmetric", "mean", true).item<double>(),
              unime::ops::similarity_kl(unit(q), unit(c.narrow(0, 0, 6)), 0.05, "symmetric", "mean").item<double>(),
              1e-12);
}

}  // namespace
