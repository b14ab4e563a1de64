#include "model/decoder_backbone.h"

#include <nlohmann/json.hpp>

#include "model/decoder_weight_map.h"

namespace unime::model {
// Checkpoints of LlamaForCausalLM / MistralForCausalLM (and the headless *Model) store the decoder
// below "model."; the language-model head is not needed for embeddings, and old checkpoints also
// saved rotary inverse frequencies, which are recomputed.
DecoderBackbone::DecoderBackbone(const DecoderConfig& config)
    : map_(decoder_weight_map().with_prefixes("model.", "decoder.",
                                              {"lm_head.weight", "model.layers.{L}.self_attn.rotary_emb.inv_freq"})) {
  decoder = register_module("decoder", std::make_shared<Decoder>(config));
}

at::Tensor DecoderBackbone::last_hidden_state(const at::Tensor& input_ids, const at::Tensor& attention_mask) const {
  return decoder->forward(input_ids, attention_mask);
}

at::Tensor DecoderBackbone::last_token_hidden(const at::Tensor& input_ids, const at::Tensor& attention_mask) const {
  return decoder->last_token_hidden(input_ids, attention_mask);
}

std::shared_ptr<Backbone> make_decoder_backbone(const nlohmann::json& config, const std::string& source) {
  return std::make_shared<DecoderBackbone>(DecoderConfig::from_json(config, source));
}

}  // namespace unime::model
