#include "model/phi3_v.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/image/phi3_v_layout.h"
#include "core/json_file.h"
#include "model/config.h"
#include "model/decoder_weight_map.h"

namespace unime::model {

using core::get_or;

namespace {

// Phi3VConfig's defaults (configuration_phi3_v.py of the remote code, Phi3VConfig.__init__; the
// copy vendored by VLM2Vec under src/model/baseline_backbone/phi3_v/). Not a transformers class, so
// not in config_defaults.cc.
const nlohmann::json& phi3_v_defaults() {
  static const nlohmann::json d = {
      {"vocab_size", 32064},
      {"hidden_size", 3072},
      {"intermediate_size", 8192},
      {"num_hidden_layers", 32},
      {"num_attention_heads", 32},
      {"hidden_act", "silu"},
      {"max_position_embeddings", 4096},
      {"original_max_position_embeddings", 4096},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 10000.0},
      {"rope_scaling", nullptr},
      {"bos_token_id", 1},
      {"eos_token_id", 32000},
      {"pad_token_id", 32000},
      {"sliding_window", nullptr},
      {"embd_layer", "default"},
      {"img_processor", nullptr},
  };
  return d;
}

// The one image embedding Phi-3 / Phi-3.5-V checkpoints use; the original code has others, which
// are refused by name.
void check_embd_layer(const nlohmann::json& e, const std::string& source) {
  auto field = [&](const char* key, const nlohmann::json& want) {
    if (!e.is_object() || !e.contains(key) || e[key] != want)
      throw InvalidInputError(source + ": embd_layer " + e.dump() + " is not supported (needs " + key + " = " +
                              want.dump() +
                              ": the HD transform with learnable separators, sub_glb, an MLP projection)");
  };
  field("embedding_cls", "image");
  field("use_hd_transform", true);
  field("with_learnable_separator", true);
  field("hd_transform_order", "sub_glb");
  field("projection_cls", "mlp");
}

WeightMap phi3_v_weight_map() {
  WeightSection decoder{decoder_weight_map().rules(), {"model."}, "decoder."};
  WeightSection vision{
      clip_vision_weight_map().rules(), {"model.vision_embed_tokens.img_processor.vision_model."}, "vision_tower."};
  WeightSection embedding{{{"glb_GN", "glb_GN"},
                           {"sub_GN", "sub_GN"},
                           {"img_projection.0", "img_projection_0"},
                           {"img_projection.2", "img_projection_2"}},
                          {"model.vision_embed_tokens."},
                          ""};
  // wte is embed_tokens under a second name; the CLIP head and the LM head are never run.
  return WeightMap({decoder, vision, embedding},
                   {"lm_head.weight", "model.vision_embed_tokens.wte.weight",
                    "model.vision_embed_tokens.img_processor.vision_model.post_layernorm.weight",
                    "model.vision_embed_tokens.img_processor.vision_model.post_layernorm.bias"});
}

}  // namespace

Phi3VModelConfig Phi3VModelConfig::from_json(const nlohmann::json& raw, const std::string& source) {
  auto json = raw;
  for (const auto& [key, value] : phi3_v_defaults().items())
    if (!json.contains(key)) json[key] = value;
  check_embd_layer(json["embd_layer"], source);
  const auto& ip = json["img_processor"];
  if (!ip.is_object() || get_or<std::string>(ip, "name", "", source) != "clip_vision_model")
    throw InvalidInputError(source + ": img_processor " + ip.dump() + " is not supported (a clip_vision_model)");
  Phi3VModelConfig c;
  // The original builds CLIP ViT-L/14-336 whatever model_name says; "vision_config" (unime's
  // extension, for smaller test models) overrides it.
  const auto vision = ip.contains("vision_config") ? ip["vision_config"] : nlohmann::json::object();
  c.vision = ClipVisionConfig::from_json(vision, "llava_next.vision_config", source + " (img_processor)");
  c.layer_idx = get_or<int64_t>(ip, "layer_idx", -2, source);
  c.num_img_tokens = get_or<int64_t>(ip, "num_img_tokens", 144, source);
  const auto feature = get_or<std::string>(ip, "type_feature", "patch", source);
  if (feature != "patch")
    throw InvalidInputError(source + ": img_processor.type_feature '" + feature + "' (patch only)");
  const auto dim_out = get_or<int64_t>(ip, "image_dim_out", c.vision.hidden_size, source);
  if (dim_out != c.vision.hidden_size || c.vision.image_size != core::image::kPhi3VCrop ||
      c.vision.image_size / c.vision.patch_size != 24 || c.num_img_tokens != core::image::kPhi3VTokensPerCrop)
    throw InvalidInputError(source +
                            ": Phi-3.5-V's image path needs 336-px crops of 24 x 24 patches (144 merged "
                            "tokens per crop) and image_dim_out equal to the vision width");
  json["model_type"] = "phi3";  // the language model is Phi-3's decoder
  c.text = DecoderConfig::from_json(json, source);
  c.vision_layers_to_run();
  return c;
}

int64_t Phi3VModelConfig::vision_layers_to_run() const {
  const int64_t n = vision.num_hidden_layers;
  const int64_t run = layer_idx < 0 ? n + 1 + layer_idx : layer_idx;
  if (run < 0 || run > n)
    throw InvalidInputError("img_processor.layer_idx " + std::to_string(layer_idx) + " is outside the " +
                            std::to_string(n) + "-layer vision tower");
  return run;
}

Phi3VBackbone::Phi3VBackbone(const Phi3VModelConfig& config) : config_(config), map_(phi3_v_weight_map()) {
  vision_tower =
      register_module("vision_tower", std::make_shared<ClipVisionTower>(config.vision, config.vision_layers_to_run()));
  const auto merged = 4 * config.vision.hidden_size, D = config.text.hidden_size;
  glb_GN = register_parameter("glb_GN", placeholder({1, 1, merged}), false);
  sub_GN = register_parameter("sub_GN", placeholder({1, 1, 1, merged}), false);
  img_projection_0 = register_module("img_projection_0", std::make_shared<Linear>(merged, D, true));
  img_projection_2 = register_module("img_projection_2", std::make_shared<Linear>(D, D, true));
  decoder = register_module("decoder", std::make_shared<Decoder>(config.text));
}

void Phi3VBackbone::set_gradient_checkpointing(bool on) {
  decoder->set_gradient_checkpointing(on);
  vision_tower->set_gradient_checkpointing(on);
}

int64_t Phi3VBackbone::image_token_count(int64_t height, int64_t width) const {
  if (height <= 0 || width <= 0 || height % core::image::kPhi3VCrop != 0 || width % core::image::kPhi3VCrop != 0)
    throw InvalidInputError("Phi-3.5-V image size " + std::to_string(height) + "x" + std::to_string(width) +
                            " is not an HD canvas (positive multiples of 336)");
  core::image::Phi3VLayout l;
  l.height = height;
  l.width = width;
  return l.num_image_tokens();
}

at::Tensor Phi3VBackbone::image_features(const std::vector<ImageInput>& images) const {
  if (images.empty()) return {};
  const int64_t crop = core::image::kPhi3VCrop, half = config_.vision.image_size / config_.vision.patch_size / 2;
  std::vector<at::Tensor> pixels;
  for (size_t i = 0; i < images.size(); ++i) {
    const auto& im = images[i];
    image_token_count(im.height, im.width);  // validates the canvas size
    const int64_t crops = 1 + (im.height / crop) * (im.width / crop);
    TORCH_CHECK_VALUE(im.pixel_values.dim() == 4 && im.pixel_values.size(0) >= crops, "image ", i, " (HD canvas ",
                      im.height, "x", im.width, ") needs ", crops, " crops of pixel_values, got shape ",
                      im.pixel_values.sizes());
    pixels.push_back(im.pixel_values.narrow(0, 0, crops));  // padding crops are never run
  }
  // One tower call for every crop of every image; the selected layer's patches, CLS dropped.
  auto feats = vision_tower->forward(at::cat(pixels, 0));
  feats = feats.narrow(1, 1, feats.size(1) - 1);
  const auto N = feats.size(0), C = feats.size(2);
  // 2x2 merge: cell (i, j) = the features at (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1).
  auto merged = feats.reshape({N, half, 2, half, 2, C}).permute({0, 1, 3, 2, 4, 5}).reshape({N, half, half, 4 * C});
  const auto sub = sub_GN.to(merged.scalar_type()).view({1, 1, 4 * C});
  const auto glb = glb_GN.to(merged.scalar_type()).view({1, 4 * C});
  auto with_row_ends = [&](const at::Tensor& grid) {  // (rows, cols, 4C) -> sub_GN after every row, flattened
    return at::cat({grid, sub.expand({grid.size(0), 1, 4 * C})}, 1).reshape({-1, 4 * C});
  };
  std::vector<at::Tensor> out;
  int64_t offset = 0;
  for (const auto& im : images) {
    const int64_t rows = im.height / crop, cols = im.width / crop;
    auto tiles = merged.narrow(0, offset + 1, rows * cols)
                     .reshape({rows, cols, half, half, 4 * C})
                     .permute({0, 2, 1, 3, 4})
                     .reshape({rows * half, cols * half, 4 * C});
    out.push_back(at::cat({with_row_ends(tiles), glb, with_row_ends(merged[offset])}, 0));  // order "sub_glb"
    offset += 1 + rows * cols;
  }
  auto x = at::cat(out, 0).to(img_projection_0->weight.scalar_type());
  return img_projection_2->forward(at::gelu(img_projection_0->forward(x)));
}

void Phi3VBackbone::check_input_ids(const at::Tensor& ids) const {
  TORCH_CHECK_VALUE(ids.dim() == 2, "input_ids must be (batch, length), got shape ", ids.sizes());
  TORCH_CHECK_VALUE(ids.scalar_type() == at::kLong || ids.scalar_type() == at::kInt,
                    "input_ids must be int64 or int32, got ", ids.scalar_type());
  if (ids.numel() == 0) return;
  const auto lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  if (lo < kPhi3VImageTokenId || hi >= config_.text.vocab_size)
    throw InvalidInputError("input_ids: token id " + std::to_string(lo < kPhi3VImageTokenId ? lo : hi) +
                            " is outside the vocabulary [0, " + std::to_string(config_.text.vocab_size) +
                            ") and is not the image placeholder -1");
}

at::Tensor Phi3VBackbone::embed_with_images(const at::Tensor& ids, const std::vector<ImageInput>& images) const {
  // The placeholder -1 is never looked up: clamped to 0 as the original does, then overwritten.
  return scatter_image_features(decoder->embed_tokens->forward(ids.clamp_min(0)), ids, kPhi3VImageTokenId, images,
                                [this](const std::vector<ImageInput>& im) { return image_features(im); });
}

at::Tensor Phi3VBackbone::last_hidden_state(const EncodeBatch& batch) const {
  check_input_ids(batch.input_ids);
  return decoder_last_hidden_state(*decoder, batch,
                                   [&](const at::Tensor& ids) { return embed_with_images(ids, batch.images); });
}

at::Tensor Phi3VBackbone::last_token_hidden(const EncodeBatch& batch) const {
  check_input_ids(batch.input_ids);
  return decoder_last_token_hidden(*decoder, batch,
                                   [&](const at::Tensor& ids) { return embed_with_images(ids, batch.images); });
}

std::shared_ptr<Backbone> make_phi3_v_backbone(const nlohmann::json& config, const std::string& source) {
  return std::make_shared<Phi3VBackbone>(Phi3VModelConfig::from_json(config, source));
}

}  // namespace unime::model
