#include "model/decoder_backbone.h"

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "model/decoder_weight_map.h"

namespace unime::model {
// Checkpoints of LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Phi3ForCausalLM (and the headless *Model)
// store the decoder below "model."; the language-model head is not needed for embeddings, and old checkpoints also
// saved rotary inverse frequencies, which are recomputed.
DecoderBackbone::DecoderBackbone(const DecoderConfig& config)
    : map_(decoder_weight_map().with_prefixes("model.", "decoder.",
                                              {"lm_head.weight", "model.layers.{L}.self_attn.rotary_emb.inv_freq"})) {
  decoder = register_module("decoder", std::make_shared<Decoder>(config));
}

namespace {
void reject_images(const EncodeBatch& batch) {
  if (!batch.images.empty())
    throw InvalidInputError("this model is text-only (a decoder) but the batch has " +
                            std::to_string(batch.images.size()) + " image(s)");
}
}  // namespace

at::Tensor DecoderBackbone::last_hidden_state(const EncodeBatch& batch) const {
  reject_images(batch);
  return decoder->forward(batch.input_ids, batch.attention_mask, batch.position_ids);
}

at::Tensor DecoderBackbone::last_token_hidden(const EncodeBatch& batch) const {
  reject_images(batch);
  return decoder->last_token_hidden(batch.input_ids, batch.attention_mask, batch.position_ids);
}

std::shared_ptr<Backbone> make_decoder_backbone(const nlohmann::json& config, const std::string& source) {
  return std::make_shared<DecoderBackbone>(DecoderConfig::from_json(config, source));
}

}  // namespace unime::model
