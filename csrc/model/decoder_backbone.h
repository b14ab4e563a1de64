// Text-only decoder checkpoints (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
// Phi3ForCausalLM, and the headless ...Model) as a Backbone.
#pragma once

#include "model/backbone.h"
#include "model/decoder.h"

namespace unime::model {

class DecoderBackbone : public Backbone {
 public:
  explicit DecoderBackbone(const DecoderConfig& config);
  at::Tensor last_hidden_state(const EncodeBatch& batch) const override;
  at::Tensor last_token_hidden(const EncodeBatch& batch) const override;
  const WeightMap& weight_map() const override { return map_; }
  int64_t hidden_size() const override { return decoder->config().hidden_size; }
  std::vector<Component> components() const override { return {{"language_model", "decoder."}}; }
  void set_gradient_checkpointing(bool on) override { decoder->set_gradient_checkpointing(on); }
  int64_t max_length() const override { return decoder->config().max_position_embeddings; }
  std::shared_ptr<Decoder> decoder;

 private:
  WeightMap map_;
};

std::shared_ptr<Backbone> make_decoder_backbone(const nlohmann::json& config, const std::string& source);

}  // namespace unime::model
