#include "train/peft_format.h"

#include <ATen/ATen.h>
#include <sys/stat.h>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/errors.h"
#include "core/json_file.h"
#include "core/safetensors.h"
#include "core/util/atomic_file.h"
#include "core/util/strings.h"
#include "model/checkpoint_loader.h"

namespace unime::train {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string regex_escape(const std::string& s) {
  static const std::regex special(R"([.^$|()\[\]{}*+?\\])");
  return std::regex_replace(s, special, R"(\$&)");
}

}  // namespace

json peft_adapter_config(model::EmbeddingModel& m, const model::LoraConfig& config, const std::string& base_model) {
  std::vector<std::string> paths;
  for (const auto& [path, _] : model::lora_layers(m.backbone()))
    paths.push_back(regex_escape(model::hf_module_path(m.backbone(), path)));
  if (paths.empty()) throw InvalidInputError("the model has no LoRA adapters to save");
  return json{{"peft_type", "LORA"},
              {"task_type", nullptr},
              {"base_model_name_or_path", base_model},
              {"revision", nullptr},
              {"r", config.rank},
              {"lora_alpha", config.alpha},
              {"lora_dropout", config.dropout},
              {"use_rslora", config.use_rslora},
              {"target_modules", "^(?:" + core::join(paths, "|") + ")$"},
              {"bias", "none"},
              {"fan_in_fan_out", false},
              {"modules_to_save", nullptr},
              {"init_lora_weights", true},
              {"use_dora", false},
              {"inference_mode", true},
              {"rank_pattern", json::object()},
              {"alpha_pattern", json::object()}};
}

void save_peft_adapter(model::EmbeddingModel& m, const model::LoraConfig& config, const std::string& dir) {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [path, t] : model::lora_parameters(m.backbone())) {
    auto hf = m.backbone().weight_map().to_hf(path);
    if (!hf) throw std::logic_error("no Hugging Face name for adapter " + path);
    tensors.emplace_back(kPeftPrefix + *hf, t);
  }
  model::save_tensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  core::write_file_atomic((fs::path(dir) / "adapter_config.json").string(),
                          peft_adapter_config(m, config, fs::path(dir).string()).dump(2) + "\n");
}

std::vector<std::string> load_peft_adapter(model::EmbeddingModel& m, const std::string& dir) {
  const auto config_path = (fs::path(dir) / "adapter_config.json").string();
  const auto j = core::read_json_file(config_path);
  auto refuse_if = [&](bool cond, const std::string& what) {
    if (cond) throw InvalidInputError(config_path + ": " + what + " is not supported");
  };
  refuse_if(core::get_or<std::string>(j, "peft_type", "LORA", config_path) != "LORA", "a peft_type other than LORA");
  refuse_if(core::get_or<bool>(j, "use_dora", false, config_path), "DoRA (use_dora)");
  refuse_if(core::get_or<std::string>(j, "bias", "none", config_path) != "none", "training biases (bias != none)");
  refuse_if(core::get_or<bool>(j, "fan_in_fan_out", false, config_path), "fan_in_fan_out");
  refuse_if(j.contains("modules_to_save") && !j["modules_to_save"].is_null() && !j["modules_to_save"].empty(),
            "modules_to_save");
  for (const char* pattern : {"rank_pattern", "alpha_pattern"})
    refuse_if(j.contains(pattern) && j[pattern].is_object() && !j[pattern].empty(), pattern);
  model::LoraConfig c;
  c.rank = core::get_required<int64_t>(j, "r", config_path);
  c.alpha = core::get_required<double>(j, "lora_alpha", config_path);
  c.dropout = core::get_or<double>(j, "lora_dropout", 0.0, config_path);
  c.use_rslora = core::get_or<bool>(j, "use_rslora", false, config_path);
  model::LoraTargets targets;
  const auto& t = j.at("target_modules");
  if (t.is_string())
    targets.regex = t.get<std::string>();
  else
    targets.modules = t.get<std::vector<std::string>>();
  const auto weights_path = (fs::path(dir) / "adapter_model.safetensors").string();
  auto weights = model::load_tensors(weights_path);
  auto dtype = weights.empty() ? at::kFloat : weights.begin()->second.scalar_type();
  auto paths = model::add_lora(m.backbone(), targets, c, dtype, 0);
  std::vector<std::string> missing;
  at::NoGradGuard no_grad;
  for (auto& [path, param] : model::lora_parameters(m.backbone())) {
    const auto key = kPeftPrefix + m.backbone().weight_map().to_hf(path).value_or(path);
    auto it = weights.find(key);
    if (it == weights.end()) {
      missing.push_back(key);
      continue;
    }
    if (it->second.sizes() != param.sizes())
      throw InvalidInputError(weights_path + ": '" + key + "' has shape " + c10::str(it->second.sizes()) +
                              " but the adapter is " + c10::str(param.sizes()));
    param.copy_(it->second);
  }
  if (!missing.empty())
    throw MissingKeyError(weights_path + " lacks " + std::to_string(missing.size()) +
                          " adapter weight(s): " + core::join(missing, ", "));
  return paths;
}

void save_merged_checkpoint(model::EmbeddingModel& m, const std::string& base_dir, const std::string& out_dir,
                            bool all_weights) {
  struct stat a {
  }, b{};
  if (::stat(base_dir.c_str(), &a) == 0 && ::stat(out_dir.c_str(), &b) == 0 && a.st_dev == b.st_dev &&
      a.st_ino == b.st_ino)
    throw InvalidInputError("the merged checkpoint must go to another directory than its base " + base_dir);
  auto base = core::Checkpoint::open(base_dir);
  // Merged weights by Hugging Face name.
  std::map<std::string, at::Tensor> merged;
  const auto& map = m.backbone().weight_map();
  for (const auto& [path, linear] : model::lora_layers(m.backbone())) {
    const auto candidates = map.hf_candidates(path + ".weight");
    core::CheckpointTensor found;
    std::string name;
    for (const auto& c : candidates)
      if ((found = base.find(c))) {
        name = c;
        break;
      }
    if (!found) throw MissingKeyError(base_dir + " has no weight for " + path);
    auto w = model::read_tensor(*found.file, *found.info, std::nullopt, at::kCPU);
    const auto& a = linear->lora_A->weight;
    const auto& b = linear->lora_B->weight;
    auto delta = at::mm(b.detach().to(at::kCPU, at::kFloat), a.detach().to(at::kCPU, at::kFloat)) *
                 linear->lora_config().scaling();
    merged[name] = (w.to(at::kFloat) + delta).to(w.scalar_type()).contiguous();
  }
  fs::create_directories(out_dir);
  if (all_weights) {
    const auto params = m.backbone().named_parameters();
    for (const auto& name : base.names()) {
      auto path = map.to_module(name);
      if (!path || !params.contains(*path)) continue;
      const auto stored = model::to_scalar_type(base.find(name).info->dtype);
      merged[name] = params[*path].detach().to(at::kCPU, stored).contiguous();
    }
  }
  // Every tensor of the base, borrowed from its mapping unless merged.
  std::vector<core::TensorView> views;
  for (const auto& name : base.names()) {
    auto it = merged.find(name);
    if (it != merged.end()) {
      views.push_back({name, model::to_dtype(it->second.scalar_type()), it->second.sizes().vec(), it->second.data_ptr(),
                       it->second.nbytes()});
      continue;
    }
    auto t = base.find(name);
    views.push_back({name, t.info->dtype, t.info->shape, t.file->data(*t.info), t.info->nbytes()});
  }
  core::write_safetensors((fs::path(out_dir) / "model.safetensors").string(), views, {{"format", "pt"}});
  for (const auto& entry : fs::directory_iterator(base_dir)) {
    const auto name = entry.path().filename().string();
    // Weights are replaced by model.safetensors; every other file (config, tokenizer, processor) is copied.
    if (!entry.is_regular_file() || core::ends_with(name, ".safetensors") || core::ends_with(name, ".bin") ||
        core::ends_with(name, ".safetensors.index.json") || core::ends_with(name, ".bin.index.json"))
      continue;
    fs::copy_file(entry.path(), fs::path(out_dir) / name, fs::copy_options::overwrite_existing);
  }
  // The recipe the model ran under, so the merged checkpoint loads the same way (model/recipe.h).
  const auto recipe_file = fs::path(out_dir) / model::kRecipeFile;
  if (m.recipe().is_default())
    fs::remove(recipe_file);  // one copied from the base would name another
  else
    core::write_file_atomic(recipe_file.string(), nlohmann::json{{"recipe", m.recipe().name}}.dump() + "\n");
}

}  // namespace unime::train
