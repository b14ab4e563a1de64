// Activation checkpointing for training: run a block without keeping its activations, and recompute
// them in the backward pass (memory per layer: the block's input only). LibTorch has no C++
// checkpoint utility, so this is the reentrant form: the backward recomputes the block with the RNG
// state of the forward (so dropout draws the same masks), backpropagates through the recomputed
// graph, which accumulates parameter gradients (LoRA weights) directly, and returns the input's
// gradient.
#pragma once

#include <ATen/core/Tensor.h>
#include <functional>

namespace unime::model {

// fn(x) under checkpointing when gradients are enabled and x requires grad; plain fn(x) otherwise.
// fn must be a pure function of x and module parameters (it is called twice) and own everything it
// captures: the second call happens in the backward pass, after the caller has returned.
at::Tensor checkpointed(const std::function<at::Tensor(const at::Tensor&)>& fn, const at::Tensor& x);

}  // namespace unime::model
