#include "train/objectives.h"

#include <ATen/ATen.h>

#include "core/errors.h"
#include "ops/ops.h"

namespace unime::train {

at::Tensor distill_loss(const at::Tensor& student, const at::Tensor& teacher, const TrainerConfig& c) {
  if (teacher.size(0) != student.size(0))
    throw InvalidInputError("stage 1: " + std::to_string(student.size(0)) + " texts but " +
                            std::to_string(teacher.size(0)) + " teacher embeddings");
  if (student.size(0) < 2)
    throw InvalidInputError("stage 1 needs at least 2 texts per batch (an in-batch similarity matrix), got " +
                            std::to_string(student.size(0)));
  return ops::similarity_kl(student, teacher.to(student.device(), at::kFloat), c.distill_temperature, c.kl_direction,
                            c.kl_reduction, /*normalize=*/false);
}

at::Tensor instruct_loss(const at::Tensor& queries, const at::Tensor& candidates, const at::Tensor& negatives,
                         const TrainerConfig& c) {
  const int64_t in_batch = candidates.size(0) - 1;
  if (!c.all_in_batch && c.hard_negatives > in_batch)
    throw InvalidInputError("stage 2: a batch of " + std::to_string(queries.size(0)) + " examples has " +
                            std::to_string(in_batch) + " in-batch negatives per query, fewer than hard_negatives = " +
                            std::to_string(c.hard_negatives) + "; use a larger batch or a smaller k");
  std::optional<at::Tensor> neg;
  if (negatives.defined()) neg = negatives;
  return std::get<0>(ops::hard_negative_infonce(queries, candidates, neg, c.hard_negatives, c.false_negative_margin,
                                                c.temperature, c.all_in_batch, /*normalize=*/false));
}

at::Tensor judge_loss(const at::Tensor& queries, const at::Tensor& candidates, const at::Tensor& scores,
                      const TrainerConfig& c) {
  if (scores.sizes() != candidates.sizes().slice(0, 2))
    throw InvalidInputError("UniME-V2: judge scores must be (queries, candidates) = " +
                            c10::str(candidates.sizes().slice(0, 2)) + ", got " + c10::str(scores.sizes()));
  return ops::judge_alignment(queries, candidates, scores.to(queries.device(), at::kFloat), c.temperature, c.judge_eps,
                              /*normalize=*/false);
}

}  // namespace unime::train
