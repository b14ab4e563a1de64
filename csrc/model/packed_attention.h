// Attention over packed sequences: the real tokens of a batch concatenated without padding, so
// projections and MLPs never compute on padding (a mixed-length batch is often half padding).
// Causal within each sequence for decoders; bidirectional within each sequence (block-diagonal)
// for vision towers whose images of a batch are packed the same way.
#pragma once

#include <ATen/core/Tensor.h>
#include <optional>
#include <vector>

namespace unime::model {

// The layout of B packed sequences. Sequence b holds tokens [offsets[b], offsets[b+1]).
struct PackedSequences {
  std::vector<int64_t> offsets;  // (B+1) on the host
  at::Tensor cu_seqlens;         // (B+1,) int32 on the device (flash attention's varlen form)
  at::Tensor positions;          // (T,) int64 on the device: index of each token in its sequence
  at::Tensor token_index;        // (T,) int64: flat index of each real token in the padded (B, L) batch
  at::Tensor last_index;         // (B,) int64 on the device: packed index of each sequence's last token
  int64_t max_len = 0;
  int64_t batch() const { return static_cast<int64_t>(offsets.size()) - 1; }
};

// Reads the layout from a (B, L) attention mask whose real tokens form one run per row (left,
// right or no padding). A row without tokens, or with a hole in its run, is an InvalidInputError
// naming the row.
PackedSequences pack_sequences(const at::Tensor& attention_mask, c10::Device device);

// The same layout from sequence lengths (all positive).
PackedSequences pack_lengths(const std::vector<int64_t>& lengths, c10::Device device);

// Which keys a query sees within its sequence.
struct AttentionMaskSpec {
  bool causal = true;                     // keys j <= i only; false: every key of the sequence
  std::optional<int64_t> sliding_window;  // causal only: keys with i - j < window
  // Queries per block of the sliding-window path (0: chosen so one block's scores stay under
  // kAttentionBlockBytes). Tests set it small to compare blocked and unblocked results.
  int64_t query_block = 0;
};

// Memory bound of one query block's attention scores on the paths that need a mask: attention
// memory grows linearly with sequence length, never with its square.
constexpr int64_t kAttentionBlockBytes = int64_t{64} << 20;

// q: (Tq, H, d), k and v: (T, Hkv, d) packed; H a multiple of Hkv. Attention within each sequence
// as `mask` says (never across sequences).
// last_only (causal only): q holds one query per sequence, the sequence's last token (Tq = B),
// which sees every key of its sequence (within the window): the last decoder layer only needs those rows.
// Returns (Tq, H, d). On CUDA one varlen call for the whole batch: flash attention for fp16/bf16,
// the memory-efficient kernel for fp32 unless a sliding window is shorter than the longest sequence
// (head sizes a multiple of 8, up to 256). Otherwise per-sequence scaled_dot_product_attention (on CPU its
// flash kernel: online softmax over key blocks, memory linear in length, or unime's AVX512-BF16
// kernel); there a sliding window shorter than a sequence runs in query blocks that each see only
// their band of keys. All paths are differentiable.
at::Tensor packed_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const PackedSequences& packed, const AttentionMaskSpec& mask, bool last_only, double scale);

// Process-wide switch (default on) for the CUDA varlen calls above, so tests and benchmarks can
// compare them with the per-sequence loop on the same device. Returns the previous setting.
bool set_cuda_varlen_attention_enabled(bool enabled);

}  // namespace unime::model
