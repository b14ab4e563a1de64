#include "train/config.h"

#include <nlohmann/json.hpp>
#include <set>

#include "core/errors.h"
#include "core/util/strings.h"

namespace unime::train {

using nlohmann::json;

std::string stage_name(Stage stage) {
  switch (stage) {
    case Stage::kDistill:
      return "distill";
    case Stage::kInstruct:
      return "instruct";
    case Stage::kJudge:
      return "judge";
  }
  return "?";
}

Stage parse_stage(const std::string& name) {
  if (name == "distill") return Stage::kDistill;
  if (name == "instruct") return Stage::kInstruct;
  if (name == "judge") return Stage::kJudge;
  throw InvalidInputError("stage must be 'distill', 'instruct' or 'judge', got " + core::quote(name));
}

namespace {

template <typename T>
void read(const json& j, const char* key, T& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    out = it->get<T>();
  } catch (const json::exception& e) {
    throw InvalidInputError(std::string("trainer config field '") + key + "' has the wrong type: " + it->dump());
  }
}

}  // namespace

TrainerConfig TrainerConfig::from_json(const json& j) {
  if (!j.is_object()) throw InvalidInputError("trainer config must be a JSON object");
  static const std::set<std::string> known = {"stage",
                                              "trainable",
                                              "lora_targets",
                                              "lora_regex",
                                              "lora_components",
                                              "lora_r",
                                              "lora_alpha",
                                              "lora_dropout",
                                              "use_rslora",
                                              "lora_init",
                                              "lora_dtype",
                                              "learning_rate",
                                              "weight_decay",
                                              "adam_beta1",
                                              "adam_beta2",
                                              "adam_epsilon",
                                              "lr_schedule",
                                              "warmup_steps",
                                              "max_steps",
                                              "max_grad_norm",
                                              "batch_size",
                                              "grad_accumulation",
                                              "chunk_size",
                                              "max_length",
                                              "gradient_checkpointing",
                                              "mixed_precision",
                                              "temperature",
                                              "distill_temperature",
                                              "kl_direction",
                                              "kl_reduction",
                                              "hard_negatives",
                                              "false_negative_margin",
                                              "all_in_batch",
                                              "judge_eps",
                                              "distill_template",
                                              "seed",
                                              "on_error"};
  for (const auto& [key, _] : j.items())
    if (!known.count(key)) throw InvalidInputError("trainer config has an unknown field " + core::quote(key));
  TrainerConfig c;
  std::string stage = stage_name(c.stage);
  read(j, "stage", stage);
  c.stage = parse_stage(stage);
  read(j, "trainable", c.trainable);
  read(j, "lora_targets", c.lora_targets);
  read(j, "lora_regex", c.lora_regex);
  read(j, "lora_components", c.lora_components);
  read(j, "lora_r", c.lora.rank);
  read(j, "lora_alpha", c.lora.alpha);
  read(j, "lora_dropout", c.lora.dropout);
  read(j, "use_rslora", c.lora.use_rslora);
  read(j, "lora_init", c.lora.init);
  read(j, "lora_dtype", c.lora_dtype);
  read(j, "learning_rate", c.learning_rate);
  read(j, "weight_decay", c.weight_decay);
  read(j, "adam_beta1", c.adam_beta1);
  read(j, "adam_beta2", c.adam_beta2);
  read(j, "adam_epsilon", c.adam_epsilon);
  read(j, "lr_schedule", c.lr_schedule);
  read(j, "warmup_steps", c.warmup_steps);
  read(j, "max_steps", c.max_steps);
  read(j, "max_grad_norm", c.max_grad_norm);
  read(j, "batch_size", c.batch_size);
  read(j, "grad_accumulation", c.grad_accumulation);
  read(j, "chunk_size", c.chunk_size);
  read(j, "max_length", c.max_length);
  read(j, "gradient_checkpointing", c.gradient_checkpointing);
  read(j, "mixed_precision", c.mixed_precision);
  read(j, "temperature", c.temperature);
  read(j, "distill_temperature", c.distill_temperature);
  read(j, "kl_direction", c.kl_direction);
  read(j, "kl_reduction", c.kl_reduction);
  read(j, "hard_negatives", c.hard_negatives);
  read(j, "false_negative_margin", c.false_negative_margin);
  read(j, "all_in_batch", c.all_in_batch);
  read(j, "judge_eps", c.judge_eps);
  if (j.contains("distill_template") && !j["distill_template"].is_null()) {
    std::string t;
    read(j, "distill_template", t);
    c.distill_template = t;
  }
  read(j, "seed", c.seed);
  read(j, "on_error", c.on_error);
  c.validate();
  return c;
}

json TrainerConfig::to_json() const {
  return json{{"stage", stage_name(stage)},
              {"trainable", trainable},
              {"lora_targets", lora_targets},
              {"lora_regex", lora_regex},
              {"lora_components", lora_components},
              {"lora_r", lora.rank},
              {"lora_alpha", lora.alpha},
              {"lora_dropout", lora.dropout},
              {"use_rslora", lora.use_rslora},
              {"lora_init", lora.init},
              {"lora_dtype", lora_dtype},
              {"learning_rate", learning_rate},
              {"weight_decay", weight_decay},
              {"adam_beta1", adam_beta1},
              {"adam_beta2", adam_beta2},
              {"adam_epsilon", adam_epsilon},
              {"lr_schedule", lr_schedule},
              {"warmup_steps", warmup_steps},
              {"max_steps", max_steps},
              {"max_grad_norm", max_grad_norm},
              {"batch_size", batch_size},
              {"grad_accumulation", grad_accumulation},
              {"chunk_size", chunk_size},
              {"max_length", max_length},
              {"gradient_checkpointing", gradient_checkpointing},
              {"mixed_precision", mixed_precision},
              {"temperature", temperature},
              {"distill_temperature", distill_temperature},
              {"kl_direction", kl_direction},
              {"kl_reduction", kl_reduction},
              {"hard_negatives", hard_negatives},
              {"false_negative_margin", false_negative_margin},
              {"all_in_batch", all_in_batch},
              {"judge_eps", judge_eps},
              {"distill_template", distill_template ? json(*distill_template) : json(nullptr)},
              {"seed", seed},
              {"on_error", on_error}};
}

void TrainerConfig::validate() const {
  auto fail = [](const std::string& field, const std::string& why) {
    throw InvalidInputError("trainer config " + field + ": " + why);
  };
  lora.validate();
  if (trainable != "lora" && trainable != "all") fail("trainable", "must be 'lora' or 'all'");
  if (lora_regex.empty() && lora_targets.empty()) fail("lora_targets", "name at least one Linear (e.g. q_proj)");
  if (!(learning_rate >= 0)) fail("learning_rate", "must be >= 0");
  if (!(weight_decay >= 0)) fail("weight_decay", "must be >= 0");
  if (!(adam_beta1 >= 0 && adam_beta1 < 1) || !(adam_beta2 >= 0 && adam_beta2 < 1))
    fail("adam_beta", "must be in [0, 1)");
  if (!(adam_epsilon > 0)) fail("adam_epsilon", "must be > 0");
  if (lr_schedule != "linear" && lr_schedule != "cosine" && lr_schedule != "constant")
    fail("lr_schedule", "must be 'linear', 'cosine' or 'constant', got " + core::quote(lr_schedule));
  if (warmup_steps < 0) fail("warmup_steps", "must be >= 0");
  if (max_steps <= 0) fail("max_steps", "must be positive");
  if (batch_size <= 0) fail("batch_size", "must be positive");
  if (grad_accumulation <= 0 || batch_size % grad_accumulation != 0)
    fail("grad_accumulation", "must be positive and divide batch_size (" + std::to_string(batch_size) + ")");
  if (chunk_size < 0) fail("chunk_size", "must be >= 0 (0: no GradCache chunking)");
  if (max_length < 0) fail("max_length", "must be >= 0");
  if (mixed_precision != "no" && mixed_precision != "bf16" && mixed_precision != "fp16")
    fail("mixed_precision", "must be 'no', 'bf16' or 'fp16'");
  if (!(temperature > 0) || !(distill_temperature > 0)) fail("temperature", "must be > 0");
  if (kl_direction != "student_teacher" && kl_direction != "teacher_student" && kl_direction != "symmetric")
    fail("kl_direction", "must be 'student_teacher', 'teacher_student' or 'symmetric'");
  if (kl_reduction != "sum" && kl_reduction != "mean") fail("kl_reduction", "must be 'sum' or 'mean'");
  if (hard_negatives < 0) fail("hard_negatives", "must be >= 0");
  if (!(judge_eps >= 0)) fail("judge_eps", "must be >= 0");
  if (on_error != "raise" && on_error != "skip") fail("on_error", "must be 'raise' or 'skip'");
  if (lora_dtype != "float32" && lora_dtype != "bfloat16" && lora_dtype != "float16" && lora_dtype != "float64")
    fail("lora_dtype", "must be a floating dtype name");
}

json resume_identity(const TrainerConfig& c) {
  auto j = c.to_json();
  // What may change between a run and its resume without changing what is computed.
  for (const char* free : {"on_error", "gradient_checkpointing", "chunk_size"}) j.erase(free);
  return j;
}

}  // namespace unime::train
