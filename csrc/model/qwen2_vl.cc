#include "model/qwen2_vl.h"

#include <ATen/ATen.h>
#include <cmath>
#include <nlohmann/json.hpp>
#include <torch/nn/modules/container/modulelist.h>

#include "core/errors.h"
#include "core/json_file.h"
#include "model/activation_checkpoint.h"
#include "model/config.h"
#include "model/decoder_weight_map.h"
#include "model/packed_attention.h"
#include "model/rotary.h"
#include "ops/ops.h"

namespace unime::model {

using core::get_or;

namespace {

// Qwen2VLConfig's and Qwen2VLVisionConfig's defaults (transformers 4.48 configuration_qwen2_vl.py).
const nlohmann::json& qwen2_vl_defaults() {
  static const nlohmann::json d = {
      {"vocab_size", 152064},         {"hidden_size", 8192},
      {"intermediate_size", 29568},   {"num_hidden_layers", 80},
      {"num_attention_heads", 64},    {"num_key_value_heads", 8},
      {"hidden_act", "silu"},         {"max_position_embeddings", 32768},
      {"rms_norm_eps", 1e-5},         {"rope_theta", 1000000.0},
      {"use_sliding_window", false},  {"sliding_window", 4096},
      {"max_window_layers", 80},      {"attention_dropout", 0.0},
      {"tie_word_embeddings", false},
  };
  return d;
}

WeightMap qwen2_vl_weight_map() {
  // transformers <= 4.51 stores the decoder under "model." and the tower under "visual."; later
  // versions under "model.language_model." and "model.visual.".
  WeightSection decoder{decoder_weight_map().rules(), {"model.", "model.language_model."}, "decoder."};
  WeightSection vision{{{"patch_embed", "patch_embed"}, {"blocks.{L}", "blocks.{L}"}, {"merger", "merger"}},
                       {"visual.", "model.visual."},
                       "visual."};
  return WeightMap({decoder, vision}, {"lm_head.weight"});
}

}  // namespace

Qwen2VisionConfig Qwen2VisionConfig::from_json(const nlohmann::json& j, const std::string& source) {
  Qwen2VisionConfig c;
  if (j.is_null()) return c;
  if (!j.is_object()) throw InvalidInputError(source + ": vision_config must be an object");
  c.depth = get_or<int64_t>(j, "depth", c.depth, source);
  c.embed_dim = get_or<int64_t>(j, "embed_dim", c.embed_dim, source);
  c.num_heads = get_or<int64_t>(j, "num_heads", c.num_heads, source);
  c.hidden_size = get_or<int64_t>(j, "hidden_size", c.hidden_size, source);
  c.mlp_hidden = static_cast<int64_t>(static_cast<double>(c.embed_dim) * get_or<double>(j, "mlp_ratio", 4.0, source));
  c.in_channels = get_or<int64_t>(j, "in_channels", get_or<int64_t>(j, "in_chans", 3, source), source);
  c.patch_size = get_or<int64_t>(j, "patch_size", c.patch_size, source);
  c.temporal_patch_size = get_or<int64_t>(j, "temporal_patch_size", c.temporal_patch_size, source);
  c.spatial_merge_size = get_or<int64_t>(j, "spatial_merge_size", c.spatial_merge_size, source);
  c.hidden_act = get_or<std::string>(j, "hidden_act", c.hidden_act, source);
  if (c.hidden_act != "quick_gelu" && c.hidden_act != "gelu")
    throw InvalidInputError(source + ": vision hidden_act '" + c.hidden_act + "' is not supported (quick_gelu, gelu)");
  if (c.embed_dim <= 0 || c.num_heads <= 0 || c.embed_dim % c.num_heads != 0 || (c.embed_dim / c.num_heads) % 4 != 0)
    throw InvalidInputError(source + ": vision embed_dim must split into heads whose size is a multiple of 4");
  if (c.in_channels != 3) throw InvalidInputError(source + ": vision in_channels must be 3");
  return c;
}

Qwen2VLModelConfig Qwen2VLModelConfig::from_json(const nlohmann::json& raw, const std::string& source) {
  // transformers >= 4.52 nests the language model's fields under text_config.
  auto json = raw.contains("text_config") && raw["text_config"].is_object() ? raw["text_config"] : raw;
  for (const auto& [key, value] : qwen2_vl_defaults().items())
    if (!json.contains(key)) json[key] = value;
  Qwen2VLModelConfig c;
  c.image_token_id = get_or<int64_t>(raw, "image_token_id", c.image_token_id, source);
  c.vision_start_token_id = get_or<int64_t>(raw, "vision_start_token_id", c.vision_start_token_id, source);
  // M-RoPE: transformers 4.48 rewrites rope_scaling's type "mrope" to "default" when it loads, so a
  // saved config may say either; the sections are what matter.
  std::vector<int64_t> sections;
  if (json.contains("rope_scaling") && json["rope_scaling"].is_object()) {
    const auto& rs = json["rope_scaling"];
    if (rs.contains("mrope_section")) sections = rs["mrope_section"].get<std::vector<int64_t>>();
    const auto type = get_or<std::string>(rs, "type", get_or<std::string>(rs, "rope_type", "default", source), source);
    if (type != "mrope" && type != "default")
      throw InvalidInputError(source + ": rope_scaling " + rs.dump() + " is not supported for qwen2_vl (M-RoPE)");
  }
  if (sections.empty())
    throw InvalidInputError(source + ": rope_scaling.mrope_section is missing (Qwen2-VL's M-RoPE needs it)");
  json.erase("rope_scaling");
  json["model_type"] = "qwen2";  // the language model is Qwen2's decoder (q/k/v biases)
  c.text = DecoderConfig::from_json(json, source);
  c.text.rope.type = "mrope";
  c.text.rope.mrope_section = sections;
  make_rotary_embedding(c.text.rope, c.text.head_dim);  // validates the sections against head_dim
  c.vision = Qwen2VisionConfig::from_json(raw.contains("vision_config") ? raw["vision_config"] : nlohmann::json(),
                                          source + " (vision_config)");
  if (c.vision.hidden_size != c.text.hidden_size)
    throw InvalidInputError(source + ": vision_config.hidden_size " + std::to_string(c.vision.hidden_size) +
                            " (the merger's output) differs from the language model's " +
                            std::to_string(c.text.hidden_size));
  return c;
}

at::Tensor qwen2_vl_rope_index(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                               const std::vector<GridTHW>& grids, int64_t image_token_id, int64_t vision_start_token_id,
                               int64_t merge) {
  const auto ids = input_ids.to(at::kCPU, at::kLong).contiguous();
  const auto mask = attention_mask.to(at::kCPU, at::kLong).contiguous();
  const int64_t B = ids.size(0), L = ids.size(1);
  auto out = at::ones({3, B, L}, at::kLong);
  auto* pos = out.data_ptr<int64_t>();
  const auto* id = ids.data_ptr<int64_t>();
  const auto* m = mask.data_ptr<int64_t>();
  if (grids.empty()) {  // cumsum(mask) - 1, padding 1
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0, k = 0; i < L; ++i)
        if (m[b * L + i] != 0) {
          for (int64_t a = 0; a < 3; ++a) pos[(a * B + b) * L + i] = k;
          ++k;
        }
    return out.to(input_ids.device());
  }
  size_t image_index = 0;  // each row's images take the next grids, one per run of image tokens
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int64_t> tokens, where;  // the row's real tokens and their columns
    for (int64_t i = 0; i < L; ++i)
      if (m[b * L + i] != 0) {
        tokens.push_back(id[b * L + i]);
        where.push_back(i);
      }
    const auto n = static_cast<int64_t>(tokens.size());
    int64_t images = 0, runs = 0;  // images counted (<|vision_start|> then the image token); image runs
    for (int64_t i = 0; i < n; ++i) {
      if (i + 1 < n && tokens[i] == vision_start_token_id && tokens[i + 1] == image_token_id) ++images;
      if (tokens[i] == image_token_id && (i == 0 || tokens[i - 1] != image_token_id)) ++runs;
    }
    const size_t row_first_grid = image_index;
    image_index += static_cast<size_t>(runs);
    if (image_index > grids.size())
      throw InvalidInputError("row " + std::to_string(b) + " holds more images than the batch's " +
                              std::to_string(grids.size()) + " image grid(s)");
    size_t grid = row_first_grid;
    std::array<std::vector<int64_t>, 3> p;
    int64_t st = 0, next = 0;  // next = max position so far + 1
    for (int64_t k = 0; k < images; ++k) {
      int64_t ed = st;
      while (ed < n && tokens[ed] != image_token_id) ++ed;
      const auto [t, h, w] = grids[grid++];
      const int64_t gh = h / merge, gw = w / merge, text = ed - st;
      for (int64_t i = 0; i < text; ++i)
        for (int64_t a = 0; a < 3; ++a) p[a].push_back(next + i);
      const int64_t base = next + text;
      int64_t top = base - 1;
      for (int64_t ti = 0; ti < t; ++ti)
        for (int64_t hi = 0; hi < gh; ++hi)
          for (int64_t wi = 0; wi < gw; ++wi) {
            p[0].push_back(base + ti);
            p[1].push_back(base + hi);
            p[2].push_back(base + wi);
            top = std::max({top, base + ti, base + hi, base + wi});
          }
      next = top + 1;
      st = ed + t * gh * gw;
    }
    for (int64_t i = 0; st + i < n; ++i)
      for (int64_t a = 0; a < 3; ++a) p[a].push_back(next + i);
    if (static_cast<int64_t>(p[0].size()) != n)
      throw InvalidInputError("row " + std::to_string(b) + ": its image tokens do not match its image grid (" +
                              std::to_string(p[0].size()) + " positions for " + std::to_string(n) + " tokens)");
    for (int64_t i = 0; i < n; ++i)
      for (int64_t a = 0; a < 3; ++a) pos[(a * B + b) * L + where[i]] = p[a][i];
  }
  return out.to(input_ids.device());
}

Qwen2VisionBlock::Qwen2VisionBlock(const Qwen2VisionConfig& c)
    : num_heads_(c.num_heads), head_dim_(c.embed_dim / c.num_heads), quick_gelu_(c.hidden_act == "quick_gelu") {
  norm1 = register_module("norm1", std::make_shared<LayerNorm>(c.embed_dim, 1e-6));
  norm2 = register_module("norm2", std::make_shared<LayerNorm>(c.embed_dim, 1e-6));
  attn = register_module("attn", std::make_shared<torch::nn::Module>());
  qkv = attn->register_module("qkv", std::make_shared<Linear>(c.embed_dim, 3 * c.embed_dim, true));
  proj = attn->register_module("proj", std::make_shared<Linear>(c.embed_dim, c.embed_dim, true));
  mlp = register_module("mlp", std::make_shared<torch::nn::Module>());
  fc1 = mlp->register_module("fc1", std::make_shared<Linear>(c.embed_dim, c.mlp_hidden, true));
  fc2 = mlp->register_module("fc2", std::make_shared<Linear>(c.mlp_hidden, c.embed_dim, true));
}

at::Tensor Qwen2VisionBlock::forward(const at::Tensor& x, const at::Tensor& angles,
                                     const PackedSequences& images) const {
  const auto S = x.size(0);
  auto parts = qkv->forward(norm1->forward(x)).view({S, 3, num_heads_, head_dim_}).unbind(1);
  // The 2-D rotary in fp32 (apply_rotary_pos_emb_vision), cast back.
  auto emb = at::cat({angles, angles}, -1).unsqueeze(1);  // (S, 1, head_dim)
  auto cos = emb.cos(), sin = emb.sin();
  auto out = packed_attention(apply_rotary_in_fp32(parts[0], cos, sin), apply_rotary_in_fp32(parts[1], cos, sin),
                              parts[2], images, AttentionMaskSpec{false, std::nullopt}, false,
                              1.0 / std::sqrt(static_cast<double>(head_dim_)));
  auto h = x + proj->forward(out.reshape({S, -1}));
  auto m = fc1->forward(norm2->forward(h));
  m = quick_gelu_ ? ops::quick_gelu(m) : at::gelu(m);
  return h + fc2->forward(m);
}

Qwen2VisionTower::Qwen2VisionTower(const Qwen2VisionConfig& c) : config_(c) {
  auto patch_embed = register_module("patch_embed", std::make_shared<torch::nn::Module>());
  auto proj = patch_embed->register_module("proj", std::make_shared<torch::nn::Module>());
  patch_weight = proj->register_parameter(
      "weight", placeholder({c.embed_dim, c.in_channels, c.temporal_patch_size, c.patch_size, c.patch_size}), false);
  auto list = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.depth; ++i) {
    blocks.push_back(std::make_shared<Qwen2VisionBlock>(c));
    list->push_back(blocks.back());
  }
  auto merger = register_module("merger", std::make_shared<torch::nn::Module>());
  const int64_t merged = c.embed_dim * c.spatial_merge_size * c.spatial_merge_size;
  ln_q = merger->register_module("ln_q", std::make_shared<LayerNorm>(c.embed_dim, 1e-6));
  auto mlp = merger->register_module("mlp", std::make_shared<torch::nn::Module>());
  merger_fc1 = mlp->register_module("0", std::make_shared<Linear>(merged, merged, true));
  merger_fc2 = mlp->register_module("2", std::make_shared<Linear>(merged, c.hidden_size, true));
  // VisionRotaryEmbedding(head_dim / 2): inv_freq = 1 / 10000^(arange(0, dim, 2) / dim) in fp32.
  const int64_t dim = c.embed_dim / c.num_heads / 2;
  inv_freq_ = 1.0 / at::pow(10000.0, at::arange(0, dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(dim));
}

at::Tensor Qwen2VisionTower::forward(const at::Tensor& pixel_values, const std::vector<GridTHW>& grids) const {
  const int64_t m = config_.spatial_merge_size;
  int64_t S = 0;
  std::vector<int64_t> frames;  // attention runs within each frame (t * h * w patches per image)
  std::vector<int64_t> hpos, wpos;
  for (size_t i = 0; i < grids.size(); ++i) {
    const auto [t, h, w] = grids[i];
    if (t <= 0 || h <= 0 || w <= 0 || h % m != 0 || w % m != 0)
      throw InvalidInputError("image " + std::to_string(i) + ": grid (" + std::to_string(t) + ", " + std::to_string(h) +
                              ", " + std::to_string(w) + ") must be positive with h and w multiples of " +
                              std::to_string(m));
    // Patch rows come in 2 x 2 merge windows: (h / m, w / m, m, m) order.
    for (int64_t ti = 0; ti < t; ++ti) {
      frames.push_back(h * w);
      for (int64_t bh = 0; bh < h / m; ++bh)
        for (int64_t bw = 0; bw < w / m; ++bw)
          for (int64_t mh = 0; mh < m; ++mh)
            for (int64_t mw = 0; mw < m; ++mw) {
              hpos.push_back(bh * m + mh);
              wpos.push_back(bw * m + mw);
            }
    }
    S += t * h * w;
  }
  TORCH_CHECK_VALUE(pixel_values.dim() == 2 && pixel_values.size(0) == S && pixel_values.size(1) == config_.patch_dim(),
                    "pixel_values must be (", S, ", ", config_.patch_dim(), ") for these image grids, got ",
                    pixel_values.sizes());
  const auto device = patch_weight.device();
  auto x =
      at::linear(pixel_values.to(device, patch_weight.scalar_type()), patch_weight.reshape({config_.embed_dim, -1}));
  auto freq = inv_freq_.to(device);
  auto opts = at::TensorOptions().dtype(at::kLong);
  auto hp = at::tensor(hpos, opts).to(device), wp = at::tensor(wpos, opts).to(device);
  // angles = cat(h * inv_freq, w * inv_freq) in fp32, as rot_pos_emb's table lookup gives.
  auto angles = at::cat({hp.to(at::kFloat).unsqueeze(-1) * freq, wp.to(at::kFloat).unsqueeze(-1) * freq}, -1);
  auto packed = pack_lengths(frames, device);
  for (const auto& block : blocks) {
    auto fn = [block, angles, packed](const at::Tensor& h) { return block->forward(h, angles, packed); };
    x = checkpointing_ ? checkpointed(fn, x) : fn(x);
  }
  x = ln_q->forward(x).reshape({-1, config_.embed_dim * m * m});
  return merger_fc2->forward(at::gelu(merger_fc1->forward(x)));
}

Qwen2VLBackbone::Qwen2VLBackbone(const Qwen2VLModelConfig& config) : config_(config), map_(qwen2_vl_weight_map()) {
  visual = register_module("visual", std::make_shared<Qwen2VisionTower>(config.vision));
  decoder = register_module("decoder", std::make_shared<Decoder>(config.text));
}

void Qwen2VLBackbone::set_gradient_checkpointing(bool on) {
  decoder->set_gradient_checkpointing(on);
  visual->set_gradient_checkpointing(on);
}

int64_t Qwen2VLBackbone::image_token_count(int64_t height, int64_t width) const {
  const int64_t f = config_.vision.patch_size * config_.vision.spatial_merge_size;
  if (height <= 0 || width <= 0 || height % f != 0 || width % f != 0)
    throw InvalidInputError("Qwen2-VL image size " + std::to_string(height) + "x" + std::to_string(width) +
                            " is not a smart_resize output (positive multiples of " + std::to_string(f) + ")");
  return (height / f) * (width / f);
}

std::vector<GridTHW> Qwen2VLBackbone::grids(const std::vector<ImageInput>& images) const {
  std::vector<GridTHW> out;
  for (const auto& im : images) {
    image_token_count(im.height, im.width);  // validates the size
    out.push_back({1, im.height / config_.vision.patch_size, im.width / config_.vision.patch_size});
  }
  return out;
}

at::Tensor Qwen2VLBackbone::image_features(const std::vector<ImageInput>& images) const {
  if (images.empty()) return {};
  std::vector<at::Tensor> pixels;
  for (const auto& im : images) pixels.push_back(im.pixel_values);
  return visual->forward(at::cat(pixels, 0), grids(images));
}

at::Tensor Qwen2VLBackbone::embed_with_images(const at::Tensor& ids, const std::vector<ImageInput>& images) const {
  return scatter_image_features(decoder->embed_tokens->forward(ids), ids, config_.image_token_id, images,
                                [this](const std::vector<ImageInput>& im) { return image_features(im); });
}

EncodeBatch Qwen2VLBackbone::with_positions(const EncodeBatch& batch, bool padded) const {
  decoder->check_input_ids(batch.input_ids);
  if (batch.position_ids.defined()) return batch;
  EncodeBatch b = batch;
  if (sequential_positions_) {
    const auto& ids = batch.input_ids;
    const auto L = ids.size(1);
    auto p = padded ? at::arange(L, ids.options().dtype(at::kLong)).expand({ids.size(0), L})
                    : (batch.attention_mask.ne(0).to(at::kLong).cumsum(1) - 1).clamp_min(0);
    b.position_ids = p.unsqueeze(0).expand({3, ids.size(0), L}).contiguous();
    return b;
  }
  b.position_ids =
      qwen2_vl_rope_index(batch.input_ids, batch.attention_mask, grids(batch.images), config_.image_token_id,
                          config_.vision_start_token_id, config_.vision.spatial_merge_size)
          .to(batch.input_ids.device());
  return b;
}

at::Tensor Qwen2VLBackbone::last_hidden_state(const EncodeBatch& batch) const {
  const auto b = with_positions(batch, /*padded=*/true);
  return decoder_last_hidden_state(*decoder, b,
                                   [&](const at::Tensor& ids) { return embed_with_images(ids, b.images); });
}

at::Tensor Qwen2VLBackbone::last_token_hidden(const EncodeBatch& batch) const {
  const auto b = with_positions(batch, /*padded=*/false);
  return decoder_last_token_hidden(*decoder, b,
                                   [&](const at::Tensor& ids) { return embed_with_images(ids, b.images); });
}

std::shared_ptr<Backbone> make_qwen2_vl_backbone(const nlohmann::json& config, const std::string& source) {
  return std::make_shared<Qwen2VLBackbone>(Qwen2VLModelConfig::from_json(config, source));
}

}  // namespace unime::model
