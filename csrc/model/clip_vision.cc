#include "model/clip_vision.h"

#include <ATen/ATen.h>
#include <cmath>
#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/modulelist.h>
#include <vector>

#include "core/errors.h"
#include "core/json_file.h"
#include "model/activation_checkpoint.h"
#include "model/config.h"
#include "ops/cpu/attention_cpu.h"
#include "ops/ops.h"

namespace unime::model {

using core::get_required;

ClipVisionConfig ClipVisionConfig::from_json(const nlohmann::json& raw, const std::string& defaults_table,
                                             const std::string& source) {
  if (!raw.is_object()) throw InvalidInputError(source + ": vision_config must be a JSON object");
  const auto json = with_defaults(raw, defaults_table);
  ClipVisionConfig c;
  c.hidden_size = get_required<int64_t>(json, "hidden_size", source);
  c.intermediate_size = get_required<int64_t>(json, "intermediate_size", source);
  c.num_hidden_layers = get_required<int64_t>(json, "num_hidden_layers", source);
  c.num_attention_heads = get_required<int64_t>(json, "num_attention_heads", source);
  c.image_size = get_required<int64_t>(json, "image_size", source);
  c.patch_size = get_required<int64_t>(json, "patch_size", source);
  c.num_channels = core::get_or<int64_t>(json, "num_channels", 3, source);
  c.layer_norm_eps = get_required<double>(json, "layer_norm_eps", source);
  c.hidden_act = get_required<std::string>(json, "hidden_act", source);
  if (c.hidden_size <= 0 || c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads != 0)
    throw InvalidInputError(source + ": vision hidden_size must be a positive multiple of num_attention_heads");
  if (c.patch_size <= 0 || c.image_size <= 0 || c.image_size % c.patch_size != 0)
    throw InvalidInputError(source + ": vision image_size must be a positive multiple of patch_size");
  if (c.hidden_act != "quick_gelu" && c.hidden_act != "gelu")
    throw InvalidInputError(source + ": vision hidden_act '" + c.hidden_act + "' is not supported (quick_gelu, gelu)");
  return c;
}

ClipAttention::ClipAttention(const ClipVisionConfig& c) : num_heads_(c.num_attention_heads) {
  const auto D = c.hidden_size;
  q_proj = register_module("q_proj", std::make_shared<Linear>(D, D, true));
  k_proj = register_module("k_proj", std::make_shared<Linear>(D, D, true));
  v_proj = register_module("v_proj", std::make_shared<Linear>(D, D, true));
  out_proj = register_module("out_proj", std::make_shared<Linear>(D, D, true));
}

at::Tensor ClipAttention::forward(const at::Tensor& x) const {
  const auto N = x.size(0), T = x.size(1);
  auto split = [&](const at::Tensor& t) { return t.view({N, T, num_heads_, -1}); };  // (N, T, H, d)
  auto q = split(q_proj->forward(x)), k = split(k_proj->forward(x)), v = split(v_proj->forward(x));
  // Bidirectional attention over all tokens; scale 1/sqrt(head_dim) (SDPA's default).
  if (ops::cpu_bf16_attention_applies(q[0], k[0], v[0])) {  // per image, in the (T, H, d) layout
    const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
    std::vector<at::Tensor> outs;
    outs.reserve(N);
    for (int64_t n = 0; n < N; ++n) outs.push_back(ops::cpu_bf16_attention(q[n], k[n], v[n], false, scale));
    return out_proj->forward(at::stack(outs).view({N, T, -1}));
  }
  auto t = [](const at::Tensor& y) { return y.transpose(1, 2); };  // (N, H, T, d)
  return out_proj->forward(at::scaled_dot_product_attention(t(q), t(k), t(v)).transpose(1, 2).reshape({N, T, -1}));
}

ClipMlp::ClipMlp(const ClipVisionConfig& c) : quick_gelu_(c.hidden_act == "quick_gelu") {
  fc1 = register_module("fc1", std::make_shared<Linear>(c.hidden_size, c.intermediate_size, true));
  fc2 = register_module("fc2", std::make_shared<Linear>(c.intermediate_size, c.hidden_size, true));
}

at::Tensor ClipMlp::forward(const at::Tensor& x) const {
  auto m = fc1->forward(x);
  m = quick_gelu_ ? ops::quick_gelu(m) : at::gelu(m);
  return fc2->forward(m);
}

ClipEncoderLayer::ClipEncoderLayer(const ClipVisionConfig& c) {
  const auto D = c.hidden_size;
  layer_norm1 = register_module("layer_norm1", std::make_shared<LayerNorm>(D, c.layer_norm_eps));
  self_attn = register_module("self_attn", std::make_shared<ClipAttention>(c));
  layer_norm2 = register_module("layer_norm2", std::make_shared<LayerNorm>(D, c.layer_norm_eps));
  mlp = register_module("mlp", std::make_shared<ClipMlp>(c));
}

at::Tensor ClipEncoderLayer::forward(const at::Tensor& x) const {
  auto r = x + self_attn->forward(layer_norm1->forward(x));
  return r + mlp->forward(layer_norm2->forward(r));
}

ClipVisionTower::ClipVisionTower(const ClipVisionConfig& c, int64_t num_layers_to_run) : config_(c) {
  TORCH_CHECK_VALUE(num_layers_to_run >= 0 && num_layers_to_run <= c.num_hidden_layers, "vision feature layer selects ",
                    num_layers_to_run, " of ", c.num_hidden_layers, " layers");
  const auto D = c.hidden_size;
  class_embedding = register_parameter("class_embedding", placeholder({D}), false);
  patch_embedding =
      register_parameter("patch_embedding", placeholder({D, c.num_channels, c.patch_size, c.patch_size}), false);
  position_embedding = register_parameter("position_embedding", placeholder({c.num_positions(), D}), false);
  pre_layrnorm = register_module("pre_layrnorm", std::make_shared<LayerNorm>(D, c.layer_norm_eps));
  auto list = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < num_layers_to_run; ++i) {
    layers.push_back(std::make_shared<ClipEncoderLayer>(c));
    list->push_back(layers.back());
  }
}

at::Tensor ClipVisionTower::forward(const at::Tensor& pixels) const {
  TORCH_CHECK_VALUE(pixels.dim() == 4 && pixels.size(1) == config_.num_channels &&
                        pixels.size(2) == config_.image_size && pixels.size(3) == config_.image_size,
                    "pixel_values must be (N, ", config_.num_channels, ", ", config_.image_size, ", ",
                    config_.image_size, "), got ", pixels.sizes());
  const auto N = pixels.size(0);
  auto x = at::conv2d(pixels.to(patch_embedding.scalar_type()), patch_embedding, {}, config_.patch_size);
  x = x.flatten(2).transpose(1, 2);  // (N, patches, D), patches in row-major order
  auto cls = class_embedding.view({1, 1, -1}).expand({N, 1, -1});
  x = at::cat({cls, x}, 1) + position_embedding.unsqueeze(0);
  x = pre_layrnorm->forward(x);
  for (const auto& layer : layers) {
    auto run = [layer](const at::Tensor& h) { return layer->forward(h); };  // owned: replayed in backward
    x = checkpointing_ ? checkpointed(run, x) : run(x);
  }
  return x;
}

const WeightMap& clip_vision_weight_map() {
  static const WeightMap map(std::vector<WeightRule>{
      {"embeddings.class_embedding", "class_embedding"},
      {"embeddings.patch_embedding.weight", "patch_embedding"},
      {"embeddings.position_embedding.weight", "position_embedding"},
      {"pre_layrnorm", "pre_layrnorm"},
      {"encoder.layers.{L}", "layers.{L}"},
  });
  return map;
}

}  // namespace unime::model
