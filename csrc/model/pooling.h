// Pooling of decoder hidden states into one embedding per sequence.
#pragma once

#include <ATen/core/Tensor.h>

namespace unime::model {

// Index of the last real token of each row: (B,) int64. attention_mask: (B, L), nonzero = real.
// Works for left padding (always L-1), right padding (sum(mask)-1) and any mix. A row without a
// real token is an InvalidInputError naming the row.
at::Tensor last_token_indices(const at::Tensor& attention_mask);

// hidden: (B, L, D) -> (B, D): the hidden state at each row's last real token, L2-normalised as
// torch.nn.functional.normalize does (x / max(||x||, 1e-12), in the input dtype) when `normalize`.
at::Tensor last_token_pool(const at::Tensor& hidden, const at::Tensor& attention_mask, bool normalize);

// x / max(||x||_2, 1e-12) along the last dimension, in x's dtype (torch.nn.functional.normalize).
at::Tensor l2_normalize(const at::Tensor& x);

}  // namespace unime::model
