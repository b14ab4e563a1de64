// Parameter-holding building blocks shared by every backbone: Linear (with optional LoRA adapters),
// Embedding, RMSNorm, LayerNorm.
//
// Parameters start as placeholders of the right shape that own no memory (a broadcast scalar), so a
// 7B model is not allocated and randomly initialised before its checkpoint replaces every tensor;
// checkpoint_loader.cc checks each shape and swaps the real tensor in with set_data().
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

namespace unime::model {

// A (shape)-sized tensor without storage; loading replaces it.
at::Tensor placeholder(at::IntArrayRef shape);
// True for a parameter that is still a placeholder (never loaded or initialised).
bool is_placeholder(const at::Tensor& t);

// LoRA hyper-parameters, as PEFT's LoraConfig names them.
struct LoraConfig {
  int64_t rank = 8;         // r
  double alpha = 8.0;       // lora_alpha
  double dropout = 0.0;     // lora_dropout, on the adapter's input only, in training mode
  bool use_rslora = false;  // scaling alpha / sqrt(r) instead of alpha / r
  std::string init =
      "kaiming";  // A: "kaiming" (PEFT's default, U(-1/sqrt(in), 1/sqrt(in))) or "gaussian" (N(0, 1/r)); B = 0
  double scaling() const;
  void validate() const;  // InvalidInputError naming the bad field
};

// y = x W^T + b (+ scaling * B(A(dropout(x))) with an adapter). weight: (out, in) as Hugging Face
// stores it; bias: (out,) or undefined. Fused projections (Phi-3's qkv_proj, gate_up_proj) are one
// Linear, so an adapter on them is one A and one B, exactly as PEFT puts it there.
//
// The adapter is two submodules "lora_A" (weight (r, in)) and "lora_B" (weight (out, r)), so its
// parameter paths are "<linear>.lora_A.weight" and "<linear>.lora_B.weight": PEFT's saved names.
class Linear : public torch::nn::Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias);
  at::Tensor forward(const at::Tensor& x) const;

  // Attaches an adapter in `dtype` on the weight's device (the weight must be loaded). `generator`
  // (may be undefined: the default one) draws A. The base weight and bias stay frozen.
  void add_lora(const LoraConfig& config, at::ScalarType dtype, const at::Generator& generator = {});
  bool has_lora() const { return static_cast<bool>(lora_A); }
  // W += scaling * B A (in float32, rounded once to W's dtype), after which forward() skips the
  // adapter; unmerge() subtracts it again. Both are no-ops in the state they produce.
  void merge();
  void unmerge();
  bool merged() const { return merged_; }
  const LoraConfig& lora_config() const { return lora_config_; }
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

  at::Tensor weight, bias;
  std::shared_ptr<Linear> lora_A, lora_B;

 private:
  at::Tensor delta_weight() const;  // scaling * B A in float32
  int64_t in_features_, out_features_;
  LoraConfig lora_config_;
  bool merged_ = false;
};

// Token embedding table. weight: (vocab, hidden).
class Embedding : public torch::nn::Module {
 public:
  Embedding(int64_t num_embeddings, int64_t dim);
  at::Tensor forward(const at::Tensor& ids) const;
  at::Tensor weight;
};

// RMSNorm through the unime::rms_norm op (fp32 statistics, cast back before the weight).
class RMSNorm : public torch::nn::Module {
 public:
  RMSNorm(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor weight;
  double eps;
};

class LayerNorm : public torch::nn::Module {
 public:
  LayerNorm(int64_t dim, double eps);
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor weight, bias;
  double eps;
};

}  // namespace unime::model
