// The three training objectives on embeddings, wired to the registered ops (docs/losses.md) with the
// run's hyper-parameters and the checks that name what is wrong with a batch.
#pragma once

#include <ATen/core/Tensor.h>

#include "train/config.h"

namespace unime::train {

// Stage 1: student (n, d) and teacher (n, dt) embeddings of the same texts -> 0-d loss.
at::Tensor distill_loss(const at::Tensor& student, const at::Tensor& teacher, const TrainerConfig& config);

// Stage 2: queries (B, d), candidates (N >= B, d) with candidates[i] query i's positive and the rest
// extra in-batch negatives, explicit negatives (B, m, d) or undefined -> 0-d loss.
at::Tensor instruct_loss(const at::Tensor& queries, const at::Tensor& candidates, const at::Tensor& negatives,
                         const TrainerConfig& config);

// UniME-V2: queries (B, d), candidates (B, c, d) positive first, judge scores (B, c) -> 0-d loss.
at::Tensor judge_loss(const at::Tensor& queries, const at::Tensor& candidates, const at::Tensor& scores,
                      const TrainerConfig& config);

}  // namespace unime::train
