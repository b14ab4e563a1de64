// LoRA adapters on a backbone, with PEFT's semantics: which Linears get one (target_modules as a
// list of names or one regex, matched against the Hugging Face module path as PEFT sees it), their
// parameters, merging into the base weights.
#pragma once

#include <ATen/core/Tensor.h>
#include <string>
#include <vector>

#include "model/backbone.h"
#include "model/layers.h"

namespace unime::model {

struct LoraTargets {
  // PEFT's target_modules as a list: a module matches when its HF path equals a name or ends with
  // "." + name ("q_proj", "self_attn.o_proj"). Ignored when `regex` is set.
  std::vector<std::string> modules;
  // PEFT's target_modules as a str: a regex that must match the whole HF module path.
  std::string regex;
  // Only Linears inside these components (Backbone::components(): "language_model", "vision_tower",
  // "projector"); empty: every component.
  std::vector<std::string> components;
};

// The Hugging Face module path of a unime module path ("decoder.layers.0.self_attn.q_proj" ->
// "language_model.model.layers.0.self_attn.q_proj"), through the backbone's weight map.
std::string hf_module_path(const Backbone& backbone, const std::string& module_path);

// Adds an adapter to every matching Linear (weights must be loaded), A drawn from a generator seeded
// with `seed` in module order; returns the adapted module paths. InvalidInputError when a target
// matches nothing, a component is unknown or a Linear already has an adapter.
std::vector<std::string> add_lora(Backbone& backbone, const LoraTargets& targets, const LoraConfig& config,
                                  at::ScalarType dtype, uint64_t seed);

// Every Linear with an adapter, by module path.
std::vector<std::pair<std::string, std::shared_ptr<Linear>>> lora_layers(Backbone& backbone);
// Their A and B parameters (module path -> tensor), in module order.
std::vector<std::pair<std::string, at::Tensor>> lora_parameters(Backbone& backbone);
void merge_lora(Backbone& backbone);
void unmerge_lora(Backbone& backbone);

}  // namespace unime::model
