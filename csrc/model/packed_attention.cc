#include "model/packed_attention.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <algorithm>
#include <atomic>

#include "core/errors.h"
#include "ops/cpu/attention_cpu.h"

namespace unime::model {

namespace {

// Lays out sequences of these lengths; token_index: each token's place in a padded batch (null: the
// tokens are already packed, so the identity). All index arrays reach the device in one copy, on a GPU
// from pinned memory without blocking: a pageable copy would make the host wait for the GPU's queue
// at every batch (and mid-forward, where a vision tower packs its images).
PackedSequences pack(const std::vector<int64_t>& lengths, const std::vector<int64_t>* token_index, c10::Device device) {
  PackedSequences p;
  const auto B = static_cast<int64_t>(lengths.size());
  p.offsets.reserve(lengths.size() + 1);
  p.offsets.push_back(0);
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK_VALUE(lengths[b] > 0, "sequence ", b, " has length ", lengths[b], "; lengths must be positive");
    p.offsets.push_back(p.offsets.back() + lengths[b]);
    p.max_len = std::max(p.max_len, lengths[b]);
  }
  const int64_t T = p.offsets.back();
  // One host buffer: positions (T) | token_index (T) | last_index (B) | offsets (B + 1).
  auto host = at::empty({2 * T + 2 * B + 1}, at::TensorOptions().dtype(at::kLong).pinned_memory(device.is_cuda()));
  int64_t* out = host.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < lengths[b]; ++j) *out++ = j;
  for (int64_t i = 0; i < T; ++i) *out++ = token_index ? (*token_index)[static_cast<size_t>(i)] : i;
  for (int64_t b = 0; b < B; ++b) *out++ = p.offsets[static_cast<size_t>(b) + 1] - 1;
  std::copy(p.offsets.begin(), p.offsets.end(), out);
  auto all = host.to(device, /*non_blocking=*/true);
  p.positions = all.narrow(0, 0, T);
  p.token_index = all.narrow(0, T, T);
  p.last_index = all.narrow(0, 2 * T, B);
  p.cu_seqlens = all.narrow(0, 2 * T + B, B + 1).to(at::kInt);
  return p;
}

}  // namespace

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
  return pack(lengths, &token_index, device);
}

PackedSequences pack_lengths(const std::vector<int64_t>& lengths, c10::Device device) {
  return pack(lengths, nullptr, device);
}

namespace {

std::atomic<bool> g_cuda_varlen{true};

bool use_flash(const at::Tensor& q) {
  const auto t = q.scalar_type();
  return q.is_cuda() && (t == at::kHalf || t == at::kBFloat16) && q.size(-1) % 8 == 0 && q.size(-1) <= 256;
}

// fp32 (training in fp32, exact comparisons) through the memory-efficient kernel, as one varlen call
// instead of one call per sequence. Its sliding window is not used here: a window shorter than the
// longest sequence takes the loop.
bool use_efficient(const at::Tensor& q, const PackedSequences& p, const AttentionMaskSpec& mask) {
  const bool window_cuts = mask.causal && mask.sliding_window && *mask.sliding_window < p.max_len;
  return q.is_cuda() && q.scalar_type() == at::kFloat && q.size(-1) % 8 == 0 && q.size(-1) <= 256 && !window_cuts;
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

at::Tensor efficient_varlen(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const PackedSequences& p,
                            const AttentionMaskSpec& mask, bool last_only, double scale) {
  // The kernel wants as many key heads as query heads: (T, Hkv, d) -> (T, H, d), head h reading
  // key head h / rep as repeat_heads does.
  const auto rep = q.size(1) / k.size(1);
  auto widen = [&](const at::Tensor& x) {
    if (rep == 1) return x.contiguous();
    return x.unsqueeze(2).expand({x.size(0), x.size(1), rep, x.size(2)}).reshape({x.size(0), q.size(1), x.size(2)});
  };
  // Masks: 1 is causal from the top left, each query i of a sequence seeing its keys j <= i. A
  // sequence's last token alone (last_only) sees every key of its sequence: no mask (0).
  const int64_t mask_type = mask.causal && !last_only ? 1 : 0;
  auto cu_q = last_only ? at::arange(p.batch() + 1, p.cu_seqlens.options()) : p.cu_seqlens;
  const bool backward = at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  auto out = at::_efficient_attention_forward(q.contiguous().unsqueeze(0), widen(k).unsqueeze(0), widen(v).unsqueeze(0),
                                              std::nullopt, cu_q, p.cu_seqlens, last_only ? 1 : p.max_len, p.max_len,
                                              0.0, mask_type,
                                              /*compute_log_sumexp=*/backward, scale);
  return std::get<0>(out).squeeze(0);
}

// Causal sliding-window attention over one sequence (1, H, n, d) in query blocks: block [qs, qe)
// sees keys [qs - window + 1, qe) only, through a (block, keys) mask. Each query's softmax runs over
// all its keys at once, so the result equals the unblocked one; memory is O(block * (window + block))
// where a dense (n, n) mask and its scores would need O(n^2) (80 GB for a 32k-token Mistral input).
at::Tensor banded_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window,
                            int64_t query_block, double scale, bool gqa) {
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
                                                    v.narrow(2, ks, qe - ks), allowed, 0.0, false, scale, gqa));
  }
  return outs.size() == 1 ? outs[0] : at::cat(outs, 2);
}

at::Tensor per_sequence_sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const PackedSequences& p,
                             const AttentionMaskSpec& mask, bool last_only, double scale) {
  const auto window = mask.causal ? mask.sliding_window : std::nullopt;
  const auto rep = q.size(1) / k.size(1);
  const bool cpu_bf16 = ops::cpu_bf16_attention_applies(q, k, v);  // the AVX512-BF16 kernel takes every sequence
  // torch's CPU kernels read a shared key/value head for each of its query heads (enable_gqa) where
  // repeating K and V would copy them per sequence (a third of fp32 encoding's copies).
  const bool gqa = rep > 1 && q.device().is_cpu();
  auto heads = [&](const at::Tensor& x) { return gqa ? x : repeat_heads(x, rep); };
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
      auto kb = heads(k.narrow(0, ks, e - ks).transpose(0, 1).unsqueeze(0));
      auto vb = heads(v.narrow(0, ks, e - ks).transpose(0, 1).unsqueeze(0));
      outs.push_back(
          at::scaled_dot_product_attention(qb, kb, vb, {}, 0.0, false, scale, gqa).squeeze(0).transpose(0, 1));
      continue;
    }
    const bool banded = window && n > *window;
    if (!banded && cpu_bf16) {
      outs.push_back(
          ops::cpu_bf16_attention(q.narrow(0, s, n), k.narrow(0, s, n), v.narrow(0, s, n), mask.causal, scale));
      continue;
    }
    auto qb = q.narrow(0, s, n).transpose(0, 1).unsqueeze(0);  // (1, H, n, d)
    auto kb = heads(k.narrow(0, s, n).transpose(0, 1).unsqueeze(0));
    auto vb = heads(v.narrow(0, s, n).transpose(0, 1).unsqueeze(0));
    at::Tensor out = banded ? banded_attention(qb, kb, vb, *window, mask.query_block, scale, gqa)
                            : at::scaled_dot_product_attention(qb, kb, vb, {}, 0.0, mask.causal, scale, gqa);
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
  if (q.is_cuda() && at::autocast::is_autocast_enabled(at::kCUDA)) {
    // Under CUDA autocast the projections come out in the autocast dtype but the rotary's fp32
    // tables promote q and k back to fp32. scaled_dot_product_attention (the loop) casts fp32 inputs
    // to the autocast dtype; the varlen kernels have no autocast rule and read q, k and v as q's
    // dtype, so the cast happens here.
    const auto low = at::autocast::get_autocast_dtype(at::kCUDA);
    auto cast = [low](const at::Tensor& x) { return x.scalar_type() == at::kFloat ? x.to(low) : x; };
    if (q.scalar_type() == at::kFloat || k.scalar_type() == at::kFloat || v.scalar_type() == at::kFloat)
      return packed_attention(cast(q), cast(k), cast(v), packed, mask, last_only, scale);
  }
  const bool one_dtype = k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type();
  if (g_cuda_varlen.load() && one_dtype) {
    if (use_flash(q)) return flash_varlen(q, k, v, packed, mask, last_only, scale);
    if (use_efficient(q, packed, mask)) return efficient_varlen(q, k, v, packed, mask, last_only, scale);
  }
  return per_sequence_sdpa(q, k, v, packed, mask, last_only, scale);
}

bool set_cuda_varlen_attention_enabled(bool enabled) { return g_cuda_varlen.exchange(enabled); }

}  // namespace unime::model
