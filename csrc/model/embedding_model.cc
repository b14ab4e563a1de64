#include "model/embedding_model.h"

#include <ATen/ATen.h>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/json_file.h"
#include "model/pooling.h"

namespace unime::model {

at::ScalarType parse_float_dtype(const std::string& name) {
  std::string n = name.rfind("torch.", 0) == 0 ? name.substr(6) : name;
  if (n == "float32" || n == "float" || n == "fp32") return at::kFloat;
  if (n == "bfloat16" || n == "bf16") return at::kBFloat16;
  if (n == "float16" || n == "half" || n == "fp16") return at::kHalf;
  if (n == "float64" || n == "double") return at::kDouble;
  throw InvalidInputError("dtype '" + name + "' is not a floating dtype (use float32, bfloat16, float16 or float64)");
}

std::shared_ptr<EmbeddingModel> EmbeddingModel::load(const std::string& path, std::optional<at::ScalarType> dtype,
                                                     at::Device device) {
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
  if (dtype) {
    model->dtype_ = *dtype;
  } else {
    auto stored = core::get_or<std::string>(config, "torch_dtype", "float32", config_path);
    model->dtype_ = parse_float_dtype(stored);
  }
  model->device_ = device;
  auto checkpoint = core::Checkpoint::open(path);
  model->report_ = load_module(*model->backbone_, model->backbone_->weight_map(), checkpoint, model->dtype_, device);
  model->backbone_->eval();
  model->processor_ = create_processor(path, config, *model->backbone_);
  return model;
}

namespace {
EncodeBatch on_device(const EncodeBatch& batch, at::Device device) {
  EncodeBatch out{batch.input_ids.to(device), batch.attention_mask.to(device), batch.images,
                  batch.position_ids.defined() ? batch.position_ids.to(device) : at::Tensor()};
  for (auto& image : out.images) image.pixel_values = image.pixel_values.to(device);
  return out;
}
}  // namespace

at::Tensor EmbeddingModel::last_hidden_state(const EncodeBatch& batch) const {
  return backbone_->last_hidden_state(on_device(batch, device_));
}

at::Tensor EmbeddingModel::encode(const EncodeBatch& batch, bool normalize, bool packed) const {
  auto b = on_device(batch, device_);
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
