// The CLIP ViT vision tower (backbones.md 1.7) as LibTorch modules: patch embedding (a strided conv
// without bias), class token, learned positions, pre-LayerNorm, pre-norm encoder layers with
// quick-GELU MLPs. LLaVA-NeXT and Phi-3.5-V read the penultimate layer, so forward() stops after
// `num_layers_to_run` layers and the rest are never computed (nor loaded).
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <torch/nn/module.h>

#include "model/layers.h"
#include "model/weight_map.h"

namespace unime::model {

struct ClipVisionConfig {
  int64_t hidden_size = 0, intermediate_size = 0, num_hidden_layers = 0, num_attention_heads = 0;
  int64_t image_size = 0, patch_size = 0, num_channels = 3;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";  // "quick_gelu" | "gelu"
  int64_t num_positions() const { return (image_size / patch_size) * (image_size / patch_size) + 1; }

  // `defaults_table`: "clip_vision_model" for a standalone config, "llava_next.vision_config" for
  // the tower inside LLaVA-NeXT (whose omitted keys default to ViT-L/14-336).
  static ClipVisionConfig from_json(const nlohmann::json& json, const std::string& defaults_table,
                                    const std::string& source);
};

// Submodules named as transformers' CLIPEncoderLayer (self_attn.{q,k,v,out}_proj, mlp.fc1/fc2), so
// LoRA targets on the vision tower have PEFT's names.
class ClipAttention : public torch::nn::Module {
 public:
  explicit ClipAttention(const ClipVisionConfig& c);
  at::Tensor forward(const at::Tensor& x) const;  // (N, tokens, hidden), bidirectional
  std::shared_ptr<Linear> q_proj, k_proj, v_proj, out_proj;

 private:
  int64_t num_heads_;
};

class ClipMlp : public torch::nn::Module {
 public:
  explicit ClipMlp(const ClipVisionConfig& c);
  at::Tensor forward(const at::Tensor& x) const;  // fc2(act(fc1(x)))
  std::shared_ptr<Linear> fc1, fc2;

 private:
  bool quick_gelu_;
};

class ClipEncoderLayer : public torch::nn::Module {
 public:
  explicit ClipEncoderLayer(const ClipVisionConfig& c);
  at::Tensor forward(const at::Tensor& x) const;  // (N, tokens, hidden) -> same
  std::shared_ptr<LayerNorm> layer_norm1, layer_norm2;
  std::shared_ptr<ClipAttention> self_attn;
  std::shared_ptr<ClipMlp> mlp;
};

class ClipVisionTower : public torch::nn::Module {
 public:
  // Builds and registers only the first `num_layers_to_run` encoder layers.
  ClipVisionTower(const ClipVisionConfig& c, int64_t num_layers_to_run);
  // pixels: (N, 3, image_size, image_size) float; cast to the weights' dtype before the conv, as
  // transformers does. Returns the output of encoder layer `num_layers_to_run`: (N, 1 + patches, hidden),
  // the CLS token first (no post-LayerNorm).
  at::Tensor forward(const at::Tensor& pixels) const;
  const ClipVisionConfig& config() const { return config_; }
  void set_gradient_checkpointing(bool on) { checkpointing_ = on; }

  at::Tensor class_embedding, patch_embedding, position_embedding;  // (D), (D,3,p,p), (positions, D)
  std::shared_ptr<LayerNorm> pre_layrnorm;  // sic: transformers' spelling, kept for the weight names
  std::vector<std::shared_ptr<ClipEncoderLayer>> layers;

 private:
  ClipVisionConfig config_;
  bool checkpointing_ = false;
};

// Rules below the CLIP vision model's root on both sides ("encoder.layers.{L}.self_attn.q_proj.weight").
const WeightMap& clip_vision_weight_map();

}  // namespace unime::model
