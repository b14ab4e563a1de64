// Parameter-holding building blocks shared by every backbone: Linear, Embedding, RMSNorm.
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

// y = x W^T + b. weight: (out, in) as Hugging Face stores it; bias: (out,) or undefined.
class Linear : public torch::nn::Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias);
  at::Tensor forward(const at::Tensor& x) const;
  at::Tensor weight, bias;
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

}  // namespace unime::model
