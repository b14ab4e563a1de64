#include "train/grad_cache.h"

#include <ATen/ATen.h>
#include <limits>

namespace unime::train {

RngState capture_rng(c10::Device device) {
  RngState s;
  s.cpu = at::globalContext().defaultGenerator(at::kCPU).get_state();
  if (!device.is_cpu()) s.device = at::globalContext().defaultGenerator(device).get_state();
  return s;
}

void restore_rng(const RngState& state, c10::Device device) {
  at::Generator cpu = at::globalContext().defaultGenerator(at::kCPU);
  cpu.set_state(state.cpu);
  if (state.device.defined()) {
    at::Generator g = at::globalContext().defaultGenerator(device);
    g.set_state(state.device);
  }
}

SideEncoder::SideEncoder(const model::EmbeddingModel& model, model::ProcessOptions options, int64_t chunk_size)
    : model_(model), options_(std::move(options)), chunk_size_(chunk_size) {}

at::Tensor SideEncoder::embed_chunk(const std::vector<model::EncodeInput>& inputs, size_t begin, size_t end,
                                    std::vector<core::ItemError>* errors) const {
  std::vector<model::EncodeInput> chunk(inputs.begin() + static_cast<std::ptrdiff_t>(begin),
                                        inputs.begin() + static_cast<std::ptrdiff_t>(end));
  model::ProcessedBatch processed;
  auto emb = model_.encode_inputs(chunk, options_, /*normalize=*/true, &processed).to(at::kFloat);
  if (processed.errors.empty()) return emb;
  // Refused inputs become NaN rows so that rows stay aligned with inputs.
  if (errors)
    for (auto e : processed.errors) {
      e.index += begin;
      errors->push_back(std::move(e));
    }
  auto out = at::full({static_cast<int64_t>(chunk.size()), model_.hidden_size()},
                      std::numeric_limits<float>::quiet_NaN(), emb.options());
  if (!processed.rows.empty()) out = out.index_put({at::tensor(processed.rows, at::kLong).to(emb.device())}, emb);
  return out;
}

at::Tensor SideEncoder::embed(const std::vector<model::EncodeInput>& inputs, std::vector<core::ItemError>* errors) {
  rng_states_.clear();
  if (!chunks(inputs.size())) return embed_chunk(inputs, 0, inputs.size(), errors);
  std::vector<at::Tensor> parts;
  {
    at::NoGradGuard no_grad;
    for (size_t b = 0; b < inputs.size(); b += static_cast<size_t>(chunk_size_)) {
      auto rng = capture_rng(model_.device());
      rng_states_.push_back(rng.cpu);
      rng_states_.push_back(rng.device);
      parts.push_back(embed_chunk(inputs, b, std::min(inputs.size(), b + static_cast<size_t>(chunk_size_)), errors));
    }
  }
  return at::cat(parts, 0).requires_grad_(true);
}

void SideEncoder::backward_chunks(const std::vector<model::EncodeInput>& inputs, const at::Tensor& embeddings,
                                  const std::function<void()>& before_last) {
  if (!chunks(inputs.size())) return;
  const auto& grad = embeddings.grad();
  if (!grad.defined()) return;  // the loss did not use this side
  const auto end_state = capture_rng(model_.device());
  for (size_t c = 0, b = 0; b < inputs.size(); ++c, b += static_cast<size_t>(chunk_size_)) {
    const size_t e = std::min(inputs.size(), b + static_cast<size_t>(chunk_size_));
    restore_rng({rng_states_[2 * c], rng_states_[2 * c + 1]}, model_.device());
    auto emb = embed_chunk(inputs, b, e, nullptr);
    auto g = grad.narrow(0, static_cast<int64_t>(b), static_cast<int64_t>(e - b));
    // Refused inputs (NaN rows) carry no gradient: their rows are masked out of the surrogate.
    auto valid = emb.isnan().any(1).logical_not().unsqueeze(1);
    auto surrogate = (at::where(valid, emb, 0.0) * at::where(valid, g, 0.0)).sum();
    if (e == inputs.size() && before_last) before_last();
    if (surrogate.requires_grad()) surrogate.backward();
  }
  restore_rng(end_state, model_.device());
}

}  // namespace unime::train
