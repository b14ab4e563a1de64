// The interface every backbone family implements, and the registry keyed by config.json's
// model_type. Adding a backbone: one file in csrc/model/ with its modules and weight map, its
// processor (processor.h), and one line in registry.cc (docs/development/adding-a-backbone.md).
#pragma once

#include <ATen/core/Tensor.h>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <torch/nn/module.h>
#include <vector>

#include "model/packed_attention.h"
#include "model/weight_map.h"

namespace unime::model {

// One image of a batch, preprocessed for its backbone.
struct ImageInput {
  // LLaVA-NeXT: (1 + tiles, 3, crop, crop) float, the base image first. Phi-3.5-V: (1 + crops, 3,
  // 336, 336), the global thumbnail first (zero crops after those may pad a batch).
  at::Tensor pixel_values;
  // The size that fixes the image's tiling and token count: LLaVA-NeXT the original image's,
  // Phi-3.5-V the HD canvas's (multiples of 336, its processor's image_sizes).
  int64_t height = 0;
  int64_t width = 0;
};

// Token ids of a batch and the images whose placeholder tokens they hold, in order of appearance
// (row by row, left to right), each image's placeholder expanded to its token count.
struct EncodeBatch {
  at::Tensor input_ids;       // (B, L) int64
  at::Tensor attention_mask;  // (B, L), nonzero = real token; left or right padding
  std::vector<ImageInput> images;
  // (B, L) int64 (or (3, B, L) for M-RoPE), or undefined: 0..L-1 for the padded path, each
  // sequence counted from its first real token for the packed path.
  at::Tensor position_ids;
};

// The positions of the packed tokens of `batch`: position_ids gathered at the real tokens
// ((T,) or (3, T)), or undefined when the batch has none (the decoder then counts per sequence).
at::Tensor packed_positions(const EncodeBatch& batch, const PackedSequences& packed);

class Decoder;

// The two forward paths of a multimodal backbone whose images are written into the token
// embeddings: `embed(ids)` returns the embeddings of ids of any shape with the batch's image
// features at their placeholders. Full: the padded batch, transformers' positions; last token:
// packed real tokens only (registry.cc).
using EmbedWithImages = std::function<at::Tensor(const at::Tensor& ids)>;
at::Tensor decoder_last_hidden_state(const Decoder& decoder, const EncodeBatch& batch, const EmbedWithImages& embed);
at::Tensor decoder_last_token_hidden(const Decoder& decoder, const EncodeBatch& batch, const EmbedWithImages& embed);
// `embeds` of `ids` with the images' features written at the `placeholder` ids, in order (row by row,
// left to right, images in the order given); `features(images)` is called only when there are images.
// InvalidInputError when the placeholder count and the feature count differ.
at::Tensor scatter_image_features(const at::Tensor& embeds, const at::Tensor& ids, int64_t placeholder,
                                  const std::vector<ImageInput>& images,
                                  const std::function<at::Tensor(const std::vector<ImageInput>&)>& features);

// A named part of a backbone for LoRA scopes and freezing: "language_model" -> "decoder.".
struct Component {
  std::string name;         // "language_model", "vision_tower", "projector"
  std::string module_path;  // prefix of its parameters' module paths
};

class Backbone : public torch::nn::Module {
 public:
  // The last hidden state after the final norm: (B, L, hidden_size), on the padded batch, with
  // transformers' positions (counted from column 0).
  virtual at::Tensor last_hidden_state(const EncodeBatch& batch) const = 0;
  // The final-norm hidden state at each row's last real token: (B, hidden_size). Backbones compute
  // it without padding (packed sequences); it equals last_hidden_state() pooled, up to rounding.
  virtual at::Tensor last_token_hidden(const EncodeBatch& batch) const = 0;
  virtual const WeightMap& weight_map() const = 0;
  virtual int64_t hidden_size() const = 0;
  // The id of the image placeholder token and how many of them an image of this size takes;
  // nullopt / an error for text-only backbones.
  virtual std::optional<int64_t> image_token_id() const { return std::nullopt; }
  virtual int64_t image_token_count(int64_t height, int64_t width) const;
  // The parts of the model, language model first.
  virtual std::vector<Component> components() const = 0;
  // Per-layer activation checkpointing of the language model (and vision tower) for training.
  virtual void set_gradient_checkpointing(bool on) = 0;
  // The longest input (tokens) the language model takes; 0 when the config does not say.
  virtual int64_t max_length() const = 0;
};

using BackboneFactory =
    std::function<std::shared_ptr<Backbone>(const nlohmann::json& config, const std::string& source)>;

// Creates the backbone for config["model_type"]; InvalidInputError names the type and lists the
// supported ones when there is no factory for it.
std::shared_ptr<Backbone> create_backbone(const nlohmann::json& config, const std::string& source);
std::vector<std::string> supported_model_types();

}  // namespace unime::model
