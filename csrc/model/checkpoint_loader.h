// Loading safetensors checkpoints into unime modules and into plain tensors.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <map>
#include <optional>
#include <string>
#include <torch/nn/module.h>
#include <vector>

#include "core/safetensors.h"
#include "model/weight_map.h"

namespace unime::model {

// What loading did beyond filling every parameter.
struct LoadReport {
  std::vector<std::string> ignored;     // known HF tensors the model does not need (e.g. lm_head.weight)
  std::vector<std::string> unexpected;  // tensors no rule maps: reported, not loaded
};

at::ScalarType to_scalar_type(core::DType dtype);
core::DType to_dtype(at::ScalarType type);  // InvalidInputError for types safetensors cannot store

// Copies one tensor of a checkpoint out of its mapping. Floating tensors are converted to `dtype`
// when given; integer and bool tensors keep their type. The result owns its memory.
at::Tensor read_tensor(const core::SafetensorsFile& file, const core::TensorInfo& info,
                       std::optional<at::ScalarType> dtype, at::Device device);

// Writes named tensors (any device, contiguous CPU copies are made) as a safetensors file, atomically.
void save_tensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata = {});
// Every tensor of a safetensors file or checkpoint directory, on the CPU in its stored dtype.
std::map<std::string, at::Tensor> load_tensors(const std::string& path);

// LoRA adapter parameters (a "lora_A" / "lora_B" path segment): parts of a module that a base
// checkpoint does not hold.
bool is_adapter_parameter(const std::string& module_path);

// Fills every parameter of `module` from `checkpoint` through `map`, converting floating tensors to
// `dtype` on `device`. Adapter parameters (is_adapter_parameter) are loaded when the checkpoint has
// them and otherwise keep their values (converted to `device`); every other parameter is required.
// Throws MissingKeyError listing every missing tensor, and InvalidInputError naming the tensor on a
// shape mismatch. Nothing is partially loaded on error.
//
// Checkpoint tensors the module does not use are reported: `ignored` when the map lists them as
// ignorable or they belong to a layer the module does not build (a vision layer past the one whose
// features are used: its path exists in layer 0), `unexpected` otherwise.
//
// `dropped`: module-path prefixes of parts the caller removed from `module` (a text-only model's
// vision tower): their checkpoint tensors are never read and are reported as ignored.
LoadReport load_module(torch::nn::Module& module, const WeightMap& map, const core::Checkpoint& checkpoint,
                       at::ScalarType dtype, at::Device device, const std::vector<std::string>& dropped = {});

}  // namespace unime::model
