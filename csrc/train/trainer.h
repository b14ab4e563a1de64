// unime's trainer: LoRA adapters on a loaded model, one optimiser step per call over a batch of
// examples of the run's stage (UniME stage 1 or 2, or UniME-V2), GradCache chunks, gradient
// accumulation and clipping, AdamW and its schedule, mixed precision on CUDA, the data order, and
// checkpoints that resume bit for bit. Python's unime.Trainer drives it: it loads and decodes the
// examples and calls step(); everything else happens here (no Python).
#pragma once

#include <ATen/core/Tensor.h>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/embedding_model.h"
#include "train/communicator.h"
#include "train/config.h"
#include "train/grad_reducer.h"
#include "train/optimizer.h"
#include "train/sampler.h"

namespace unime::train {

// One optimiser step's examples on this rank, in example order. Inputs borrow their image pixels:
// keep them alive for the step() call.
struct StepBatch {
  std::vector<std::string> example_ids;  // names for messages and skip reports, one per example
  // Per example: why the caller could not prepare it (an unreadable image, a teacher id not found),
  // empty when it could. Such an example's inputs are placeholders; it is left out of the loss.
  std::vector<std::string> failures;
  // distill: one text per example, and the teacher's embedding of it (n, any dimension).
  std::vector<model::EncodeInput> texts;
  at::Tensor teacher;
  // instruct: query i and its positive; negatives_per_query explicit negatives per example, query-major.
  std::vector<model::EncodeInput> queries, positives, negatives;
  int64_t negatives_per_query = 0;
  // judge: candidates_per_query candidates per query (its positive first), query-major, and the
  // judge's scores of them (n, candidates_per_query).
  std::vector<model::EncodeInput> candidates;
  int64_t candidates_per_query = 0;
  at::Tensor scores;
  int64_t size() const;
};

struct SkippedExample {
  std::string example_id;
  std::string reason;
};

struct StepResult {
  int64_t step = 0;             // optimiser steps done after this one
  double loss = 0;              // mean over micro-batches
  double learning_rate = 0;     // used by this step
  double grad_norm = 0;         // before clipping
  int64_t examples = 0;         // examples that contributed (all ranks)
  bool skipped_update = false;  // fp16 overflow: gradients were not finite, no update, smaller loss scale
  std::vector<SkippedExample> skipped;
};

class Trainer {
 public:
  // Adds the adapters the config asks for (seeded), freezes everything else, builds the optimiser.
  Trainer(std::shared_ptr<model::EmbeddingModel> model, TrainerConfig config,
          std::shared_ptr<Communicator> communicator = std::make_shared<LocalCommunicator>());

  StepResult step(const StepBatch& batch);
  // The gradient one step would apply (summed over ranks, before clipping), by adapter parameter
  // path, without updating anything: for checking GradCache and for research on the gradients.
  // With fp16 loss scaling, an overflow halves the scale (as step() would) and recomputes.
  std::vector<std::pair<std::string, at::Tensor>> gradients(const StepBatch& batch);

  // The data order: after set_num_examples(n), next_indices() gives this rank's examples of each step.
  void set_num_examples(int64_t n);
  std::vector<int64_t> next_indices();
  std::vector<int64_t> peek_indices() const;  // what next_indices() will give, the position kept

  // Writes root/checkpoint-<step>/ (adapters in PEFT's format, optimiser, RNG, position, config,
  // and `extra_files` name -> bytes from the caller), completed by its marker; keeps `keep_last`.
  // Only rank 0 writes; every rank waits for it.
  std::string save_checkpoint(const std::string& root, int64_t keep_last,
                              const std::map<std::string, std::string>& extra_files = {});
  // Restores a complete checkpoint written by save_checkpoint; InvalidInputError naming every config
  // field that differs, or a different dataset size. Returns its extra files.
  std::map<std::string, std::string> load_checkpoint(const std::string& dir);

  void save_adapter(const std::string& dir);
  void save_merged(const std::string& base_dir, const std::string& out_dir);

  int64_t global_step() const { return step_; }
  const TrainerConfig& config() const { return config_; }
  const std::vector<std::string>& adapted_modules() const { return adapted_; }
  std::vector<std::pair<std::string, at::Tensor>> trainable_parameters() const;
  Communicator& communicator() { return *comm_; }
  double loss_scale() const { return loss_scale_; }

 private:
  // Runs every micro-batch's forward and backward and sums the ranks' gradients; returns the mean loss.
  double accumulate(const StepBatch& batch, StepResult& result);
  void check_batch(const StepBatch& batch) const;  // InvalidInputError naming what does not fit
  // `last`: the step's last micro-batch, whose last backward starts the gradient reduction.
  double micro_step(const StepBatch& batch, int64_t begin, int64_t end, double scale,
                    std::vector<SkippedExample>& skipped, int64_t& used, bool last);
  model::ProcessOptions process_options(bool distill) const;

  std::shared_ptr<model::EmbeddingModel> model_;
  TrainerConfig config_;
  std::shared_ptr<Communicator> comm_;
  std::vector<std::string> adapted_;
  std::unique_ptr<AdamW> optimizer_;
  std::unique_ptr<GradReducer> reducer_;  // world size > 1
  std::unique_ptr<EpochSampler> sampler_;
  int64_t num_examples_ = 0;
  int64_t step_ = 0;
  double loss_scale_ = 1.0;  // fp16 only: dynamic loss scaling
  int64_t good_steps_ = 0;
};

}  // namespace unime::train
