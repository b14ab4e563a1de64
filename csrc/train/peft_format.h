// LoRA adapters and merged models in the ecosystem's formats:
//   - PEFT's adapter directory: adapter_config.json + adapter_model.safetensors with PEFT's key
//     names ("base_model.model." + the Hugging Face module path + ".lora_A.weight"), which
//     peft.PeftModel.from_pretrained loads onto the transformers base model, and unime loads back;
//   - a merged checkpoint: the base checkpoint with W + scaling * B A in place of every adapted
//     weight (in the checkpoint's dtype), and its other files copied, which transformers loads into
//     the original class.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "model/embedding_model.h"
#include "model/lora.h"

namespace unime::train {

inline constexpr const char* kPeftPrefix = "base_model.model.";

// adapter_config.json for the adapters of `model` (all with `config`): target_modules is a regex
// matching exactly the adapted modules' Hugging Face paths, so PEFT adapts the same Linears.
nlohmann::json peft_adapter_config(model::EmbeddingModel& model, const model::LoraConfig& config,
                                   const std::string& base_model);
// Writes adapter_config.json and adapter_model.safetensors (float32 or the adapters' dtype) into `dir`.
void save_peft_adapter(model::EmbeddingModel& model, const model::LoraConfig& config, const std::string& dir);
// Adds the adapters a PEFT directory describes and loads their weights. InvalidInputError for what
// the format allows and unime does not implement (DoRA, bias training, rank/alpha patterns,
// modules_to_save, fan_in_fan_out); MissingKeyError listing adapter weights the file lacks.
// Returns the adapted module paths.
std::vector<std::string> load_peft_adapter(model::EmbeddingModel& model, const std::string& dir);

// The merged model as a Hugging Face checkpoint directory `out_dir` (model.safetensors + every
// non-weight file of `base_dir`): W + scaling * B A computed in float32 from the base checkpoint's
// W and rounded once to its stored dtype. With `all_weights` (a model trained whole) every weight the
// model holds replaces the base's (in the base's dtype); tensors the model does not use are copied.
void save_merged_checkpoint(model::EmbeddingModel& model, const std::string& base_dir, const std::string& out_dir,
                            bool all_weights = false);

}  // namespace unime::train
