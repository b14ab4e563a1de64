#include "model/llava_next.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/json_file.h"
#include "model/clip_vision.h"
#include "model/config.h"
#include "model/decoder_weight_map.h"
#include "model/packed_attention.h"

namespace unime::model {

using core::get_or;
using core::get_required;

LlavaNextModelConfig LlavaNextModelConfig::from_json(const nlohmann::json& raw, const std::string& source) {
  const auto json = with_defaults(raw, "llava_next");
  LlavaNextModelConfig c;
  auto text =
      json.contains("text_config") && json["text_config"].is_object() ? json["text_config"] : nlohmann::json::object();
  if (!text.contains("model_type")) text["model_type"] = json["text_config_model_type"];
  c.text = DecoderConfig::from_json(text, source + " (text_config)");
  auto vision = json.contains("vision_config") && json["vision_config"].is_object() ? json["vision_config"]
                                                                                    : nlohmann::json::object();
  c.vision = ClipVisionConfig::from_json(vision, "llava_next.vision_config", source + " (vision_config)");
  c.image = core::image::LlavaNextConfig::from_json(json, source);
  c.image_token_index = get_required<int64_t>(json, "image_token_index", source);
  c.vision_feature_layer = get_required<int64_t>(json, "vision_feature_layer", source);
  const auto strategy = get_required<std::string>(json, "vision_feature_select_strategy", source);
  if (strategy != "default" && strategy != "full")
    throw InvalidInputError(source + ": vision_feature_select_strategy '" + strategy + "' is not 'default' or 'full'");
  c.drop_cls = strategy == "default";
  const auto act = get_required<std::string>(json, "projector_hidden_act", source);
  if (act != "gelu") throw InvalidInputError(source + ": projector_hidden_act '" + act + "' is not supported (gelu)");
  c.projector_bias = get_or<bool>(json, "multimodal_projector_bias", true, source);
  if (c.image.crop_size != c.vision.image_size)
    throw InvalidInputError(source + ": image crop size " + std::to_string(c.image.crop_size) +
                            " differs from the vision tower's image_size " + std::to_string(c.vision.image_size));
  c.vision_layers_to_run();  // validates the feature layer
  return c;
}

int64_t LlavaNextModelConfig::vision_layers_to_run() const {
  // CLIP's hidden states are (embeddings, layer 1, ..., layer N); index k (or N + 1 + k when k < 0)
  // is the output of that many layers.
  const int64_t n = vision.num_hidden_layers;
  const int64_t run = vision_feature_layer < 0 ? n + 1 + vision_feature_layer : vision_feature_layer;
  if (run < 0 || run > n)
    throw InvalidInputError("vision_feature_layer " + std::to_string(vision_feature_layer) + " is outside the " +
                            std::to_string(n) + "-layer vision tower");
  return run;
}

namespace {
WeightMap llava_next_weight_map() {
  WeightSection decoder{decoder_weight_map().rules(), {"language_model.model.", "model.language_model."}, "decoder."};
  WeightSection vision{clip_vision_weight_map().rules(),
                       {"vision_tower.vision_model.", "model.vision_tower.vision_model."},
                       "vision_tower."};
  WeightSection projector{{{"linear_1", "projector_1"}, {"linear_2", "projector_2"}},
                          {"multi_modal_projector.", "model.multi_modal_projector."},
                          ""};
  WeightSection newline{{{"image_newline", "image_newline"}}, {"", "model."}, ""};
  return WeightMap(
      {decoder, vision, projector, newline},
      {"language_model.lm_head.weight", "lm_head.weight", "vision_tower.vision_model.post_layernorm.weight",
       "vision_tower.vision_model.post_layernorm.bias", "model.vision_tower.vision_model.post_layernorm.weight",
       "model.vision_tower.vision_model.post_layernorm.bias",
       "language_model.model.layers.{L}.self_attn.rotary_emb.inv_freq"});
}
}  // namespace

LlavaNextBackbone::LlavaNextBackbone(const LlavaNextModelConfig& config)
    : config_(config), map_(llava_next_weight_map()) {
  vision_tower =
      register_module("vision_tower", std::make_shared<ClipVisionTower>(config.vision, config.vision_layers_to_run()));
  const auto D = config.text.hidden_size;
  projector_1 =
      register_module("projector_1", std::make_shared<Linear>(config.vision.hidden_size, D, config.projector_bias));
  projector_2 = register_module("projector_2", std::make_shared<Linear>(D, D, config.projector_bias));
  image_newline = register_parameter("image_newline", placeholder({D}), false);
  decoder = register_module("decoder", std::make_shared<Decoder>(config.text));
}

void LlavaNextBackbone::set_gradient_checkpointing(bool on) {
  decoder->set_gradient_checkpointing(on);
  vision_tower->set_gradient_checkpointing(on);
}

int64_t LlavaNextBackbone::image_token_count(int64_t height, int64_t width) const {
  return core::image::llava_next_layout(height, width, config_.image).num_image_tokens;
}

at::Tensor LlavaNextBackbone::image_features(const std::vector<ImageInput>& images) const {
  if (images.empty()) return {};
  const int64_t side = config_.vision.image_size / config_.vision.patch_size;  // 24 for 336 / 14
  std::vector<at::Tensor> pixels;
  std::vector<core::image::LlavaNextLayout> layouts;
  for (size_t i = 0; i < images.size(); ++i) {
    const auto& im = images[i];
    auto layout = core::image::llava_next_layout(im.height, im.width, config_.image);
    const int64_t patches = 1 + layout.tiles_h * layout.tiles_w;
    TORCH_CHECK_VALUE(im.pixel_values.dim() == 4 && im.pixel_values.size(0) >= patches, "image ", i, " (", im.height,
                      "x", im.width, ") needs ", patches, " patches of pixel_values, got shape ",
                      im.pixel_values.sizes());
    pixels.push_back(im.pixel_values.narrow(0, 0, patches));  // drop batch padding patches
    layouts.push_back(layout);
  }
  // One tower call for every patch of every image; features of the selected layer, CLS dropped.
  auto feats = vision_tower->forward(at::cat(pixels, 0));
  if (config_.drop_cls) feats = feats.narrow(1, 1, feats.size(1) - 1);
  feats = projector_2->forward(at::gelu(projector_1->forward(feats)));  // (patches, side*side, D)
  const auto D = feats.size(-1);
  std::vector<at::Tensor> out;
  int64_t offset = 0;
  for (const auto& layout : layouts) {
    const int64_t tiles = layout.tiles_h * layout.tiles_w;
    auto base = feats[offset];
    auto newline = image_newline.to(feats.scalar_type());
    if (tiles == 0) {
      out.push_back(at::cat({base, newline.unsqueeze(0)}, 0));
    } else {
      // Stitch the tiles into one (D, side*tiles_h, side*tiles_w) map, row-major tile order.
      auto grid = feats.narrow(0, offset + 1, tiles).view({layout.tiles_h, layout.tiles_w, side, side, D});
      grid = grid.permute({4, 0, 2, 1, 3}).reshape({D, layout.tiles_h * side, layout.tiles_w * side});
      grid = grid.slice(1, layout.feat_rows_begin, layout.feat_rows_end)
                 .slice(2, layout.feat_cols_begin, layout.feat_cols_end);  // unpad
      auto rows = grid.size(1);
      grid = at::cat({grid, newline.view({D, 1, 1}).expand({D, rows, 1})}, 2);  // newline ends each row
      out.push_back(at::cat({base, grid.flatten(1).transpose(0, 1)}, 0));
    }
    TORCH_INTERNAL_ASSERT(out.back().size(0) == layout.num_image_tokens, "image token count ", out.back().size(0),
                          " != layout's ", layout.num_image_tokens);
    offset += 1 + tiles;
  }
  return at::cat(out, 0);
}

at::Tensor LlavaNextBackbone::embed_with_images(const at::Tensor& ids, const std::vector<ImageInput>& images) const {
  return scatter_image_features(decoder->embed_tokens->forward(ids), ids, config_.image_token_index, images,
                                [this](const std::vector<ImageInput>& im) { return image_features(im); });
}

at::Tensor LlavaNextBackbone::last_hidden_state(const EncodeBatch& batch) const {
  decoder->check_input_ids(batch.input_ids);
  return decoder_last_hidden_state(*decoder, batch,
                                   [&](const at::Tensor& ids) { return embed_with_images(ids, batch.images); });
}

at::Tensor LlavaNextBackbone::last_token_hidden(const EncodeBatch& batch) const {
  decoder->check_input_ids(batch.input_ids);
  return decoder_last_token_hidden(*decoder, batch,
                                   [&](const at::Tensor& ids) { return embed_with_images(ids, batch.images); });
}

std::shared_ptr<Backbone> make_llava_next_backbone(const nlohmann::json& config, const std::string& source) {
  return std::make_shared<LlavaNextBackbone>(LlavaNextModelConfig::from_json(config, source));
}

}  // namespace unime::model
