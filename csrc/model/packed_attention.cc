#include "model/packed_attention.h"

#include <ATen/ATen.h>
#include <algorithm>

#include "core/errors.h"
#include "ops/cpu/attention_cpu.h"

namespace unime::model {

PackedSequences pack_sequences(const at::Tensor& attention_mask, c10::Device device) {
  TORCH_CHECK_VALUE(attention_mask.dim() == 2, "attention_mask must be (batch, length), got ", attention_mask.sizes());
  auto real = attention_mask.ne(0).to(at::kCPU).contiguous();
  const auto B = real.size(0), L = real.size(1);
  auto r = real.accessor<bool, 2>();
  std::vector<int64_t> token_index, lengths;
  for (int64_t b = 0; b < B; ++b) {
    int64_t first = -1, last = -1;
    for (int64_t j = 0; j < L; ++j)
      if (r[b][j]) {
        if (first < 0) first = j;
        last = j;
      }
    if (first < 0) throw InvalidInputError("attention_mask row " + std::to_string(b) + " has no real token");
    for (int64_t j = first; j <= last; ++j) {
      if (!r[b][j])
        throw InvalidInputError("attention_mask row " + std::to_string(b) + " has padding inside its tokens (column " +
                                std::to_string(j) + "); only left or right padding is supported");
      token_index.push_back(b * L + j);
    }
    lengths.push_back(last - first + 1);
  }
  // The layout of these lengths; only the tokens' places in the padded batch are ours.
  auto packed = pack_lengths(lengths, device);
  packed.token_index = at::tensor(token_index, at::kLong).to(device);
  return packed;
}

PackedSequences pack_lengths(const std::vector<int64_t>& lengths, c10::Device device) {
  PackedSequences p;
  p.offsets.reserve(lengths.size() + 1);
  p.offsets.push_back(0);
  std::vector<int64_t> positions;
  for (size_t b = 0; b < lengths.size(); ++b) {
    TORCH_CHECK_VALUE(lengths[b] > 0, "sequence ", b, " has length ", lengths[b], "; lengths must be positive");
    for (int64_t j = 0; j < lengths[b]; ++j) positions.push_back(j);
    p.offsets.push_back(p.offsets.back() + lengths[b]);
    p.max_len = std::max(p.max_len, lengths[b]);
  }
  auto on = [&](std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(device); };
  p.positions = on(positions);
  std::vector<int64_t> token_index(static_cast<size_t>(p.offsets.back()));
  for (size_t i = 0; i < token_index.size(); ++i) token_index[i] = static_cast<int64_t>(i);
  p.token_index = on(token_index);
  std::vector<int64_t> last_index(p.offsets.begin() + 1, p.offsets.end());
  for (auto& i : last_index) --i;
  p.last_index = on(last_index);
  p.cu_seqlens = at::tensor(p.offsets, at::kLong).to(at::kInt).to(device);
  return p;
}

namespace {

bool use_flash(const at::Tensor& q) {
  const auto t = q.scalar_type();
  return q.is_cuda() && (t == at::kHalf || t == at::kBFloat16) && q.size(-1) % 8 == 0 && q.size(-1) <= 256;
}

at::Tensor repeat_heads(const at::Tensor& x, int64_t rep) {  // (1, Hkv, n, d) -> (1, Hkv*rep, n, d)
  if (rep == 1) return x;
  auto s = x.sizes();
  return x.unsqueeze(2).expand({s[0], s[1], rep, s[2], s[3]}).reshape({s[0], s[1] * rep, s[2], s[3]});
}

at::Tensor flash_varlen(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const PackedSequences& p,
                        const AttentionMaskSpec& mask, bool last_only, double scale) {
  // Flash aligns the causal mask to the bottom right, so a single query per sequence (last_only)
  // sees all its keys; the window is left-sided: keys j >= i - (window - 1).
  auto cu_q = last_only ? at::arange(p.batch() + 1, p.cu_seqlens.options()) : p.cu_seqlens;
  std::optional<int64_t> left, right;
  if (mask.causal && mask.sliding_window) left = *mask.sliding_window - 1, right = 0;
  auto out = at::_flash_attention_forward(q.contiguous(), k.contiguous(), v.contiguous(), cu_q, p.cu_seqlens,
                                          last_only ? 1 : p.max_len, p.max_len, 0.0, mask.causal,
                                          /*return_debug_mask=*/false, scale, left, right);
  return std::get<0>(out);
}

// Causal sliding-window attention over one sequence (1, H, n, d) in query blocks: block [qs, qe)
// sees keys [qs - window + 1, qe) only, through a (block, keys) mask. Each query's softmax runs over
// all its keys at once, so the result equals the unblocked one; memory is O(block * (window + block))
// where a dense (n, n) mask and its scores would need O(n^2) (80 GB for a 32k-token Mistral input).
at::Tensor banded_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window,
                            int64_t query_block, double scale) {
  const int64_t n = q.size(2), heads = q.size(1);
  int64_t block = query_block;
  if (block <= 0) {  // the largest block whose fp32 scores (heads, block, window + block) fit the budget
    block = 16;
    while (block * 2 <= n && heads * (block * 2) * (window + block * 2) * 4 <= kAttentionBlockBytes) block *= 2;
  }
  const auto index = at::TensorOptions().dtype(at::kLong).device(q.device());
  std::vector<at::Tensor> outs;
  outs.reserve(static_cast<size_t>((n + block - 1) / block));
  for (int64_t qs = 0; qs < n; qs += block) {
    const int64_t qe = std::min(n, qs + block), ks = std::max<int64_t>(0, qs - window + 1);
    auto i = at::arange(qs, qe, index).unsqueeze(1), j = at::arange(ks, qe, index).unsqueeze(0);
    auto allowed = (j <= i) & ((i - j) < window);
    outs.push_back(at::scaled_dot_product_attention(q.narrow(2, qs, qe - qs), k.narrow(2, ks, qe - ks),
                                                    v.narrow(2, ks, qe - ks), allowed, 0.0, false, scale));
  }
  return outs.size() == 1 ? outs[0] : at::cat(outs, 2);
}

at::Tensor per_sequence_sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const PackedSequences& p,
                             const AttentionMaskSpec& mask, bool last_only, double scale) {
  const auto window = mask.causal ? mask.sliding_window : std::nullopt;
  const auto rep = q.size(1) / k.size(1);
  const bool cpu_bf16 = ops::cpu_bf16_attention_applies(q, k, v);  // the AVX512-BF16 kernel takes every sequence
  std::vector<at::Tensor> outs;
  outs.reserve(p.batch());
  for (int64_t b = 0; b < p.batch(); ++b) {
    const int64_t s = p.offsets[b], e = p.offsets[b + 1], n = e - s;
    if (last_only) {
      // One query that sees keys [max(s, e - window), e): no mask needed.
      const int64_t ks = window ? std::max(s, e - *window) : s;
      if (cpu_bf16) {
        outs.push_back(
            ops::cpu_bf16_attention(q.narrow(0, b, 1), k.narrow(0, ks, e - ks), v.narrow(0, ks, e - ks), false, scale));
        continue;
      }
      auto qb = q.narrow(0, b, 1).transpose(0, 1).unsqueeze(0);  // (1, H, 1, d)
      auto kb = repeat_heads(k.narrow(0, ks, e - ks).transpose(0, 1).unsqueeze(0), rep);
      auto vb = repeat_heads(v.narrow(0, ks, e - ks).transpose(0, 1).unsqueeze(0), rep);
      outs.push_back(at::scaled_dot_product_attention(qb, kb, vb, {}, 0.0, false, scale).squeeze(0).transpose(0, 1));
      continue;
    }
    const bool banded = window && n > *window;
    if (!banded && cpu_bf16) {
      outs.push_back(
          ops::cpu_bf16_attention(q.narrow(0, s, n), k.narrow(0, s, n), v.narrow(0, s, n), mask.causal, scale));
      continue;
    }
    auto qb = q.narrow(0, s, n).transpose(0, 1).unsqueeze(0);  // (1, H, n, d)
    auto kb = repeat_heads(k.narrow(0, s, n).transpose(0, 1).unsqueeze(0), rep);
    auto vb = repeat_heads(v.narrow(0, s, n).transpose(0, 1).unsqueeze(0), rep);
    at::Tensor out = banded ? banded_attention(qb, kb, vb, *window, mask.query_block, scale)
                            : at::scaled_dot_product_attention(qb, kb, vb, {}, 0.0, mask.causal, scale);
    outs.push_back(out.squeeze(0).transpose(0, 1));  // (n, H, d)
  }
  return at::cat(outs, 0);
}

}  // namespace

at::Tensor packed_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const PackedSequences& packed, const AttentionMaskSpec& mask, bool last_only,
                            double scale) {
  TORCH_CHECK_VALUE(!last_only || mask.causal, "packed_attention: last_only needs causal attention");
  TORCH_CHECK_VALUE(q.dim() == 3 && k.dim() == 3 && v.sizes() == k.sizes() && q.size(2) == k.size(2) && k.size(1) > 0 &&
                        q.size(1) % k.size(1) == 0,
                    "packed_attention: expected q (Tq, H, d), k and v (T, Hkv, d) with H a multiple of Hkv, got q ",
                    q.sizes(), ", k ", k.sizes(), ", v ", v.sizes());
  TORCH_CHECK_VALUE(k.size(0) == packed.offsets.back() && q.size(0) == (last_only ? packed.batch() : k.size(0)),
                    "packed_attention: ", packed.offsets.back(), " packed tokens in ", packed.batch(),
                    " sequences, got q ", q.sizes(), " and k ", k.sizes());
  if (use_flash(q)) return flash_varlen(q, k, v, packed, mask, last_only, scale);
  return per_sequence_sdpa(q, k, v, packed, mask, last_only, scale);
}

}  // namespace unime::model
