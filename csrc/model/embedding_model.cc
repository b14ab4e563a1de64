#include "model/embedding_model.h"

#include <ATen/ATen.h>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/json_file.h"
#include "model/pooling.h"
#include "model/qwen2_vl.h"

namespace unime::model {

at::ScalarType parse_float_dtype(const std::string& name) {
  std::string n = name.rfind("torch.", 0) == 0 ? name.substr(6) : name;
  if (n == "float32" || n == "float" || n == "fp32") return at::kFloat;
  if (n == "bfloat16" || n == "bf16") return at::kBFloat16;
  if (n == "float16" || n == "half" || n == "fp16") return at::kHalf;
  if (n == "float64" || n == "double") return at::kDouble;
  throw InvalidInputError("dtype '" + name + "' is not a floating dtype (use float32, bfloat16, float16 or float64)");
}

namespace {
// Removes the backbone's components other than the language model (their direct child modules) and
// returns their module-path prefixes.
std::vector<std::string> drop_non_language_components(Backbone& backbone) {
  std::vector<std::string> prefixes, children;
  for (const auto& component : backbone.components())
    if (component.name != "language_model") prefixes.push_back(component.module_path);
  for (const auto& child : backbone.named_children()) {
    const auto as_path = child.key() + ".";
    for (const auto& prefix : prefixes)
      if (as_path.rfind(prefix, 0) == 0 || child.key().rfind(prefix, 0) == 0) children.push_back(child.key());
  }
  for (const auto& name : children) {
    for (auto& p : backbone.named_children()[name]->parameters()) p.set_data(at::empty({0}, p.options()));
    backbone.unregister_module(name);
  }
  return prefixes;
}
}  // namespace

std::shared_ptr<EmbeddingModel> EmbeddingModel::load(const std::string& path, std::optional<at::ScalarType> dtype,
                                                     at::Device device, bool text_only, const std::string& recipe) {
  namespace fs = std::filesystem;
  if (!fs::exists(path)) throw FileNotFoundError(path + ": no such directory");
  if (!fs::is_directory(path))
    throw InvalidInputError(path + ": expected a model directory holding config.json and safetensors files");
  const auto config_path = (fs::path(path) / "config.json").string();
  auto config = core::read_json_file(config_path);

  std::shared_ptr<EmbeddingModel> model(new EmbeddingModel());
  model->config_json_ = config.dump();
  model->model_type_ = core::get_required<std::string>(config, "model_type", config_path);
  model->backbone_ = create_backbone(config, config_path);
  model->recipe_ = &resolve_recipe(recipe, path, model->model_type_);
  if (model->recipe_->sequential_positions)
    dynamic_cast<Qwen2VLBackbone&>(*model->backbone_).set_sequential_positions(true);
  if (dtype) {
    model->dtype_ = *dtype;
  } else {
    auto stored = core::get_or<std::string>(config, "torch_dtype", "float32", config_path);
    model->dtype_ = parse_float_dtype(stored);
  }
  model->device_ = device;
  auto checkpoint = core::Checkpoint::open(path);
  model->text_only_ = text_only;
  const auto dropped = text_only ? drop_non_language_components(*model->backbone_) : std::vector<std::string>{};
  model->report_ =
      load_module(*model->backbone_, model->backbone_->weight_map(), checkpoint, model->dtype_, device, dropped);
  model->backbone_->eval();
  model->processor_ = create_processor(path, config, *model->backbone_, *model->recipe_);
  return model;
}

namespace {
EncodeBatch on_device(const EncodeBatch& batch, at::Device device, bool text_only) {
  if (text_only && !batch.images.empty())
    throw InvalidInputError(std::to_string(batch.images.size()) +
                            " image(s) in a batch for a model loaded for texts only (modality='text': no vision "
                            "tower); load it without modality to embed images");
  EncodeBatch out{batch.input_ids.to(device), batch.attention_mask.to(device), batch.images,
                  batch.position_ids.defined() ? batch.position_ids.to(device) : at::Tensor()};
  for (auto& image : out.images) image.pixel_values = image.pixel_values.to(device);
  return out;
}
}  // namespace

at::Tensor EmbeddingModel::last_hidden_state(const EncodeBatch& batch) const {
  return backbone_->last_hidden_state(on_device(batch, device_, text_only_));
}

at::Tensor EmbeddingModel::encode(const EncodeBatch& batch, bool normalize, bool packed) const {
  auto b = on_device(batch, device_, text_only_);
  if (!packed) {
    last_token_indices(b.attention_mask);  // a row without tokens is the caller's error, before any compute
    return last_token_pool(backbone_->last_hidden_state(b), b.attention_mask, normalize);
  }
  auto pooled = backbone_->last_token_hidden(b);
  return normalize ? l2_normalize(pooled) : pooled;
}

at::Tensor EmbeddingModel::encode_inputs(const std::vector<EncodeInput>& inputs, const ProcessOptions& options,
                                         bool normalize, ProcessedBatch* processed) const {
  if (!processor_)
    throw InvalidInputError(
        "this checkpoint has no tokenizer.json next to config.json: encoding texts and images "
        "needs one (token ids can be encoded directly)");
  auto batch = processor_->process(inputs, options);
  at::Tensor out = batch.rows.empty() ? at::empty({0, hidden_size()}, at::TensorOptions().dtype(dtype_).device(device_))
                                      : encode(batch.batch, normalize);
  if (processed) *processed = std::move(batch);
  return out;
}

}  // namespace unime::model
