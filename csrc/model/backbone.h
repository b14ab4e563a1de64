// The interface every backbone family implements, and the registry keyed by config.json's
// model_type. Adding a backbone: one file in csrc/model/ with its modules and weight map, and one
// line in registry.cc (docs/development/adding-a-backbone.md).
#pragma once

#include <ATen/core/Tensor.h>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <torch/nn/module.h>
#include <vector>

#include "model/weight_map.h"

namespace unime::model {

class Backbone : public torch::nn::Module {
 public:
  // The last hidden state after the final norm: (B, L, hidden_size).
  virtual at::Tensor last_hidden_state(const at::Tensor& input_ids, const at::Tensor& attention_mask) const = 0;
  // The final-norm hidden state at each row's last real token: (B, hidden_size). Backbones compute
  // it without padding (packed sequences); it equals last_hidden_state() pooled, up to rounding.
  virtual at::Tensor last_token_hidden(const at::Tensor& input_ids, const at::Tensor& attention_mask) const = 0;
  virtual const WeightMap& weight_map() const = 0;
  virtual int64_t hidden_size() const = 0;
};

using BackboneFactory = std::function<std::shared_ptr<Backbone>(const nlohmann::json& config, const std::string& source)>;

// Creates the backbone for config["model_type"]; InvalidInputError names the type and lists the
// supported ones when there is no factory for it.
std::shared_ptr<Backbone> create_backbone(const nlohmann::json& config, const std::string& source);
std::vector<std::string> supported_model_types();

}  // namespace unime::model
