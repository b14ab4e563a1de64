// Embedding a side of a batch (texts, queries, positives, candidates) for a loss over the whole
// batch, with activation memory bounded by a chunk (GradCache, Gao et al. 2021; VLM2Vec's trainer):
//   pass 1: every chunk embedded without autograd, its RNG state recorded;
//   the loss runs on all the embeddings (leaf tensors) and backpropagates to them;
//   pass 2: each chunk re-embedded with autograd under its recorded RNG state (same dropout
//           masks) and backpropagated with its slice of the cached gradient: dot(emb, grad).
// The parameter gradients equal the unchunked step's (to float rounding); memory holds one
// chunk's activations and the (n, d) embeddings. chunk_size 0 (or >= n) embeds in one pass with
// the graph kept, which the loss's backward then runs through directly.
#pragma once

#include <ATen/core/Tensor.h>
#include <functional>
#include <vector>

#include "core/util/parallel.h"
#include "model/embedding_model.h"

namespace unime::train {

class SideEncoder {
 public:
  SideEncoder(const model::EmbeddingModel& model, model::ProcessOptions options, int64_t chunk_size);

  // (n, d) float32 L2-normalised embeddings. With chunking they are a leaf that requires grad (call
  // backward_chunks after the loss's backward); without, they carry the graph. Inputs the processor
  // refuses (options.skip_errors) get NaN rows and are listed in *errors (indices into `inputs`).
  at::Tensor embed(const std::vector<model::EncodeInput>& inputs, std::vector<core::ItemError>* errors);
  // Pass 2 for the inputs embed() chunked, with the gradient the loss left on its result.
  // `before_last` (if set) runs right before the last chunk's backward (the trainer starts its
  // overlapped gradient reduction there).
  void backward_chunks(const std::vector<model::EncodeInput>& inputs, const at::Tensor& embeddings,
                       const std::function<void()>& before_last = {});
  bool chunks(size_t n) const { return chunk_size_ > 0 && static_cast<int64_t>(n) > chunk_size_; }

 private:
  at::Tensor embed_chunk(const std::vector<model::EncodeInput>& inputs, size_t begin, size_t end,
                         std::vector<core::ItemError>* errors) const;
  const model::EmbeddingModel& model_;
  model::ProcessOptions options_;
  int64_t chunk_size_;
  std::vector<at::Tensor> rng_states_;  // the CPU (and device) generator state before each chunk of pass 1
};

// Runs `fn` with the default generators of the CPU and of `device` set to `state` (from
// capture_rng), restoring their states afterwards.
struct RngState {
  at::Tensor cpu, device;
};
RngState capture_rng(c10::Device device);
void restore_rng(const RngState& state, c10::Device device);

}  // namespace unime::train
