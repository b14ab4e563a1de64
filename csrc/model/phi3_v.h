// Phi-3.5-V (Phi3VForCausalLM, remote code; UniME-Phi3.5-V-4.2B, VLM2Vec) as a Backbone
// (backbones.md section B): CLIP ViT-L/14-336 on the global thumbnail and the HD crops
// (penultimate layer, CLS dropped) -> 2x2 merge to 4 x 1024 -> crops tiled, sub_GN after every row,
// glb_GN, the global image likewise -> projection MLP (Linear, GELU, Linear) -> written at the
// image's placeholder ids (-1) of the token embeddings -> the Phi-3 decoder (LongRoPE).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "model/backbone.h"
#include "model/clip_vision.h"
#include "model/decoder.h"

namespace unime::model {

struct Phi3VModelConfig {
  DecoderConfig text;
  ClipVisionConfig vision;
  int64_t layer_idx = -2;        // img_processor.layer_idx: CLIP hidden state read
  int64_t num_img_tokens = 144;  // img_processor.num_img_tokens (per crop)
  static Phi3VModelConfig from_json(const nlohmann::json& json, const std::string& source);
  int64_t vision_layers_to_run() const;
};

// The id the processor writes at an image's token run, as the original processor does (-k for
// image k; one image per input here). Never looked up in the embedding table.
inline constexpr int64_t kPhi3VImageTokenId = -1;

class Phi3VBackbone : public Backbone {
 public:
  explicit Phi3VBackbone(const Phi3VModelConfig& config);

  at::Tensor last_hidden_state(const EncodeBatch& batch) const override;
  at::Tensor last_token_hidden(const EncodeBatch& batch) const override;
  const WeightMap& weight_map() const override { return map_; }
  int64_t hidden_size() const override { return config_.text.hidden_size; }
  std::optional<int64_t> image_token_id() const override { return kPhi3VImageTokenId; }
  // height x width: the HD canvas (multiples of 336).
  int64_t image_token_count(int64_t height, int64_t width) const override;
  std::vector<Component> components() const override {
    return {{"language_model", "decoder."}, {"vision_tower", "vision_tower."}, {"projector", "img_projection_"}};
  }
  void set_gradient_checkpointing(bool on) override;
  int64_t max_length() const override { return config_.text.max_position_embeddings; }
  const Phi3VModelConfig& config() const { return config_; }

  // Every image's projected features in placeholder order, concatenated: (sum of token counts, hidden).
  at::Tensor image_features(const std::vector<ImageInput>& images) const;

  std::shared_ptr<ClipVisionTower> vision_tower;
  at::Tensor glb_GN, sub_GN;  // (1, 1, 4096), (1, 1, 1, 4096): learned separators
  std::shared_ptr<Linear> img_projection_0, img_projection_2;
  std::shared_ptr<Decoder> decoder;

 private:
  at::Tensor embed_with_images(const at::Tensor& ids, const std::vector<ImageInput>& images) const;
  void check_input_ids(const at::Tensor& ids) const;
  Phi3VModelConfig config_;
  WeightMap map_;
};

std::shared_ptr<Backbone> make_phi3_v_backbone(const nlohmann::json& config, const std::string& source);

}  // namespace unime::model
