// Qwen2-VL (Qwen2VLForConditionalGeneration, transformers 4.48; GME, VLM2Vec-Qwen2VL, UniME-V2) as a
// Backbone (backbones.md section C): the vision transformer (patch embedding, 2-D rotary positions,
// block-diagonal attention over each image's patches, the 2 x 2 patch merger) -> features written at
// the <|image_pad|> tokens -> the Qwen2 decoder with M-RoPE over 3-D (temporal, height, width)
// positions computed as transformers' get_rope_index does.
#pragma once

#include <array>
#include <nlohmann/json_fwd.hpp>

#include "model/backbone.h"
#include "model/decoder.h"
#include "model/layers.h"

namespace unime::model {

struct Qwen2VisionConfig {
  int64_t depth = 32, embed_dim = 1280, num_heads = 16, mlp_hidden = 5120, hidden_size = 3584;
  int64_t in_channels = 3, patch_size = 14, temporal_patch_size = 2, spatial_merge_size = 2;
  std::string hidden_act = "quick_gelu";  // "quick_gelu" | "gelu"
  static Qwen2VisionConfig from_json(const nlohmann::json& json, const std::string& source);
  int64_t patch_dim() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
};

struct Qwen2VLModelConfig {
  DecoderConfig text;
  Qwen2VisionConfig vision;
  int64_t image_token_id = 151655, vision_start_token_id = 151652;
  static Qwen2VLModelConfig from_json(const nlohmann::json& json, const std::string& source);
};

// An image's (temporal, height, width) grid of 14-px patches (image_grid_thw).
using GridTHW = std::array<int64_t, 3>;

// transformers 4.48's Qwen2VLForConditionalGeneration.get_rope_index for images: (3, B, L) int64.
// Per row, over its real tokens: an image counts only where <|vision_start|> is directly followed by
// the image token; text runs take consecutive positions on all three axes, an image's run takes
// (t, h / merge, w / merge) grid coordinates offset by the text before it, and what follows
// continues from the largest position + 1; a prompt with a bare <|image_pad|> (no <|vision_start|>:
// UniME-V2's and VLM2Vec's MMEB form) gets 1-D positions, as in transformers. Padding positions are 1.
// Without grids: cumsum(mask) - 1 on all three axes. One difference, on purpose: transformers hands
// the batch's grids only to counted images, so a bare-<|image_pad|> row shifts the grids of the image
// rows after it in the same batch (their positions then depend on the batch); here each row takes
// the grids of its own image runs, which equals transformers on every batch it computes
// batch-invariantly and keeps every row batch-invariant.
at::Tensor qwen2_vl_rope_index(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                               const std::vector<GridTHW>& grids, int64_t image_token_id, int64_t vision_start_token_id,
                               int64_t spatial_merge_size);

class Qwen2VisionBlock : public torch::nn::Module {
 public:
  explicit Qwen2VisionBlock(const Qwen2VisionConfig& c);
  // x: (S, embed_dim) packed patches of all images; rotary angles (S, head_dim / 2) fp32.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& angles, const PackedSequences& images) const;
  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<torch::nn::Module> attn, mlp;
  std::shared_ptr<Linear> qkv, proj, fc1, fc2;  // attn.qkv, attn.proj, mlp.fc1, mlp.fc2

 private:
  int64_t num_heads_, head_dim_;
  bool quick_gelu_;
};

class Qwen2VisionTower : public torch::nn::Module {
 public:
  explicit Qwen2VisionTower(const Qwen2VisionConfig& c);
  // pixel_values: (S, patch_dim) rows of all images in order; grids: each image's (t, h, w).
  // Returns the merged features (S / merge^2, hidden_size).
  at::Tensor forward(const at::Tensor& pixel_values, const std::vector<GridTHW>& grids) const;
  void set_gradient_checkpointing(bool on) { checkpointing_ = on; }

  // Module paths are Hugging Face's below "visual.": patch_embed.proj.weight (embed_dim, C, tp, p, p), a
  // Conv3d with stride = kernel, i.e. a linear map of each patch row; blocks.N; merger.ln_q,
  // merger.mlp.0 and merger.mlp.2.
  at::Tensor patch_weight;
  std::vector<std::shared_ptr<Qwen2VisionBlock>> blocks;
  std::shared_ptr<LayerNorm> ln_q;
  std::shared_ptr<Linear> merger_fc1, merger_fc2;

 private:
  Qwen2VisionConfig config_;
  at::Tensor inv_freq_;  // (head_dim / 4,) fp32: the vision rotary frequencies
  bool checkpointing_ = false;
};

class Qwen2VLBackbone : public Backbone {
 public:
  explicit Qwen2VLBackbone(const Qwen2VLModelConfig& config);

  at::Tensor last_hidden_state(const EncodeBatch& batch) const override;
  at::Tensor last_token_hidden(const EncodeBatch& batch) const override;
  const WeightMap& weight_map() const override { return map_; }
  int64_t hidden_size() const override { return config_.text.hidden_size; }
  std::optional<int64_t> image_token_id() const override { return config_.image_token_id; }
  // height x width: the image after smart_resize (multiples of patch * merge).
  int64_t image_token_count(int64_t height, int64_t width) const override;
  std::vector<Component> components() const override {
    return {{"language_model", "decoder."}, {"vision_tower", "visual."}};
  }
  void set_gradient_checkpointing(bool on) override;
  int64_t max_length() const override { return config_.text.max_position_embeddings; }
  const Qwen2VLModelConfig& config() const { return config_; }

  // GME's positions: 0..n-1 on all three M-RoPE axes for every token, images included, as
  // Qwen2VLModel computes them when called with position_ids=None (recipe "gme"). The padded path
  // counts from column 0 as GME does; the packed path from each sequence's first real token (a
  // shift rotary attention does not see, up to rounding).
  void set_sequential_positions(bool on) { sequential_positions_ = on; }

  // Each image's grid (t = 1, h / 14, w / 14) from its resized size.
  std::vector<GridTHW> grids(const std::vector<ImageInput>& images) const;
  // Every image's merged features in order, concatenated: (sum of token counts, hidden).
  at::Tensor image_features(const std::vector<ImageInput>& images) const;

  std::shared_ptr<Qwen2VisionTower> visual;
  std::shared_ptr<Decoder> decoder;

 private:
  EncodeBatch with_positions(const EncodeBatch& batch, bool padded) const;
  at::Tensor embed_with_images(const at::Tensor& ids, const std::vector<ImageInput>& images) const;
  Qwen2VLModelConfig config_;
  WeightMap map_;
  bool sequential_positions_ = false;
};

std::shared_ptr<Backbone> make_qwen2_vl_backbone(const nlohmann::json& config, const std::string& source);

}  // namespace unime::model
