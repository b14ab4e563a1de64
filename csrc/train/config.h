// What a training run is: the stage, the adapters, the optimiser and schedule, the objective's
// hyper-parameters, batching, precision, checkpoints. Read from JSON (Python's TrainerConfig
// dataclass serialises to it); every field has a default and is validated with a message naming it.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "model/layers.h"
#include "model/lora.h"

namespace unime::train {

enum class Stage {
  kDistill,   // UniME stage 1: text-only, KL between in-batch similarity matrices (teacher vs student)
  kInstruct,  // UniME stage 2: hard-negative InfoNCE with the false-negative filter
  kJudge,     // UniME-V2: alignment of cosine and judge-score distributions over candidate lists
};

struct TrainerConfig {
  Stage stage = Stage::kInstruct;

  // What trains: "lora" (adapters; the base frozen) or "all" (every parameter of the model: for a
  // model that starts from random weights, like the demo's; no adapters then).
  std::string trainable = "lora";
  // LoRA (PEFT's names). Stage 1 adapts the language model only (the vision tower and projector
  // are frozen and never run); stage 2 may add "vision_tower" / "projector".
  std::vector<std::string> lora_targets{"q_proj",  "k_proj",    "v_proj",   "o_proj",      "gate_proj",
                                        "up_proj", "down_proj", "qkv_proj", "gate_up_proj"};
  std::string lora_regex;  // overrides lora_targets when set (PEFT's str target_modules)
  std::vector<std::string> lora_components{"language_model"};
  model::LoraConfig lora{16, 32.0, 0.0, false, "kaiming"};
  std::string lora_dtype = "float32";  // adapters (and optimiser state) in float32 over any base dtype

  // AdamW with decoupled weight decay (torch.optim.AdamW's update).
  double learning_rate = 1e-4;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9, adam_beta2 = 0.999, adam_epsilon = 1e-8;
  // Warmup (linear from 0) then "cosine", "linear" (to 0 at max_steps) or "constant".
  std::string lr_schedule = "linear";
  int64_t warmup_steps = 0;
  int64_t max_steps = 1000;
  double max_grad_norm = 1.0;  // <= 0: no clipping

  // Batching: batch_size examples per optimiser step (across every rank: the paper's global batch),
  // split into grad_accumulation micro-batches (each its own in-batch loss); GradCache chunks of
  // chunk_size inputs bound activation memory (0: the whole micro-batch at once).
  int64_t batch_size = 32;
  int64_t grad_accumulation = 1;
  int64_t chunk_size = 0;
  int64_t max_length = 0;  // tokens per input (0: the model's maximum); longer inputs are truncated
  bool gradient_checkpointing = false;
  std::string mixed_precision = "no";  // "no" | "bf16" | "fp16" (autocast on CUDA)

  // Objectives (docs/losses.md).
  double temperature = 0.02;          // stage 2 and V2; stage 1 uses distill_temperature
  double distill_temperature = 0.05;  // the paper gives none: E5-V's
  std::string kl_direction = "student_teacher";
  std::string kl_reduction = "sum";
  int64_t hard_negatives = 8;          // k
  double false_negative_margin = 0.1;  // beta
  bool all_in_batch = false;
  double judge_eps = 1e-8;                      // UniME-V2's log(p + 1e-8); 0: exact log-softmax
  std::optional<std::string> distill_template;  // stage-1 prompt with "{text}"; default: the family's

  uint64_t seed = 0;
  std::string on_error = "raise";  // "raise" | "skip": a bad example is logged and left out of its step

  static TrainerConfig from_json(const nlohmann::json& json);
  nlohmann::json to_json() const;
  void validate() const;  // InvalidInputError naming the field
};

std::string stage_name(Stage stage);
Stage parse_stage(const std::string& name);

// The fields that must match for a checkpoint to resume this run (everything that changes the
// maths or the data order), as JSON; a resume compares them and names what differs.
nlohmann::json resume_identity(const TrainerConfig& config);

}  // namespace unime::train
