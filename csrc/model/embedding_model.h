// A loaded embedding model: config.json + safetensors checkpoint -> backbone on a device and dtype,
// and the pooling that turns its last hidden state into one L2-normalised vector per input.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <memory>
#include <optional>
#include <string>

#include "model/backbone.h"
#include "model/checkpoint_loader.h"
#include "model/processor.h"
#include "model/recipe.h"

namespace unime::model {

class EmbeddingModel {
 public:
  // Loads the Hugging Face checkpoint directory `path` (config.json and model.safetensors or a
  // sharded model.safetensors.index.json). `dtype`: compute dtype of the floating weights; nullopt
  // takes config.json's torch_dtype (float32 when absent).
  // text_only: the backbone's non-language components (vision tower, projector) are removed before
  // loading, so their weights are never read or kept; batches with images are then refused.
  // recipe: how the checkpoint's release embeds (model/recipe.h); "" picks it from the directory.
  static std::shared_ptr<EmbeddingModel> load(const std::string& path, std::optional<at::ScalarType> dtype,
                                              at::Device device, bool text_only = false,
                                              const std::string& recipe = "");

  // batch.input_ids: (B, L) int64; batch.attention_mask: (B, L), nonzero = real token, left or right padded.
  // Returns (B, hidden_size) in the model dtype: the last real token's final hidden state,
  // L2-normalised when `normalize`. Keeps the autograd graph when gradients are enabled.
  // packed (default): computed on the real tokens only (Backbone::last_token_hidden); false: on the
  // padded batch exactly as transformers does (positions counted from column 0), then pooled.
  // batch.images: the images whose expanded placeholder tokens input_ids holds (multimodal backbones).
  at::Tensor encode(const EncodeBatch& batch, bool normalize, bool packed = true) const;
  at::Tensor last_hidden_state(const EncodeBatch& batch) const;

  // Texts, images and instructions end to end: the processor builds the batch, encode() embeds
  // it. Returns the embeddings of the processed rows ((rows, hidden), in the model dtype) with
  // `processed` describing which input each row is and which inputs were left out.
  at::Tensor encode_inputs(const std::vector<EncodeInput>& inputs, const ProcessOptions& options, bool normalize,
                           ProcessedBatch* processed = nullptr) const;
  // nullptr when the checkpoint has no tokenizer.json.
  const Processor* processor() const { return processor_.get(); }
  std::shared_ptr<const Processor> shared_processor() const { return processor_; }

  const LoadReport& load_report() const { return report_; }
  const std::string& config_json() const { return config_json_; }  // config.json text as read
  const std::string& model_type() const { return model_type_; }
  at::ScalarType dtype() const { return dtype_; }
  bool text_only() const { return text_only_; }
  const EmbeddingRecipe& recipe() const { return *recipe_; }
  at::Device device() const { return device_; }
  int64_t hidden_size() const { return backbone_->hidden_size(); }
  Backbone& backbone() { return *backbone_; }
  const Backbone& backbone() const { return *backbone_; }

 private:
  EmbeddingModel() = default;
  std::shared_ptr<Backbone> backbone_;
  std::shared_ptr<const Processor> processor_;
  LoadReport report_;
  std::string config_json_, model_type_;
  at::ScalarType dtype_ = at::kFloat;
  at::Device device_ = at::kCPU;
  bool text_only_ = false;
  const EmbeddingRecipe* recipe_ = &embedding_recipe("default");
};

// "float32" / "bfloat16" / "torch.float16" ... -> ScalarType; InvalidInputError otherwise.
at::ScalarType parse_float_dtype(const std::string& name);

}  // namespace unime::model
