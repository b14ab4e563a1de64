// LLaVA-NeXT (LLaVA-1.6; UniME-LLaVA-1.6-7B) as a Backbone (backbones.md section A): CLIP tower ->
// two-layer projector -> anyres feature packing (base image, stitched tiles, unpadding,
// image_newline per row) -> features scattered into the token embeddings at the image placeholder
// tokens -> the Mistral/Llama decoder.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "core/image/llava_next_layout.h"
#include "model/backbone.h"
#include "model/clip_vision.h"
#include "model/decoder.h"

namespace unime::model {

struct LlavaNextModelConfig {
  DecoderConfig text;
  ClipVisionConfig vision;
  core::image::LlavaNextConfig image;  // grid pinpoints, crop size, normalisation
  int64_t image_token_index = 32000;
  int64_t vision_feature_layer = -2;  // index into CLIP's hidden states (embeddings, layer 1, ...)
  bool drop_cls = true;               // vision_feature_select_strategy "default" (vs "full")
  bool projector_bias = true;
  static LlavaNextModelConfig from_json(const nlohmann::json& json, const std::string& source);
  int64_t vision_layers_to_run() const;
};

class LlavaNextBackbone : public Backbone {
 public:
  explicit LlavaNextBackbone(const LlavaNextModelConfig& config);

  at::Tensor last_hidden_state(const EncodeBatch& batch) const override;
  at::Tensor last_token_hidden(const EncodeBatch& batch) const override;
  const WeightMap& weight_map() const override { return map_; }
  int64_t hidden_size() const override { return config_.text.hidden_size; }
  std::optional<int64_t> image_token_id() const override { return config_.image_token_index; }
  int64_t image_token_count(int64_t height, int64_t width) const override;
  std::vector<Component> components() const override {
    return {{"language_model", "decoder."}, {"vision_tower", "vision_tower."}, {"projector", "projector_"}};
  }
  void set_gradient_checkpointing(bool on) override;
  int64_t max_length() const override { return config_.text.max_position_embeddings; }
  const LlavaNextModelConfig& config() const { return config_; }

  // Every image's features in placeholder order, concatenated: (sum of token counts, hidden).
  at::Tensor image_features(const std::vector<ImageInput>& images) const;

  std::shared_ptr<ClipVisionTower> vision_tower;
  std::shared_ptr<Linear> projector_1, projector_2;
  at::Tensor image_newline;  // (hidden,)
  std::shared_ptr<Decoder> decoder;

 private:
  // Token embeddings of `ids` (any shape) with the image features written at the placeholders.
  at::Tensor embed_with_images(const at::Tensor& ids, const std::vector<ImageInput>& images) const;
  LlavaNextModelConfig config_;
  WeightMap map_;
};

// Chooses the checkpoint's key layout (transformers <= 4.51 "language_model.model.*" or the newer
// "model.language_model.*") from the tensor names present.
std::shared_ptr<Backbone> make_llava_next_backbone(const nlohmann::json& config, const std::string& source);

}  // namespace unime::model
