#include "model/pooling.h"

#include <ATen/ATen.h>

#include "core/errors.h"

namespace unime::model {

at::Tensor last_token_indices(const at::Tensor& attention_mask) {
  TORCH_CHECK_VALUE(attention_mask.dim() == 2, "attention_mask must be (batch, length), got ", attention_mask.sizes());
  auto real = attention_mask.ne(0);
  auto has_token = real.any(1);
  if (!has_token.all().item<bool>()) {
    auto row = (~has_token).nonzero().flatten()[0].item<int64_t>();
    throw InvalidInputError("attention_mask row " + std::to_string(row) + " has no real token");
  }
  auto positions =
      at::arange(attention_mask.size(1), at::TensorOptions().dtype(at::kLong).device(attention_mask.device()));
  return (positions.unsqueeze(0) * real.to(at::kLong)).amax(1);
}

at::Tensor last_token_pool(const at::Tensor& hidden, const at::Tensor& attention_mask, bool normalize) {
  auto idx = last_token_indices(attention_mask.to(hidden.device()));
  auto pooled = hidden.gather(1, idx.view({-1, 1, 1}).expand({hidden.size(0), 1, hidden.size(2)})).squeeze(1);
  return normalize ? l2_normalize(pooled) : pooled;
}

at::Tensor l2_normalize(const at::Tensor& x) { return x / x.norm(2, -1, /*keepdim=*/true).clamp_min(1e-12); }

}  // namespace unime::model
